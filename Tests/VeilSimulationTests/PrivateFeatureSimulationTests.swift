import Foundation
import Testing
import VeilCrypto
import VeilFeatures
import VeilPrivacy
import VeilProtocol
@testable import VeilSimulation

/// The feature simulator with distributed differential privacy (SPEC.md §12.4): accuracy against
/// ε through the real protocol, the budget refusing windows, and an oracle that catches noise
/// larger than a release states.
@Suite struct PrivateFeatureSimulationTests {
    static func scenario(epsilons: [Double], budget: Double) throws -> FeatureScenario {
        try FeatureScenario.decode(featureScenarioJSON { o in
            o["devices"] = 60
            o["windows"] = 3
            o["activeFraction"] = 1.0
            o["epsilons"] = epsilons
            var set = o["featureSet"] as! [String: Any]
            set["privacy"] = ["epsilon": 1.0, "delta": 1e-6, "minimumSurvivors": 20, "budget": ["epsilon": budget]]
            o["featureSet"] = set
        })
    }

    @Test func accuracyFollowsEpsilonAndTheBudgetRefusesLateWindows() throws {
        let scenario = try Self.scenario(epsilons: [0.5, 8], budget: 12)
        let report = try FeatureSimulation(scenario: scenario, workers: 2).run()
        #expect(report.correct, "\(report.table())")
        let accuracy = try #require(report.accuracy)
        let quiet = accuracy.filter { $0.windowEpsilon < 1 }, loud = accuracy.filter { $0.windowEpsilon > 4 }
        #expect(!quiet.isEmpty && !loud.isEmpty)
        for feature in ["crash", "app", "temp", "speed"] {
            let q = try #require(quiet.first { $0.feature == feature }), l = try #require(loud.first { $0.feature == feature })
            #expect(q.meanBound > 4 * l.meanBound, "\(feature): 16× the ε costs much accuracy: bound \(q.meanBound) vs \(l.meanBound)")
        }
        // ε 0.5 per window: three windows fit in 12. ε 8: the second window would pass it.
        #expect(quiet.allSatisfy { $0.windowsReleased == 3 && $0.windowsRefused == 0 })
        #expect(loud.allSatisfy { $0.windowsReleased == 1 && $0.windowsRefused == 2 })
        let refused = report.windows.filter { $0.privacy?.refused == true }
        #expect(refused.count == 2 && refused.allSatisfy { $0.rounds.isEmpty && $0.contributors == 0 })
        #expect(HTMLReport.page(report).contains("error against its stated 95 % bound"))
    }

    /// The oracle fails noise larger than the release states: devices noise for ε = 0.05, the
    /// release claims the plan of ε = 4.
    @Test func theOracleCatchesMisSizedNoise() throws {
        let scenario = try Self.scenario(epsilons: [4], budget: 100)
        let stated = try scenario.privateLayout(epsilon: 4), actual = try scenario.privateLayout(epsilon: 0.05)
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        var exact: [WindowObservations] = []
        var fair = ModularVector(zerosOfCount: stated.dimension, bitWidth: 48)
        var misSized = ModularVector(zerosOfCount: stated.dimension, bitWidth: 48)
        var statisticsFair: [EstimateCheck] = [], statisticsMisSized: [EstimateCheck] = []
        var featuresMisSized: [FeatureCheck] = []
        for w in 0..<3 {
            exact = []
            fair = ModularVector(zerosOfCount: stated.dimension, bitWidth: 48)
            misSized = ModularVector(zerosOfCount: stated.dimension, bitWidth: 48)
            for d in 0..<60 {
                let observations = synthesis.observations(device: d, window: w)
                exact.append(observations)
                var random = SeededRandomSource(seed: 9, label: "mis-sized/\(w)/\(d)")
                var bits = NoiseBits(using: &random)
                fair.add(stated.privatize(try stated.encode(observations), bits: &bits))
                misSized.add(actual.privatize(try actual.encode(observations), bits: &bits))
            }
            let expected = FeatureOracle.expected(exact, set: scenario.featureSet)
            statisticsFair += FeatureOracle.checkEstimates(try stated.estimate(fair, contributors: 60), expected: expected, set: scenario.featureSet).statistics
            let wrong = FeatureOracle.checkEstimates(try stated.estimate(misSized, contributors: 60), expected: expected, set: scenario.featureSet)
            statisticsMisSized += wrong.statistics
            featuresMisSized += wrong.features
        }
        #expect(FeatureOracle.coverageHolds(statisticsFair), "correctly sized noise is covered")
        #expect(!FeatureOracle.coverageHolds(statisticsMisSized), "noise 80× the stated variance is not")
        #expect(featuresMisSized.contains { !$0.ok })
    }
}
