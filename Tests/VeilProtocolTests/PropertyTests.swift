import Testing
import VeilCrypto
@testable import VeilProtocol

/// Hundreds of seeded rounds with random shapes and dropouts: each either finishes with exactly
/// the plaintext sum of its survivors or aborts for a documented reason that the dropouts explain.
@Suite struct PropertyTests {
    struct Case: CustomStringConvertible {
        let seed: UInt64
        var description: String { "seed \(seed)" }
    }

    static let cases = (1...240).map { Case(seed: UInt64($0)) }

    @Test(arguments: cases)
    func roundOutputEqualsPlaintextSumOfSurvivors(_ testCase: Case) throws {
        _ = try Self.check(testCase)
    }

    /// Guards against a vacuous property: most random rounds must actually finish.
    @Test func mostRandomRoundsFinish() throws {
        let finished = try (1...60).filter { try Self.check(Case(seed: UInt64($0) * 7919)) }.count
        #expect(finished >= 45, "only \(finished) of 60 random rounds finished")
    }

    /// Runs one random round, checks the property, and returns whether the round finished.
    static func check(_ testCase: Case) throws -> Bool {
        var random = SeededRandomSource(seed: testCase.seed, label: "property")
        // Mostly small cohorts (debug builds are slow); every 40th case is large and sparse.
        let large = testCase.seed % 40 == 0
        let n = large ? 150 + Int(random.nextUInt64(below: 151)) : 3 + Int(random.nextUInt64(below: 38))
        let useHarary = large || (n >= 8 && random.nextUInt64(below: 2) == 0)
        let degree: Int
        let graph: GraphKind
        if useHarary {
            let maxDegree = (n - 2) / 2 * 2
            degree = large ? 20 : 2 * (1 + Int(random.nextUInt64(below: UInt64(maxDegree / 2))))
            graph = .harary(degree: degree)
        } else {
            degree = n - 1
            graph = .complete
        }
        let t = degree / 2 + 1
        let bitWidth = [1, 8, 16, 31, 32, 33, 48, 64][Int(random.nextUInt64(below: 8))]
        let threat: ThreatModel = random.nextUInt64(below: 3) == 0 ? .active : .honestButCurious
        let prg: PRGAlgorithm = random.nextUInt64(below: 2) == 0 ? .aes128CTR : .chacha20
        var harness = try RoundHarness(
            cohortSize: n, dimension: 1 + Int(random.nextUInt64(below: 40)), bitWidth: bitWidth, graph: graph,
            threshold: t, threatModel: threat, prg: prg, seed: testCase.seed)
        let dropRate = random.nextUnitDouble() * 0.3
        let phases = Phase.allCases.filter { threat == .active || $0 != .consistencyCheck }
        for d in 0..<UInt32(n) where random.nextUnitDouble() < dropRate {
            harness.dropBefore[d] = phases[Int(random.nextUInt64(below: UInt64(phases.count)))]
        }

        defer { #expect(harness.serverViolations.isEmpty, "\(testCase): \(harness.serverViolations)") }
        switch harness.run() {
        case let .finished(result):
            #expect(result.sum == harness.plaintextSum(of: result.survivors), "\(testCase) n=\(n) k=\(degree) b=\(bitWidth) \(threat)")
            // Every device that sent its masked input is counted, and no silent device is.
            for d in result.survivors { #expect((harness.dropBefore[d] ?? .unmasking) > .maskedInputCollection || harness.dropBefore[d] == nil) }
            #expect(result.misbehaving.isEmpty)
            return true
        case let .aborted(reason):
            // Only dropouts can explain an abort here: no party misbehaved.
            #expect(!harness.dropBefore.isEmpty, "\(testCase) aborted without dropouts: \(reason)")
            switch reason {
            case .tooFewDevices, .notEnoughShares: break
            default: Issue.record("\(testCase) aborted for an unexpected reason: \(reason)")
            }
            return false
        }
    }
}
