import Foundation
import Testing
import VeilNetworkSimulation
import VeilSimulation

/// Issue 16, item 5: simulated time against a real aggregator on loopback with the same links
/// emulated. Stragglers' latency alone passes the deadline and every other device answers well
/// inside it, so the cuts must agree exactly while the timings may differ by the real stack's cost.
@Suite struct ModelCheckTests {
    /// 30 devices on a constant 80 ms link; a fifth are stragglers at 40 × (3.2 s one way) against
    /// a 1.5 s deadline; `silent` of them go silent at ShareKeys.
    static func scenario(silentAtShareKeys silent: Double) throws -> Scenario {
        let object: [String: Any] = [
            "name": "model-check-test", "devices": 30, "dimension": 64, "bitWidth": 24, "prg": "chacha20",
            "graph": ["kind": "complete", "threshold": 16], "dropout": ["shareKeys": silent],
            "data": [["start": 0, "end": 64, "kind": "uniform", "value": 100]],
            "network": [
                "latencyMs": ["kind": "constant", "value": 80], "uplinkKbps": ["kind": "constant", "value": 10_000],
                "downlinkKbps": ["kind": "constant", "value": 10_000], "computeFactor": ["kind": "constant", "value": 2],
                "stragglers": ["fraction": 0.2, "factor": 40],
            ],
            "deadlines": ["default": 1.5], "seed": 11,
        ]
        return try Scenario.decode(JSONSerialization.data(withJSONObject: object))
    }

    @Test func loopbackWithEmulatedLinksAgreesWithSimulatedTime() async throws {
        let report = try await ModelCheck(scenario: Self.scenario(silentAtShareKeys: 0), devicesPerConnection: 10).run()
        #expect(report.correct)
        let predicted = report.predicted, measured = report.measured
        #expect(predicted.cutByDeadline > 0, "the seed must draw stragglers for the test to mean anything")
        #expect(measured.cutByDeadline == predicted.cutByDeadline)
        #expect(measured.phases.map(\.phase) == predicted.phases.map(\.phase))
        for (p, m) in zip(predicted.phases, measured.phases) {
            #expect(m.cutByDeadline == p.cutByDeadline, "\(p.phase)")
            #expect(m.waitedForDeadline == p.waitedForDeadline, "\(p.phase)")
            // Emulated sleeps never end early; the real stack adds its own time on top.
            #expect(m.durationSeconds >= p.durationSeconds - 0.02 && m.durationSeconds <= p.durationSeconds * 1.5 + 0.5,
                    "\(p.phase): predicted \(p.durationSeconds) s, measured \(m.durationSeconds) s")
        }
        // Only AdvertiseKeys waits for its deadline (the stragglers); the rest end at their last answer.
        #expect(predicted.phases.first?.waitedForDeadline == true && predicted.phases.dropFirst().allSatisfy { !$0.waitedForDeadline })
        #expect(report.table().contains("round"))
    }

    @Test func aSilentDeviceHoldsThePhaseToItsDeadlineOnBothSides() async throws {
        let report = try await ModelCheck(scenario: Self.scenario(silentAtShareKeys: 0.2), devicesPerConnection: 10).run()
        #expect(report.correct)
        let shareKeys = try #require(report.predicted.phases.first { $0.phase == "share-keys" })
        let measured = try #require(report.measured.phases.first { $0.phase == "share-keys" })
        #expect(shareKeys.waitedForDeadline && measured.waitedForDeadline)
        #expect(measured.durationSeconds >= 1.5)
        // The silent devices are dropouts, not deadline cuts.
        #expect(measured.cutByDeadline == 0 && shareKeys.cutByDeadline == 0)
    }

    @Test func aScenarioWithoutANetworkOrWithPerPhaseDeadlinesIsRefused() async throws {
        var scenario = try Self.scenario(silentAtShareKeys: 0)
        scenario.network = nil
        await #expect(throws: ScenarioError.self) { try await ModelCheck(scenario: scenario).run() }
        scenario = try Self.scenario(silentAtShareKeys: 0)
        scenario.deadlines = DeadlineSpec(default: 1.5, phases: ["shareKeys": 3])
        await #expect(throws: ScenarioError.self) { try await NetworkSimulation(scenario: scenario).run() }
    }
}
