import Foundation
import Testing
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilProtocol
import VeilWire

/// Issue 12 over real sockets: devices enforce their own policy against a real aggregator, report
/// the refusal to it, and stop rather than retry; an aggregator violation is not retried either.
@Suite(.serialized) struct DevicePolicyOverNetworkTests {
    /// Runs `body` and fails the test if it takes longer than `limit` (the device loop must stop
    /// by itself on a policy violation, not spin).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            guard let first = try await group.next(), let value = first else {
                group.cancelAll()
                throw DeviceError.transport("timed out after \(limit)")
            }
            group.cancelAll()
            return value
        }
    }

    @Test func aDowngradedRoundIsRefusedReportedAndStopsTheAgent() async throws {
        // The aggregator runs honest-but-curious rounds; the fleet requires the active model.
        let harness = try await NetworkHarness { c in
            c.rounds.threatModel = .honestButCurious
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
        }
        defer { Task { await harness.stop() } }
        let policy = DevicePolicy(requiredThreatModel: .active, minimumCohort: 3, assumedDropout: 0.01)
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            let rounds = await harness.aggregator.completedRounds()
            let errors = try await Self.within(.seconds(60)) {
                await withTaskGroup(of: String?.self) { group in
                    for (d, identity) in identities.enumerated() {
                        group.addTask {
                            let device = VeilDevice(identity: identity, policy: policy, signedRounds: .inMemory(), connection: connection)
                            do {
                                try await device.run(interval: .milliseconds(50)) { try NetworkHarness.input(device: d, $0) }
                                return "run returned without an error"
                            } catch let error as DeviceError {
                                #expect(!error.isRetryable)
                                #expect(error.policyViolation == .threatModel(required: .active, offered: .honestButCurious), "\(error)")
                                return nil
                            } catch {
                                return "unexpected error \(error)"
                            }
                        }
                    }
                    var problems: [String] = []
                    for await problem in group { if let problem { problems.append(problem) } }
                    return problems
                }
            }
            #expect(errors.isEmpty, "\(errors)")
            var iterator = rounds.makeAsyncIterator()
            let round = try #require(await iterator.next())
            guard case .aborted(.tooFewDevices(.advertiseKeys, 0, _)) = round.outcome else {
                Issue.record("the aggregator must get no key at all: \(round.outcome)")
                return
            }
            let (_, body) = try await harness.scrape()
            #expect(body.contains(#"veil_device_refusals_total{reason="policy"} 8"#), "each refusal reaches the aggregator")
        }
    }

    @Test func aRoundWithinThePolicyIsCountedInBothThreatModels() async throws {
        for model in ThreatModel.allCases {
            let harness = try await NetworkHarness { c in
                c.rounds.threatModel = model
                c.rounds.minimumCohort = 8
                c.rounds.maximumCohort = 8
                c.rounds.expectedDropout = 0.01
                c.rounds.threshold = 5
            }
            let (participations, round) = try await RoundOverNetworkTests.runRound(harness, devices: 8)
            await harness.stop()
            #expect(harness.devicePolicy.requiredThreatModel == model)
            guard case let .finished(result) = round.outcome else { Issue.record("\(model): \(round.outcome)"); continue }
            #expect(result.survivors.count == 8)
            let expected = try NetworkHarness.expectedSum(survivors: result.survivors, participations: participations, configuration: round.configuration)
            #expect(result.sum.elements == expected)
        }
    }
}
