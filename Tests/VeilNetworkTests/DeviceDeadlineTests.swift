import Foundation
import Testing
import VeilAggregator
import VeilDevice
import VeilProtocol

/// Issue 13, M8: a device's participation has an overall deadline, so an aggregator that never
/// forms a round (or a connection that silently stopped) cannot hold it forever.
@Suite(.serialized) struct DeviceDeadlineTests {
    @Test func aParticipationThatOutlivesItsDeadlineIsAbandoned() async throws {
        // A waiting room that would hold the lone device for five minutes.
        let harness = try await NetworkHarness { c in
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
            c.rounds.maximumWaitSeconds = 300
        }
        defer { Task { await harness.stop() } }
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identity = try await harness.enrolledIdentities(1, connection: connection)[0]
            let device = harness.device(identity: identity, connection: connection)
            let started = ContinuousClock.now
            await #expect(throws: DeviceError.self) {
                _ = try await device.participate(options: ParticipationOptions(deadline: .seconds(1))) { _ in
                    ModularVector(reducing: [Int64](repeating: 1, count: 16), bitWidth: 32)
                }
            }
            #expect(ContinuousClock.now - started < .seconds(10), "abandoned at its deadline, not after the five-minute wait")
            // The aggregator sees the stream end and frees the waiting-room place.
            for _ in 0..<100 where await harness.aggregator.waitingDeviceCount() != 0 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(await harness.aggregator.waitingDeviceCount() == 0)
        }
    }
}
