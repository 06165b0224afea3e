import Foundation
import Testing
import VeilProtocol
@testable import VeilSimulation

/// Issue 16, item 3: the limit counts every operation the protocol cannot avoid.
@Suite struct WorkModelTests {
    @Test func everyPrimitiveIsMeasuredAndTheirOrderIsPlausible() {
        let c = PrimitiveCosts.measured
        for cost in [c.x25519KeyPair, c.x25519Agreement, c.ed25519Sign, c.ed25519Verify, c.kdf, c.digest, c.aeadSeal, c.aeadOpen, c.shamirSplitUnit, c.shamirReconstructShare] {
            #expect(cost > 0 && cost < 0.01, "\(c)")
        }
        #expect(c.shamirSplit >= 0 && c.shamirSplit < 0.01, "a split's fixed part, from two sizes, may be within noise of 0")
        // A scalar multiplication costs far more than hashing or sealing 100 bytes.
        #expect(c.x25519Agreement > 5 * c.kdf && c.x25519Agreement > 5 * c.aeadSeal && c.ed25519Verify > 5 * c.digest, "\(c)")
    }

    @Test func theCountsFollowTheRoundsSetsAndMatchWhatTheServerDid() throws {
        // 20 devices on the complete graph; a tenth drop before their masked input, so the server
        // must remove pairwise masks of dropped devices as well as every survivor's self mask.
        let scenario = try Scenario.decode(scenarioJSON { $0["dropout"] = ["maskedInputCollection": 0.1] })
        let (report, _) = try SimulationEngine(scenario: scenario, workers: 2).runRound()
        try #require(report.correct && report.survivors < 20, "\(report.outcome), \(report.survivors) survivors")
        #expect(report.phaseLimits.map(\.phase) == ThreatModel.honestButCurious.phases.map(\.rawValue))
        let limits = Dictionary(uniqueKeysWithValues: report.phaseLimits.map { ($0.phase, $0) })
        let t = Double(report.threshold)
        let vectorBytes = Double(report.dimension * 4)

        // Everyone advertised and shared: each device dealt to its 19 neighbours.
        let share = try #require(limits["share-keys"]).deviceWork
        #expect(share.agreements == 19 && share.seals == 19 && share.kdfs == 38 && share.splits == 2 && share.splitUnits == 2 * 19 * t && share.digests == 40)
        #expect(limits["advertise-keys"]?.deviceWork.keyPairs == 2 && limits["advertise-keys"]?.deviceWork.signatures == 0)
        // A survivor opened and masked with every neighbour that shared: all 19.
        let masked = try #require(limits["masked-input-collection"])
        #expect(masked.deviceWork.opens == 19 && masked.deviceWork.expandedBytes == 20 * vectorBytes)
        #expect(masked.serverWork.addedBytes == Double(report.survivors) * vectorBytes)
        // The server's unmasking: exactly the expansions and reconstructions it made.
        let unmasking = try #require(limits["unmasking"]).serverWork
        #expect(unmasking.expandedBytes / vectorBytes == Double(report.maskExpansions))
        #expect(unmasking.reconstructShares / t == Double(report.reconstructions))
        #expect(unmasking.agreements == Double(report.maskExpansions - report.survivors))
        // Every limit is positive where there is work, and the totals add up.
        #expect(report.phaseLimits.allSatisfy { $0.serverLimitSeconds > 0 })
        #expect(["advertise-keys", "share-keys", "masked-input-collection"].allSatisfy { (limits[$0]?.deviceLimitSeconds ?? 0) > 0 })
        #expect(limits["unmasking"]?.deviceLimitSeconds == 0, "an honest-but-curious device only reveals shares it holds")
        #expect(abs(report.serverLimitSeconds - report.phaseLimits.reduce(0) { $0 + $1.serverLimitSeconds }) < 1e-12)
        #expect(report.serverLimitRatio > 0 && report.deviceLimitRatio > 0)
    }

    @Test func theActiveModelAddsSignaturesAndTheirChecks() throws {
        let scenario = try Scenario.decode(scenarioJSON {
            $0["threatModel"] = "active"
            $0["dropout"] = [String: Double]()
        })
        let (report, _) = try SimulationEngine(scenario: scenario, workers: 2).runRound()
        try #require(report.correct)
        let limits = Dictionary(uniqueKeysWithValues: report.phaseLimits.map { ($0.phase, $0) })
        #expect(limits["advertise-keys"]?.deviceWork.signatures == 1 && limits["advertise-keys"]?.serverWork.verifications == 20)
        #expect(limits["share-keys"]?.deviceWork.verifications == 19)
        #expect(limits["consistency-check"]?.deviceWork.signatures == 1 && limits["consistency-check"]?.serverWork.verifications == 20)
        #expect(limits["unmasking"]?.deviceWork.verifications == 19)
    }
}
