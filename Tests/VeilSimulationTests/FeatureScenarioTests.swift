import Foundation
import Testing
import VeilCrypto
import VeilFeatures
import VeilProtocol
@testable import VeilSimulation

/// A small valid feature scenario as JSON, with `edit` applied to its dictionary first.
func featureScenarioJSON(_ edit: (inout [String: Any]) -> Void = { _ in }) -> Data {
    var object: [String: Any] = [
        "name": "tiny-features", "devices": 40, "windows": 2, "windowSeconds": 3600, "start": 1_800_000_000,
        "minimumReleaseCohort": 10, "roundsPerWindow": 2, "activeFraction": 0.9, "graph": ["kind": "complete"],
        "dropout": ["shareKeys": 0.02, "maskedInputCollection": 0.02, "unmasking": 0.02],
        "featureSet": [
            "name": "tiny", "version": 1, "bitWidth": 48, "maximumCohort": 1000,
            "features": [
                ["name": "speed", "kind": "numeric", "minimum": 0, "maximum": 100, "precision": 0.5, "maximumValuesPerDevice": 10],
                ["name": "temp", "kind": "histogram", "edges": [0, 10, 20, 30], "maximumValuesPerDevice": 10],
                ["name": "app", "kind": "categorical", "vocabulary": ["a", "b", "c"], "maximumValuesPerDevice": 8],
                ["name": "crash", "kind": "eventCount", "maximumValuesPerDevice": 2],
            ],
        ],
        "observations": [
            "speed": ["perDevice": [0, 12], "distribution": "normal", "mean": 50, "standardDeviation": 40],
            "temp": ["perDevice": [1, 12], "distribution": "uniform", "minimum": -5, "maximum": 35],
            "app": ["perDevice": [0, 10], "distribution": "zipf", "exponent": 1, "outOfVocabulary": 0.1],
            "crash": ["perDevice": [0, 3]],
        ],
        "seed": 5,
    ]
    edit(&object)
    return try! JSONSerialization.data(withJSONObject: object)
}

@Suite struct FeatureScenarioTests {
    /// Bad feature scenarios, each with the field its error must name.
    nonisolated(unsafe) static let badFiles: [(String, (inout [String: Any]) -> Void)] = [
        ("devices", { o in o["devices"] = 2000 }),
        ("windows", { o in o["windows"] = 0 }),
        ("windowSeconds", { o in o["windowSeconds"] = 7000 }),
        ("start", { o in o["start"] = 1_800_000_001 }),
        ("roundsPerWindow", { o in o["roundsPerWindow"] = 0 }),
        ("activeFraction", { o in o["activeFraction"] = 0 }),
        ("featureSet.bitWidth", { o in var s = o["featureSet"] as! [String: Any]; s["bitWidth"] = 80; o["featureSet"] = s }),
        ("featureSet.features[0]", { o in var s = o["featureSet"] as! [String: Any]; s["bitWidth"] = 12; o["featureSet"] = s }),
        ("featureSet.features", { o in var s = o["featureSet"] as! [String: Any]; s.removeValue(forKey: "features"); o["featureSet"] = s }),
        ("observations.wheels", { o in var g = o["observations"] as! [String: Any]; g["wheels"] = ["perDevice": [0, 1]]; o["observations"] = g }),
        ("observations.speed.distribution", { o in var g = o["observations"] as! [String: Any]; g["speed"] = ["perDevice": [0, 1], "distribution": "zipf"]; o["observations"] = g }),
        ("observations.speed.perDevice", { o in var g = o["observations"] as! [String: Any]; g["speed"] = ["perDevice": [5, 1], "distribution": "uniform", "minimum": 0, "maximum": 1]; o["observations"] = g }),
        ("observations.app.outOfVocabulary", { o in var g = o["observations"] as! [String: Any]; g["app"] = ["perDevice": [0, 1], "distribution": "zipf", "exponent": 1, "outOfVocabulary": 1.0]; o["observations"] = g }),
        ("observations.crash.distribution", { o in var g = o["observations"] as! [String: Any]; g["crash"] = ["perDevice": [0, 1], "distribution": "uniform"]; o["observations"] = g }),
        ("dropout.unmasking", { o in o["dropout"] = ["unmasking": 2] }),
        ("graph.kind", { o in o["graph"] = ["kind": "ring"] }),
    ]

    @Test(arguments: 0..<16)
    func badFieldsAreNamed(index: Int) {
        let (field, edit) = Self.badFiles[index]
        do {
            _ = try FeatureScenario.decode(featureScenarioJSON(edit))
            Issue.record("accepted a bad file (\(field))")
        } catch {
            #expect(error.field.hasPrefix(field), "\(error)")
        }
    }

    @Test func overridesApplyAndTheLayoutFixesTheVector() throws {
        let scenario = try FeatureScenario.decode(featureScenarioJSON())
        var overrides = ScenarioOverrides()
        overrides.devices = 60
        overrides.dropout = 0.1
        overrides.seed = 9
        let changed = try scenario.applying(overrides)
        #expect(changed.devices == 60 && changed.seed == 9 && abs(changed.dropout.total - 0.1) < 1e-9)
        overrides.dimension = 10
        #expect(throws: ScenarioError.self) { try scenario.applying(overrides) }
    }

    /// A small deterministic run whose report is checked field by field.
    @Test func inProcessRunChecksEveryFeatureOfEveryWindow() throws {
        let scenario = try FeatureScenario.decode(featureScenarioJSON())
        let report = try FeatureSimulation(scenario: scenario, workers: 2).run()
        #expect(report.correct)
        #expect(report.mode == "in-process" && report.devices == 40 && report.featureSet == "tiny" && report.version == 1)
        #expect(report.dimension == 1 + 4 + 4 + 4 + 2 && report.bitWidth == 48)
        #expect(report.windows.map(\.windowStart) == [1_800_000_000, 1_800_003_600])
        let again = try FeatureSimulation(scenario: scenario, workers: 1).run()
        for (w, v) in zip(report.windows, again.windows) {
            #expect(w.activeDevices <= 40 && w.contributors <= w.activeDevices)
            #expect(w.rounds.first?.devices == w.activeDevices, "the first round invites every active device")
            #expect(w.contributors == w.rounds.reduce(0) { $0 + $1.survivors })
            #expect(w.released == (w.contributors >= 10))
            #expect(w.features.map(\.feature) == ["speed", "temp", "app", "crash"] && w.features.allSatisfy(\.ok))
            // Seeded: the same scenario gives the same survivors and values, whatever the threads.
            #expect(w.contributors == v.contributors && w.features == v.features)
        }
        let json = try JSONSerialization.jsonObject(with: report.json()) as! [String: Any]
        for key in ["correct", "devices", "featureSet", "dimension", "bitWidth", "windows", "totalSeconds", "peakRSSBytes"] {
            #expect(json[key] != nil, "report key \(key)")
        }
        #expect(HTMLReport.page(report).contains("<svg"))
    }

    /// The oracle is not a tautology: a decoded value off by one count, or a mean off by more
    /// than the rounding the precision allows, is a mismatch.
    @Test func theFeatureOracleCatchesWrongValues() throws {
        let scenario = try FeatureScenario.decode(featureScenarioJSON())
        let layout = try scenario.layout()
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        let devices = (0..<20).map { synthesis.observations(device: $0, window: 0) }
        var sum = ModularVector(zerosOfCount: layout.dimension, bitWidth: 48)
        for d in devices { sum.add(try layout.encode(d)) }
        let expected = FeatureOracle.expected(devices, set: scenario.featureSet)
        #expect(FeatureOracle.check(try layout.decode(sum), expected: expected, set: scenario.featureSet).allSatisfy(\.ok))
        // One device too many, one histogram count, one shifted mean.
        var extra = sum
        extra.add(try layout.encode(synthesis.observations(device: 99, window: 0)))
        #expect(!FeatureOracle.check(try layout.decode(extra), expected: expected, set: scenario.featureSet).allSatisfy(\.ok))
        for slot in [layout.offsets[1], layout.offsets[0] + 1] {
            var elements = sum.elements
            elements[slot] += slot == layout.offsets[0] + 1 ? 20 * 10 : 1   // Σq by 200 steps: the mean moves by > p/2
            let tampered = try ModularVector(values: elements, bitWidth: 48)
            let checks = FeatureOracle.check(try layout.decode(tampered), expected: expected, set: scenario.featureSet)
            #expect(checks.contains { !$0.ok }, "slot \(slot)")
        }
    }
}
