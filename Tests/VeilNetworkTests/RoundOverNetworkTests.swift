import Foundation
import Testing
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilProtocol
import VeilWire
import VeilStore

/// Whole rounds over real sockets: TLS on loopback, a real aggregator, real `VeilDevice` clients.
@Suite(.serialized) struct RoundOverNetworkTests {
    /// Runs `count` enrolled devices through one round; device d disconnects before
    /// `dropouts[d]` when set. Returns the participations and the completed round.
    static func runRound(
        _ harness: NetworkHarness, devices count: Int, dropouts: [Int: Phase] = [:], silences: [Int: Phase] = [:]
    ) async throws -> (participations: [Int: RoundParticipation], round: CompletedRound) {
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(count, connection: connection)
            let rounds = await harness.aggregator.completedRounds()
            let participations = try await withThrowingTaskGroup(of: (Int, RoundParticipation).self) { group in
                for (d, identity) in identities.enumerated() {
                    group.addTask {
                        let device = harness.device(identity: identity, connection: connection)
                        let result = try await device.participate(options: .init(disconnectBefore: dropouts[d], silentFrom: silences[d])) { assignment in
                            try NetworkHarness.input(device: d, assignment)
                        }
                        return (d, result)
                    }
                }
                var all: [Int: RoundParticipation] = [:]
                for try await (d, p) in group { all[d] = p }
                return all
            }
            var iterator = rounds.makeAsyncIterator()
            let round = try #require(await iterator.next())
            return (participations, round)
        }
    }

    @Test func roundWithDropoutsInEveryPhaseGivesTheExactSum() async throws {
        let harness = try await NetworkHarness { c in
            c.rounds.minimumCohort = 12
            c.rounds.maximumCohort = 12
            c.rounds.threshold = 7
        }
        defer { Task { await harness.stop() } }
        let dropouts: [Int: Phase] = [0: .advertiseKeys, 1: .shareKeys, 2: .maskedInputCollection, 3: .unmasking]
        let (participations, round) = try await Self.runRound(harness, devices: 12, dropouts: dropouts)
        guard case let .finished(result) = round.outcome else {
            Issue.record("round did not finish: \(round.outcome)")
            return
        }
        // Devices dropped before masked input are not in the sum; the one that left during
        // unmasking is (its input arrived), and its self mask was removed from others' shares.
        let index = { (d: Int) in participations[d]!.deviceIndex! }
        for d in 0...2 { #expect(!result.survivors.contains(index(d)), "device \(d) dropped before its input") }
        #expect(result.survivors.contains(index(3)))
        #expect(result.survivors.count == 12 - 3)
        let expected = try NetworkHarness.expectedSum(survivors: result.survivors, participations: participations, configuration: round.configuration)
        #expect(result.sum.elements == expected)
        for d in 4..<12 { #expect(participations[d]!.outcome == .counted, "device \(d)") }
        for (d, phase) in dropouts { #expect(participations[d]!.outcome == .disconnected(before: phase)) }
        let history = try await harness.aggregator.store.recentRounds()
        #expect(history.first?.outcome == "finished" && history.first?.survivors == 9)
        // Every stream ended, including those of devices that vanished: a graceful shutdown
        // completes instead of waiting for handlers that never finish.
        #expect(await harness.stopsWithin(.seconds(10)), "the aggregator stops after a round with dropouts")
    }

    /// A device that goes silent keeps its stream open, so every phase it misses closes at its
    /// deadline; the last one's close commits the round from the deadline's own task, which must
    /// not be cancelled by the close (it was, and the round was lost).
    @Test func phasesClosedByTheirDeadlineStillCommitTheRound() async throws {
        let harness = try await NetworkHarness { c in
            c.rounds.minimumCohort = 12
            c.rounds.maximumCohort = 12
            c.rounds.threshold = 7
            c.rounds.phaseTimeoutSeconds = 0.5
        }
        defer { Task { await harness.stop() } }
        let silences: [Int: Phase] = [0: .shareKeys, 1: .unmasking]
        let (participations, round) = try await Self.runRound(harness, devices: 12, silences: silences)
        guard case let .finished(result) = round.outcome else {
            Issue.record("round did not finish: \(round.outcome)")
            return
        }
        let index = { (d: Int) in participations[d]!.deviceIndex! }
        #expect(result.droppedInPhase[.shareKeys] == [index(0)] && result.droppedInPhase[.unmasking] == [index(1)])
        #expect(result.survivors.count == 11 && result.survivors.contains(index(1)))
        let expected = try NetworkHarness.expectedSum(survivors: result.survivors, participations: participations, configuration: round.configuration)
        #expect(result.sum.elements == expected)
        for d in 2..<12 { #expect(participations[d]!.outcome == .counted, "device \(d)") }
        for (d, phase) in silences { #expect(participations[d]!.outcome == .disconnected(before: phase)) }
        // Both phases waited for their deadline, and the round's end is durable.
        #expect((round.phaseSeconds[.shareKeys] ?? 0) >= 0.5 && (round.phaseSeconds[.unmasking] ?? 0) >= 0.5)
        let history = try await harness.aggregator.store.recentRounds()
        #expect(history.first?.outcome == "finished" && history.first?.survivors == 11)
    }

    @Test func severalRoundsRunAtOnceEachWithItsOwnExactSum() async throws {
        let harness = try await NetworkHarness { c in
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
            c.rounds.maximumConcurrentRounds = 3
        }
        defer { Task { await harness.stop() } }
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(24, connection: connection)
            let rounds = await harness.aggregator.completedRounds()
            let participations = try await withThrowingTaskGroup(of: (Int, RoundParticipation).self) { group in
                for (d, identity) in identities.enumerated() {
                    group.addTask {
                        (d, try await harness.device(identity: identity, connection: connection).participate { try NetworkHarness.input(device: d, $0) })
                    }
                }
                var all: [Int: RoundParticipation] = [:]
                for try await (d, p) in group { all[d] = p }
                return all
            }
            var iterator = rounds.makeAsyncIterator()
            var seen = Set<RoundID>()
            for _ in 0..<3 {
                let round = try #require(await iterator.next())
                seen.insert(round.configuration.roundID)
                guard case let .finished(result) = round.outcome else {
                    Issue.record("round \(round.configuration.roundID) did not finish")
                    continue
                }
                let members = participations.filter { $0.value.configuration?.roundID == round.configuration.roundID }
                #expect(members.count == 8)
                let expected = try NetworkHarness.expectedSum(survivors: result.survivors, participations: members, configuration: round.configuration)
                #expect(result.sum.elements == expected)
            }
            #expect(seen.count == 3, "three distinct rounds")
            #expect(participations.values.allSatisfy { $0.outcome == .counted })
        }
    }

    @Test func activeThreatModelRoundOverTLS() async throws {
        let harness = try await NetworkHarness { c in
            c.rounds.threatModel = .active
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 4
        }
        defer { Task { await harness.stop() } }
        let (participations, round) = try await Self.runRound(harness, devices: 8, dropouts: [5: .consistencyCheck])
        guard case let .finished(result) = round.outcome else {
            Issue.record("round did not finish: \(round.outcome)")
            return
        }
        #expect(round.configuration.threatModel == .active)
        let expected = try NetworkHarness.expectedSum(survivors: result.survivors, participations: participations, configuration: round.configuration)
        #expect(result.sum.elements == expected)
        #expect(result.survivors.count == 8, "device 5 sent its masked input before leaving, so it is in U3")
    }

    @Test func metricsEndpointReportsRoundsAndDropouts() async throws {
        let harness = try await NetworkHarness { c in
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
        }
        defer { Task { await harness.stop() } }
        _ = try await Self.runRound(harness, devices: 8, dropouts: [0: .shareKeys])
        let (status, body) = try await harness.scrape()
        #expect(status == 200)
        #expect(body.contains(#"veil_rounds_total{outcome="finished"} 1"#))
        #expect(body.contains(#"veil_dropouts_total{phase="share-keys"} 1"#))
        #expect(body.contains("veil_phase_duration_seconds"))
        #expect(body.contains("veil_unmasking_seconds"))
        #expect(body.contains("veil_bytes_received_total"))
        let health = try await harness.scrape("/healthz")
        #expect(health.status == 200)
        #expect(try await harness.scrape("/nope").status == 404)
    }

    @Test func gracefulShutdownMidRoundAbortsTheRoundCleanly() async throws {
        let harness = try await NetworkHarness { c in
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
            c.rounds.phaseTimeoutSeconds = 60
        }
        let results = try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            let rounds = await harness.aggregator.completedRounds()
            return try await withThrowingTaskGroup(of: RoundParticipation?.self) { group in
                // Seven devices answer at once; the eighth takes 4 s to produce its input, so the
                // round is still waiting in AdvertiseKeys when the shutdown comes at 2 s.
                for (d, identity) in identities.enumerated() {
                    group.addTask {
                        let device = harness.device(identity: identity, connection: connection)
                        return try await device.participate { assignment in
                            if d == 7 { try await Task.sleep(for: .seconds(4)) }
                            return try NetworkHarness.input(device: d, assignment)
                        }
                    }
                }
                group.addTask {
                    // Shut down once the round is under way.
                    try await Task.sleep(for: .seconds(2))
                    await harness.aggregator.shutDown()
                    return nil
                }
                var all: [RoundParticipation] = []
                for try await r in group { if let r { all.append(r) } }
                var iterator = rounds.makeAsyncIterator()
                let round = try #require(await iterator.next())
                if case let .aborted(reason) = round.outcome {
                    #expect(reason.description.contains("shutting down"))
                } else {
                    Issue.record("expected an aborted round, got \(round.outcome)")
                }
                return all
            }
        }
        #expect(results.count == 8)
        for r in results { #expect(r.outcome == .aborted, "every device is told the round aborted: \(r.reason)") }
        _ = try? await harness.serving.value
        #expect(try await harness.aggregator.store.recentRounds().first?.outcome == "aborted")
        try? FileManager.default.removeItem(atPath: harness.directory)
    }
}
