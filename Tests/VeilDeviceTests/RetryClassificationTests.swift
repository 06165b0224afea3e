import Foundation
import Synchronization
import Testing
import VeilCrypto
@testable import VeilDevice
import VeilProtocol

/// Issue 12, finding 4: a failure another device caused is retried; a violation by the aggregator
/// (or a round the policy refuses) stops the agent.
@Suite struct RetryClassificationTests {
    static func violation(_ kind: ProtocolViolation.Kind) -> DeviceError {
        var random = SystemRandomSource()
        return .protocolViolation(ProtocolViolation(round: RoundID(using: &random), device: 1, phase: .shareKeys, kind: kind))
    }

    @Test func peerFaultsAreRetriedAndAggregatorFaultsAreNot() {
        #expect(Self.violation(.unusableKey(device: 4)).isRetryable)
        #expect(Self.violation(.reusedKey(device: 4)).isRetryable)
        #expect(!Self.violation(.invalidSignature(signer: 4)).isRetryable)
        #expect(!Self.violation(.requestedBothShares(neighbour: 4)).isRetryable)
        #expect(!Self.violation(.placementRefused("late")).isRetryable)
        #expect(!Self.violation(.policy(.thresholdTooLow(threshold: 1))).isRetryable)
    }

    /// The device loop itself: after a neighbour's unusable key it backs off and takes part again;
    /// after an aggregator violation it stops with that error.
    @Test func theLoopKeepsGoingAfterAPeerFaultAndStopsAfterAnAggregatorFault() async throws {
        let connection = try AggregatorConnection(to: AggregatorEndpoint(host: "127.0.0.1", port: 9, security: .insecurePlaintext))
        let device = VeilDevice(identity: .generate(), signedRounds: .inMemory(), connection: connection)
        let calls = Mutex(0)
        let script: [DeviceError] = [Self.violation(.unusableKey(device: 2)), Self.violation(.invalidSignature(signer: 2))]
        do {
            try await device.loop(interval: .milliseconds(1), onRound: { _ in }) { () async throws(DeviceError) -> RoundParticipation in
                let call = calls.withLock { c in
                    c += 1
                    return c
                }
                throw script[min(call, script.count) - 1]
            }
            Issue.record("the loop must stop on the aggregator's violation")
        } catch let error as DeviceError {
            #expect(calls.withLock { $0 } == 2, "one retry after the peer fault, then a stop")
            guard case let .protocolViolation(v) = error, case .invalidSignature = v.kind else {
                Issue.record("stopped with \(error)")
                return
            }
        }
    }

    /// Issue 13, M9: the wait between rounds (and after NO_ROUND) is spread upwards, never below
    /// the aggregator's hint, so a fleet told at once does not return at once.
    @Test func waitsBetweenRoundsAreSpreadAndNeverShorterThanTheHint() {
        let delays = (0..<200).map { _ in Backoff.spread(.seconds(10)) }
        #expect(delays.allSatisfy { $0 >= .seconds(10) && $0 <= .milliseconds(12_500) })
        #expect(Set(delays).count > 100, "the delays are spread, not one value")
    }
}
