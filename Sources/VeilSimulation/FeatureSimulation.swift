public import Foundation
import VeilCrypto
import VeilPrivacy
public import VeilFeatures
import VeilProtocol

/// Runs a feature scenario in this process: per window, every active device encodes its raw
/// observations with the feature layout, rounds of the real protocol (the same engine as
/// `veil-sim run` of a round scenario, each round with fresh seeds) aggregate them, devices the
/// first round did not count go into the next round of the window, and the window's sum is
/// decoded and checked against the plaintext computation over exactly the counted devices.
public struct FeatureSimulation: Sendable {
    /// The scenario to run (validated).
    public let scenario: FeatureScenario
    /// Worker threads for device work and unmasking.
    public let workers: Int

    /// Creates a run.
    public init(scenario: FeatureScenario, workers: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.scenario = scenario
        self.workers = max(1, workers)
    }

    /// Runs every window (once per ε of ``FeatureScenario/epsilons`` with privacy); `progress`
    /// receives (window index, windows).
    public func run(progress: ((Int, Int) -> Void)? = nil) throws(ScenarioError) -> FeatureSimulationReport {
        let runs = scenario.privacyRuns
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        let clock = ContinuousClock()
        let started = clock.now
        var windows: [FeatureWindowReport] = []
        for (r, epsilon) in runs.enumerated() {
            let layout = try scenario.privateLayout(epsilon: epsilon)
            // This run's budget ledger: every window it charged, composed (SPEC.md §12.4).
            var charged = 0
            for w in 0..<scenario.windows {
                progress?(r * scenario.windows + w, runs.count * scenario.windows)
                windows.append(try runWindow(w, run: r, epsilon: epsilon, layout: layout, synthesis: synthesis, charged: &charged))
            }
        }
        let seconds = (clock.now - started)
        return FeatureSimulationReport(
            scenario: scenario, mode: "in-process", layout: try scenario.layout(),
            totalSeconds: Double(seconds.components.seconds) + Double(seconds.components.attoseconds) * 1e-18,
            connections: nil, apiReads: nil, windows: windows)
    }

    /// One window of run `run`: rounds until every active device is counted or the rounds are
    /// used up; with privacy, first the budget's charge, devices noise their vectors, and the
    /// window's estimates are checked against their bounds.
    private func runWindow(
        _ w: Int, run: Int, epsilon: Double?, layout: FeatureLayout, synthesis: FeatureObservationSynthesis, charged: inout Int
    ) throws(ScenarioError) -> FeatureWindowReport {
        let active = (0..<scenario.devices).filter { synthesis.isActive(device: $0, window: w) }
        var observations: [Int: WindowObservations] = [:]
        for d in active { observations[d] = synthesis.observations(device: d, window: w) }
        let raw = observations
        let plan = layout.privacy
        var spent = 0.0
        if let plan {
            let delta = plan.settings.delta
            let wouldBe = plan.windowCurve.composed(times: charged + 1).epsilon(delta: delta).epsilon
            spent = charged == 0 ? 0 : plan.windowCurve.composed(times: charged).epsilon(delta: delta).epsilon
            if let budget = plan.settings.budget?.epsilon, wouldBe > budget {
                return FeatureWindowReport(
                    windowStart: scenario.windowStart(w), activeDevices: active.count, contributors: 0, released: false, rounds: [],
                    features: [], countedUnaware: nil, alreadyCounted: nil, problems: [],
                    privacy: WindowPrivacy(targetEpsilon: epsilon, windowEpsilon: plan.windowEpsilon, spentEpsilon: spent,
                                           budgetEpsilon: budget, refused: true, statistics: []))
            }
            charged += 1
            spent = wouldBe
        }
        var pending = active
        var counted: [Int] = []
        var sum = ModularVector(zerosOfCount: layout.dimension, bitWidth: scenario.featureSet.bitWidth)
        var rounds: [FeatureRoundSummary] = []
        var problems: [String] = []
        let seed = scenario.seed
        for attempt in 0..<scenario.roundsPerWindow where pending.count >= 3 {
            let cohort = pending
            let roundScenario = try scenario.roundScenario(cohort: cohort.count, window: w, attempt: attempt)
            var engine = SimulationEngine(scenario: roundScenario, workers: workers) { index in
                // Every observation of the device is valid for the layout, so encoding cannot fail.
                let encoded = try! layout.encode(raw[cohort[Int(index)]]!)
                guard layout.privacy != nil else { return encoded }
                // The device's own noise, reproducible from the scenario's seed.
                var random = SeededRandomSource(seed: seed, label: "dp-noise/\(run)/\(w)/\(attempt)/\(cohort[Int(index)])")
                var bits = NoiseBits(using: &random)
                return layout.privatize(encoded, bits: &bits)
            }
            if let plan { engine.minimumSurvivors = plan.settings.minimumSurvivors }
            let report: SimulationReport
            let outcome: AggregationOutcome
            do {
                (report, outcome) = try engine.runRound()
            } catch {
                // Too few devices remain for safe parameters: the window ends with the rounds it had.
                rounds.append(FeatureRoundSummary(
                    attempt: attempt, round: roundScenario.name, devices: cohort.count, survivors: 0, outcome: "not run: \(error)",
                    sumCorrect: true, neighbors: 0, threshold: 0, seconds: 0, serverSeconds: 0, bytesUpPerDevice: 0))
                break
            }
            if case let .finished(result) = outcome {
                let now = result.survivors.map { cohort[Int($0)] }
                counted += now
                sum.add(result.sum)
                let done = Set(now)
                pending.removeAll { done.contains($0) }
            }
            rounds.append(FeatureRoundSummary(
                attempt: attempt, round: roundScenario.name, devices: report.devices, survivors: report.survivors,
                outcome: report.outcome, sumCorrect: report.correct, neighbors: report.neighbors, threshold: report.threshold,
                seconds: report.totalSeconds, serverSeconds: report.serverSeconds, bytesUpPerDevice: report.bytesUpPerDevice))
        }
        if Set(counted).count != counted.count { problems.append("a device was counted twice in the window") }
        let expected = FeatureOracle.expected(counted.sorted().map { raw[$0]! }, set: scenario.featureSet)
        let released = counted.count >= scenario.minimumReleaseCohort
        if let plan {
            let estimates = counted.isEmpty ? nil : try? layout.estimate(sum, contributors: counted.count)
            let (checks, statistics) = FeatureOracle.checkEstimates(estimates, expected: expected, set: scenario.featureSet)
            return FeatureWindowReport(
                windowStart: scenario.windowStart(w), activeDevices: active.count, contributors: counted.count, released: released,
                rounds: rounds, features: counted.isEmpty ? [] : checks, countedUnaware: nil, alreadyCounted: nil, problems: problems,
                privacy: WindowPrivacy(targetEpsilon: epsilon, windowEpsilon: plan.windowEpsilon, spentEpsilon: spent,
                                       budgetEpsilon: plan.settings.budget?.epsilon, refused: false, statistics: released ? statistics : []))
        }
        let decoded = counted.isEmpty ? nil : try? layout.decode(sum)
        if let decoded, decoded.contributors != UInt64(counted.count) {
            problems.append("the sum says \(decoded.contributors) contributors, the rounds counted \(counted.count)")
        }
        let checks = FeatureOracle.check(decoded ?? Self.emptyValues(layout), expected: expected, set: scenario.featureSet)
        return FeatureWindowReport(
            windowStart: scenario.windowStart(w), activeDevices: active.count, contributors: counted.count,
            released: released, rounds: rounds, features: checks,
            countedUnaware: nil, alreadyCounted: nil, problems: problems)
    }

    /// The values an empty window decodes to (no contributors).
    public static func emptyValues(_ layout: FeatureLayout) -> FeatureSetValues {
        try! layout.decode(ModularVector(zerosOfCount: layout.dimension, bitWidth: layout.featureSet.bitWidth))
    }
}
