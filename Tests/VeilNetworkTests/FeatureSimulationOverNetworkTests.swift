import Foundation
import Testing
import VeilFeatures
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
}
