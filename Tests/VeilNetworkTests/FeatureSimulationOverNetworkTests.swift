import Foundation
import Testing
import VeilFeatures
import VeilPrivacy
import VeilProtocol
@testable import VeilNetworkSimulation
import VeilSimulation

/// The feature simulator against a real aggregator: devices with durable observation stores,
/// rounds started over the HTTP API, windows read back over it and checked.
@Suite(.serialized) struct FeatureSimulationOverNetworkTests {
    static let scenarioJSON = """
        {"name": "net-features", "devices": 50, "windows": 2, "windowSeconds": 3600, "start": 1800000000,
         "minimumReleaseCohort": 40, "roundsPerWindow": 2, "activeFraction": 0.95, "graph": {"kind": "complete"},
         "dropout": {"shareKeys": 0.02, "maskedInputCollection": 0.02, "unmasking": 0.08},
         "featureSet": {"name": "net", "version": 1, "bitWidth": 48, "maximumCohort": 1000, "features": [
           {"name": "speed", "kind": "numeric", "minimum": 0, "maximum": 100, "precision": 0.5, "maximumValuesPerDevice": 10},
           {"name": "app", "kind": "categorical", "vocabulary": ["a", "b", "c"], "maximumValuesPerDevice": 8},
           {"name": "crash", "kind": "eventCount", "maximumValuesPerDevice": 2}]},
         "observations": {
           "speed": {"perDevice": [0, 12], "distribution": "normal", "mean": 50, "standardDeviation": 40},
           "app": {"perDevice": [0, 10], "distribution": "zipf", "exponent": 1, "outOfVocabulary": 0.1},
           "crash": {"perDevice": [0, 3]}},
         "seed": 3}
        """

    @Test func windowsOverTheNetworkMatchThePlaintextAndNoDeviceCountsTwice() async throws {
        let scenario = try FeatureScenario.decode(Data(Self.scenarioJSON.utf8))
        let simulation = FeatureNetworkSimulation(scenario: scenario, devicesPerConnection: 10)
        let report = try await simulation.run()
        #expect(report.correct, "\(report.table())")
        #expect(report.mode == "network" && report.connections == 5 && report.apiReads == 4)
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        for (w, window) in report.windows.enumerated() {
            #expect(window.problems.isEmpty)
            #expect(window.contributors == window.rounds.reduce(0) { $0 + $1.survivors })
            #expect(window.released == (window.contributors >= 40))
            // Devices that dropped during unmasking of the first round were counted without
            // hearing it. Their masked inputs were sent, so the window is spent on each of them
            // (SPEC.md §12.1): they never offer it again, and stay unaware of being counted.
            let active = (0..<50).filter { synthesis.isActive(device: $0, window: w) }
            let unaware = active.filter { simulation.dropPhase(device: $0, window: w, attempt: 0) == .unmasking }
            #expect(!unaware.isEmpty, "the seed makes some devices drop during unmasking")
            #expect(window.alreadyCounted == 0, "a spent window is not offered again, so nobody needs telling")
            #expect(window.countedUnaware == unaware.count)
        }
    }

    /// Distributed differential privacy through the real aggregator: noised releases checked
    /// within their bounds, and the store's ledger refusing the windows past the budget.
    @Test func privateWindowsAreReleasedWithinTheirBoundsUntilTheBudgetIsSpent() async throws {
        var object = try JSONSerialization.jsonObject(with: Data(Self.scenarioJSON.utf8)) as! [String: Any]
        object["windows"] = 4
        object["dropout"] = ["unmasking": 0.02]
        var set = object["featureSet"] as! [String: Any]
        let privacy: [String: Any] = ["epsilon": 2.0, "delta": 1e-6, "minimumSurvivors": 30]
        set["privacy"] = privacy
        // The budget: exactly two windows' worth.
        let layout = try FeatureLayout(JSONDecoder().decode(FeatureSet.self, from: JSONSerialization.data(withJSONObject: set)))
        let plan = try #require(layout.privacy)
        set["privacy"] = privacy.merging(["budget": ["epsilon": plan.windowCurve.composed(times: 2).epsilon(delta: 1e-6).epsilon * 1.0001]]) { a, _ in a }
        object["featureSet"] = set
        let scenario = try FeatureScenario.decode(JSONSerialization.data(withJSONObject: object))
        let report = try await FeatureNetworkSimulation(scenario: scenario, devicesPerConnection: 10).run()
        #expect(report.correct, "\(report.table())")
        let windows = report.windows
        #expect(windows.count == 4)
        #expect(windows.prefix(2).allSatisfy { $0.released && $0.privacy?.refused == false && !($0.privacy?.statistics.isEmpty ?? true) })
        #expect(windows.suffix(2).allSatisfy { !$0.released && $0.privacy?.refused == true && $0.contributors == 0 }, "\(report.table())")
        #expect(report.accuracy?.allSatisfy { $0.windowsReleased == 2 && $0.windowsRefused == 2 } == true)
    }
}
