import Foundation
import Testing
import VeilProtocol
@testable import VeilSimulation

/// Issue 16, item 2: `veil-sim plan` predicts without running, and `--verify` agrees with it.
@Suite struct RoundPlanTests {
    static func scenario(devices: Int, graph: String, model: ThreatModel, network: String, dropout: Double = 0.05) -> Scenario {
        Scenario(
            name: "plan", devices: devices, dimension: 200, bitWidth: 32, graph: .init(kind: graph, degree: nil, threshold: nil, corruptFraction: nil),
            threatModel: model, dropout: .spread(dropout, over: model.phases), data: [.init(start: 0, end: 200, kind: "uniform", value: 100)],
            seed: 3, network: NetworkSpec.profiles[network])
    }

    /// Without dropout the byte model is checked alone (1 %); with it, the run's own draws move
    /// the sets a little from their expectation (3 %).
    @Test(arguments: [(150, "complete", ThreatModel.honestButCurious, 0.0), (300, "auto", .honestButCurious, 0.05), (300, "auto", .active, 0.05)])
    func predictedBytesMatchTheWireAndTheDeadlinesHold(devices: Int, graph: String, model: ThreatModel, dropout: Double) throws {
        var scenario = Self.scenario(devices: devices, graph: graph, model: model, network: "4g", dropout: dropout)
        let plan = try RoundPlan.make(for: scenario, workers: 2)
        #expect(plan.phases.map(\.phase) == model.phases.map(\.rawValue))
        scenario.deadlines = plan.deadlines()
        let report = try SimulationEngine(scenario: scenario, workers: 2).run()
        try #require(report.correct, "\(report.outcome)")
        #expect(report.neighbors == plan.neighbours && report.threshold == plan.threshold, "the plan chose what the run chose")
        // Bytes come from the message layout and the expected dropout alone; the run's come from
        // the real encoder and the dropouts its seed drew (hence a few percent).
        let tolerance = dropout > 0 ? 0.03 : 0.01
        #expect(abs(report.bytesUpPerDevice / plan.bytesUpPerDevice - 1) < tolerance, "up: planned \(plan.bytesUpPerDevice), measured \(report.bytesUpPerDevice)")
        #expect(abs(report.bytesDownPerDevice / plan.bytesDownPerDevice - 1) < tolerance, "down: planned \(plan.bytesDownPerDevice), measured \(report.bytesDownPerDevice)")
        // The suggested deadlines cut about what the plan says: at most a few devices a phase.
        let simulated = try #require(report.simulated)
        #expect(simulated.phases.allSatisfy { Double($0.cutByDeadline) <= max(3, 0.01 * Double(devices)) }, "\(simulated.phases.map(\.cutByDeadline))")
        // With dropout every phase waits for its deadline, without it for its last answer, as
        // planned; the round lasts about as long.
        #expect(abs(simulated.roundSeconds / plan.roundSeconds - 1) < 0.1, "planned \(plan.roundSeconds), simulated \(simulated.roundSeconds)")
    }

    @Test func deadlinesAreRoundNumbersAboveTheArrivals() throws {
        let plan = try RoundPlan.make(for: Self.scenario(devices: 1000, graph: "auto", model: .honestButCurious, network: "constrained-iot"), workers: 2)
        for phase in plan.phases {
            #expect(phase.suggestedDeadlineSeconds >= 1.25 * phase.arrivalP999 && phase.expectedCutFraction <= 0.001)
            let mantissa = phase.suggestedDeadlineSeconds / Foundation.pow(10, Foundation.log10(phase.suggestedDeadlineSeconds).rounded(.down))
            #expect([1.0, 2, 5, 10].contains { abs($0 - mantissa) < 1e-9 }, "\(phase.suggestedDeadlineSeconds)")
        }
        #expect(plan.phaseTimeoutSeconds == plan.phases.map(\.suggestedDeadlineSeconds).max())
        #expect(plan.largestElementValue * 1000 <= Foundation.pow(2, 32))
        #expect([1.0, 2, 5].map(RoundPlan.roundUp) == [1, 2, 5] && RoundPlan.roundUp(2.01) == 5 && RoundPlan.roundUp(0.03) == 0.1 && RoundPlan.roundUp(51) == 100)
    }

    /// The plan's picture: the planned phases one after another on a time axis, each ending no
    /// earlier than its arrivals allow, and one arrival chart per phase against its deadline.
    @Test func thePlanDrawsItsTimelineAndEachPhasesArrivals() throws {
        let plan = try RoundPlan.make(for: Self.scenario(devices: 1000, graph: "auto", model: .honestButCurious, network: "4g"), workers: 2)
        let timing = plan.timing
        #expect(timing.phases.map(\.phase) == plan.phases.map(\.phase))
        #expect(abs(timing.roundSeconds - plan.roundSeconds) < 1e-9)
        for (a, b) in zip(timing.phases, timing.phases.dropFirst()) { #expect(abs(a.startSeconds + a.durationSeconds - b.startSeconds) < 1e-9) }
        for (p, t) in zip(plan.phases, timing.phases) {
            #expect(!p.arrivalSample.isEmpty && p.arrivalSample.count <= 201 && p.arrivalSample == p.arrivalSample.sorted())
            #expect(t.deadlineSeconds == p.suggestedDeadlineSeconds && t.arrivalP99 == p.arrivalP99)
        }
        let html = HTMLReport.page(plan, verification: nil)
        #expect(html.contains("The round as planned on the 4g network"))
        for p in plan.phases { #expect(html.contains("<h3>\(p.phase): answers' arrival")) }
        #expect(!html.contains("0.000 s") && !html.contains("nan"))
    }
}
