import Foundation
import Testing
import Synchronization
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilStore

/// Issue 13, C1: a device hears COUNTED only after the round's end is committed.
@Suite(.serialized) struct CommitBeforeTellTests {
    /// The store loses its connection exactly when a finished round commits. Before, every
    /// device had already been told COUNTED (and marked its window done) while nothing was
    /// stored. Now nobody is told COUNTED and nothing is stored. Issue 14 (finding 6): the
    /// devices sent their masked inputs, so their windows are spent and never offered again,
    /// whatever the aggregator says: an aggregator that answers ABORTED after unmasking cannot
    /// run the window again with a cohort that differs by one device and subtract.
    @Test func aRoundWhoseEndCannotBeCommittedTellsNobodyCounted() async throws {
        let set = FeatureSet(name: "fleet", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        let window = 1_800_000_000
        let harness = try await NetworkHarness.featureRounds(of: set, window: window, failingCommits: 1)
        defer { Task { await harness.stop() } }
        let stores = try harness.eventStores(8, of: set, window: window)
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            func everyoneParticipates() async throws -> [RoundParticipation] {
                try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                    for d in 0..<8 {
                        group.addTask { try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d]) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            let first = try await everyoneParticipates()
            #expect(first.allSatisfy { $0.outcome == .aborted }, "\(first.map(\.outcome))")
            for d in 0..<8 { #expect(try !stores[d].isCounted(window: window), "device \(d) must not mark an uncommitted window done") }
            #expect(try await harness.aggregator.featureWindows(of: set, from: window, to: window + 1).isEmpty)
            let lost = try #require(try await harness.aggregator.store.recentRounds(limit: 1).first)
            #expect(lost.outcome == "aborted" && lost.reason.contains("could not be stored"))
            #expect(try await harness.scrape().body.contains("veil_rounds_total{outcome=\"lost\"} 1"))

            // The store is back, but the devices' inputs were sent: the window is spent on each.
            for d in 0..<8 {
                #expect(try stores[d].isSpent(window: window) && stores[d].spentUnconfirmedWindows() == [window])
                #expect(try stores[d].pendingWindows(now: Date(timeIntervalSince1970: Double(window + 7200))).isEmpty)
            }
            let second = try await everyoneParticipates()
            #expect(second.allSatisfy { if case .noRound = $0.outcome { true } else { false } }, "nothing is offered: \(second.map(\.outcome))")
            await #expect(throws: DeviceError.input(ObservationError.spent(window: window).description), "not even when asked to") {
                _ = try await harness.device(identity: identities[0], connection: connection).participateInFeatureRound(store: stores[0], windows: [window])
            }
            #expect(try await harness.countedWindow(of: set, window: window) == nil)
        }
    }

    /// M10: SIGTERM while a round's end is being written waits for the write (within
    /// `shutdownGraceSeconds`), so the round is stored and its devices hear COUNTED; before, the
    /// shutdown went ahead and the process could exit under the write.
    @Test func aShutdownWaitsForARoundEndBeingWritten() async throws {
        let set = FeatureSet(name: "fleet", version: 2, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        let window = 1_800_000_000
        let harness = try await NetworkHarness.featureRounds(of: set, window: window, commitDelay: .milliseconds(1500))
        defer { Task { await harness.stop() } }
        let faulty = try #require(harness.aggregator.store as? FaultyStore)
        let stores = try harness.eventStores(8, of: set, window: window)
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            let participations = Task {
                try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                    for d in 0..<8 { group.addTask { try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d]) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            while faulty.startedCommits == 0 { try await Task.sleep(for: .milliseconds(10)) }
            await harness.aggregator.shutDown()
            let stored = try await faulty.base.storedWindows(of: set, from: window, to: window + 1).first
            #expect(stored?.contributors == 8, "the end being written when SIGTERM came is committed before the shutdown returns")
            let results = try await participations.value
            #expect(results.allSatisfy { $0.outcome == .counted }, "\(results.map(\.outcome))")
        }
    }

    /// Issue 13, item 6: `/healthz` says unhealthy while the store cannot be read, and healthy again after.
    @Test func healthReflectsTheStore() async throws {
        let harness = try await NetworkHarness(commitDelay: .milliseconds(1)) { c in
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
        }
        defer { Task { await harness.stop() } }
        let faulty = try #require(harness.aggregator.store as? FaultyStore)
        #expect(try await harness.scrape("/healthz").status == 200)
        faulty.unreachable.store(true, ordering: .relaxed)
        let down = try await harness.scrape("/healthz")
        #expect(down.status == 503 && down.body.contains("store is unavailable"), "\(down)")
        faulty.unreachable.store(false, ordering: .relaxed)
        #expect(try await harness.scrape("/healthz").status == 200)
    }
}
