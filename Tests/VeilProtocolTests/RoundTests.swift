import Testing
import VeilCrypto
@testable import VeilProtocol

@Suite struct RoundTests {
    @Test func completeGraphWithoutDropoutsSumsEveryInput() throws {
        var harness = try RoundHarness(cohortSize: 6, threshold: 3)
        let outcome = harness.run()
        guard case let .finished(result) = outcome else { Issue.record("round did not finish: \(outcome)"); return }
        #expect(result.survivors == [0, 1, 2, 3, 4, 5])
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
    }

    @Test func dropoutsAtEveryPhase() throws {
        var harness = try RoundHarness(cohortSize: 10, threshold: 5)
        harness.dropBefore = [0: .advertiseKeys, 1: .shareKeys, 2: .maskedInputCollection, 3: .unmasking]
        let outcome = harness.run()
        guard case let .finished(result) = outcome else { Issue.record("round did not finish: \(outcome)"); return }
        #expect(result.survivors == [3, 4, 5, 6, 7, 8, 9])
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
    }

    @Test func activeHararyRoundWithDropouts() throws {
        var harness = try RoundHarness(cohortSize: 30, bitWidth: 48, graph: .harary(degree: 12), threshold: 7, threatModel: .active, prg: .chacha20)
        harness.dropBefore = [4: .shareKeys, 9: .maskedInputCollection, 11: .consistencyCheck, 20: .unmasking]
        let outcome = harness.run()
        guard case let .finished(result) = outcome else { Issue.record("round did not finish: \(outcome)"); return }
        #expect(!result.survivors.contains(9))
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
    }
}
