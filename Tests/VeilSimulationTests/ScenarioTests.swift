import Foundation
import Testing
import VeilCrypto
import VeilProtocol
@testable import VeilSimulation

/// A small valid scenario as JSON, with `edit` applied to its dictionary first.
func scenarioJSON(_ edit: (inout [String: Any]) -> Void = { _ in }) -> Data {
    var object: [String: Any] = [
        "name": "tiny", "description": "test", "devices": 20, "dimension": 16, "bitWidth": 24,
        "prg": "chacha20", "graph": ["kind": "complete", "threshold": 11], "threatModel": "honest-but-curious",
        "dropout": ["shareKeys": 0.05, "unmasking": 0.05],
        "data": [["start": 0, "end": 8, "kind": "uniform", "value": 100], ["start": 8, "end": 16, "kind": "zipf", "value": 10, "spread": 1.0]],
        "seed": 7,
    ]
    edit(&object)
    return try! JSONSerialization.data(withJSONObject: object)
}

@Suite struct ScenarioParsingTests {
    @Test func shippedScenariosAllParse() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Simulations").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 9)
        for file in files { _ = try AnyScenario.load(path: folder.appendingPathComponent(file).path) }
    }

    /// Bad files, each with the field its error must name.
    nonisolated(unsafe) static let badFiles: [(String, (inout [String: Any]) -> Void)] = [
        ("devices", { (o: inout [String: Any]) in o["devices"] = 2 }),
        ("devices", { (o: inout [String: Any]) in o.removeValue(forKey: "devices") }),
        ("bitWidth", { (o: inout [String: Any]) in o["bitWidth"] = 65 }),
        ("dimension", { (o: inout [String: Any]) in o["dimension"] = "many" }),
        ("graph.kind", { (o: inout [String: Any]) in o["graph"] = ["kind": "star"] }),
        ("graph.degree", { (o: inout [String: Any]) in o["graph"] = ["kind": "harary", "degree": 7] }),
        ("graph.degree", { (o: inout [String: Any]) in o["graph"] = ["kind": "harary"] }),
        ("dropout.unmasking", { (o: inout [String: Any]) in o["dropout"] = ["unmasking": 1.5] }),
        ("dropout.consistencyCheck", { (o: inout [String: Any]) in o["dropout"] = ["consistencyCheck": 0.1] }),
        ("data[1].kind", { (o: inout [String: Any]) in o["data"] = [["start": 0, "end": 1, "kind": "constant", "value": 1], ["start": 0, "end": 1, "kind": "pareto", "value": 1]] }),
        ("data[0]", { (o: inout [String: Any]) in o["data"] = [["start": 10, "end": 99, "kind": "constant", "value": 1]] }),
        ("misbehaving[0].kind", { (o: inout [String: Any]) in o["misbehaving"] = [["kind": "forged-signature", "count": 1]] }),
        ("prg", { (o: inout [String: Any]) in o["prg"] = "rc4" }),
        // Simulated time (issue 16).
        ("network", { (o: inout [String: Any]) in o["network"] = "5g" }),
        ("network.latencyMs", { (o: inout [String: Any]) in o["network"] = ["uplinkKbps": ["kind": "constant", "value": 1]] }),
        ("network", { (o: inout [String: Any]) in o["network"] = ["profile": "lan", "latencyMs": ["kind": "lognormal", "median": 10, "p99": 5]] }),
        ("network", { (o: inout [String: Any]) in o["network"] = ["profile": "lan", "stragglers": ["fraction": 2, "factor": 3]] }),
        ("deadlines.sharekeys", { (o: inout [String: Any]) in o["network"] = "lan"; o["deadlines"] = ["sharekeys": 3] }),
        ("deadlines.default", { (o: inout [String: Any]) in o["network"] = "lan"; o["deadlines"] = ["default": -1] }),
        ("deadlines", { (o: inout [String: Any]) in o["deadlines"] = ["default": 5] }),
    ]

    /// Each bad file gives an error that names the field at fault.
    @Test(arguments: 0..<20)
    func badFieldsAreNamed(index: Int) {
        let (field, edit) = Self.badFiles[index]
        do {
            _ = try Scenario.decode(scenarioJSON(edit))
            Issue.record("accepted a bad \(field)")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }

    @Test func overridesApplyAndRevalidate() throws {
        let base = try Scenario.decode(scenarioJSON())
        var o = ScenarioOverrides()
        o.devices = 50
        o.dropout = 0.1
        o.protocolName = "secagg"
        o.threatModel = .active
        let changed = try base.applying(o)
        #expect(changed.devices == 50 && changed.graph.kind == "complete" && changed.threatModel == .active)
        #expect(abs(changed.dropout.total - 0.1) < 1e-9)
        var bad = ScenarioOverrides()
        bad.protocolName = "secagg++"
        #expect(throws: ScenarioError.self) { try base.applying(bad) }
    }
}

@Suite struct SimulationRunTests {
    @Test func oracleCatchesACorruptedOutput() throws {
        var expected = ModularVector(zerosOfCount: 10, bitWidth: 16)
        expected.add(try ModularVector(values: Array(repeating: 3, count: 10), bitWidth: 16))
        var corrupted = try ModularVector(values: Array(repeating: 3, count: 10), bitWidth: 16)
        #expect(Oracle.mismatches(output: corrupted, expected: expected).isEmpty)
        corrupted.add(try ModularVector(values: [0, 0, 0, 1, 0, 0, 0, 0, 0, 2], bitWidth: 16))
        #expect(Oracle.mismatches(output: corrupted, expected: expected) == [3, 9])
        #expect(Oracle.mismatches(output: ModularVector(zerosOfCount: 9, bitWidth: 16), expected: expected).count == 10)
    }

    /// A small deterministic run, checked field by field.
    @Test func smallDeterministicRunReport() throws {
        let scenario = try Scenario.decode(scenarioJSON())
        let report = try SimulationEngine(scenario: scenario, workers: 2, batchSize: 7).run()
        #expect(report.correct)
        #expect(report.outcome == "finished")
        #expect(report.devices == 20 && report.dimension == 16 && report.bitWidth == 24)
        #expect(report.protocol == "secagg" && report.threatModel == "honest-but-curious" && report.prg == "chacha20")
        #expect(report.neighbors == 19)
        #expect(report.threshold == 11)
        #expect(report.survivors > 0 && report.survivors <= 20)
        #expect(report.phases.map(\.phase) == ["advertise-keys", "share-keys", "masked-input-collection", "unmasking"])
        #expect(report.phases[0].answered + report.phases[0].dropped == 20)
        #expect(report.phases[2].answered == report.survivors)
        #expect(report.plaintextBytes == 16 * 3)
        #expect(report.bytesUpPerDevice > Double(report.plaintextBytes))
        #expect(report.totalSeconds > 0 && report.serverSeconds > 0 && report.deviceSecondsMax >= report.deviceSecondsMean)
        #expect(report.serverLimitRatio > 0 && report.deviceLimitRatio > 0)
        #expect(report.peakRSSBytes > 0)
        #expect(report.mismatchCount == 0)
        // Same seed, same figures that do not depend on timing.
        let again = try SimulationEngine(scenario: scenario, workers: 1, batchSize: 3).run()
        #expect(again.survivors == report.survivors && again.bytesUpPerDevice == report.bytesUpPerDevice && again.threshold == report.threshold)
        // The JSON has every key the issue names.
        let json = try JSONSerialization.jsonObject(with: report.json()) as! [String: Any]
        for key in ["correct", "devices", "survivors", "dimension", "bitWidth", "protocol", "neighbors", "threshold", "totalSeconds",
                    "serverSeconds", "deviceSecondsMean", "deviceSecondsMax", "bytesUpPerDevice", "bytesDownPerDevice", "peakRSSBytes",
                    "serverLimitRatio", "deviceLimitRatio", "phases"] {
            #expect(json[key] != nil, "missing \(key)")
        }
        let html = HTMLReport.page(report)
        #expect(html.contains("<svg") && html.contains("tiny") && html.contains("correct"))
    }

    @Test func misbehavingDevicesAreCaughtAndTheSumStaysCorrect() throws {
        let scenario = try Scenario.decode(scenarioJSON { o in
            o["devices"] = 40
            o["threatModel"] = "active"
            o["graph"] = ["kind": "complete", "threshold": 24]
            o["misbehaving"] = [["kind": "wrong-share", "count": 2], ["kind": "forged-signature", "count": 1], ["kind": "garbage-message", "count": 1]]
        })
        let report = try SimulationEngine(scenario: scenario, workers: 2).run()
        #expect(report.correct, "\(report.outcome)")
        #expect(report.rejections["invalidSignature"] == 1)
        #expect(report.rejections["undecodable message"] == 1)
        #expect(report.misbehavingNamed >= 2)
    }
}
