public import Foundation
import VeilCrypto
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

    /// Runs every window; `progress` receives (window index, windows).
    public func run(progress: ((Int, Int) -> Void)? = nil) throws(ScenarioError) -> FeatureSimulationReport {
        let layout = try scenario.layout()
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        let clock = ContinuousClock()
        let started = clock.now
        var windows: [FeatureWindowReport] = []
        for w in 0..<scenario.windows {
            progress?(w, scenario.windows)
            let active = (0..<scenario.devices).filter { synthesis.isActive(device: $0, window: w) }
            var observations: [Int: WindowObservations] = [:]
            for d in active { observations[d] = synthesis.observations(device: d, window: w) }
            let raw = observations
            var pending = active
            var counted: [Int] = []
            var sum = ModularVector(zerosOfCount: layout.dimension, bitWidth: scenario.featureSet.bitWidth)
            var rounds: [FeatureRoundSummary] = []
            var problems: [String] = []
            for attempt in 0..<scenario.roundsPerWindow where pending.count >= 3 {
                let cohort = pending
                let roundScenario = try scenario.roundScenario(cohort: cohort.count, window: w, attempt: attempt)
                let engine = SimulationEngine(scenario: roundScenario, workers: workers) { index in
                    // Every observation of the device is valid for the layout, so encoding cannot fail.
                    try! layout.encode(raw[cohort[Int(index)]]!)
                }
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
            let decoded = counted.isEmpty ? nil : try? layout.decode(sum)
            if let decoded, decoded.contributors != UInt64(counted.count) {
                problems.append("the sum says \(decoded.contributors) contributors, the rounds counted \(counted.count)")
            }
            let expected = FeatureOracle.expected(counted.sorted().map { raw[$0]! }, set: scenario.featureSet)
            let checks = FeatureOracle.check(decoded ?? Self.emptyValues(layout), expected: expected, set: scenario.featureSet)
            windows.append(FeatureWindowReport(
                windowStart: scenario.windowStart(w), activeDevices: active.count, contributors: counted.count,
                released: counted.count >= scenario.minimumReleaseCohort, rounds: rounds, features: checks,
                countedUnaware: nil, alreadyCounted: nil, problems: problems))
        }
        let seconds = (clock.now - started)
        return FeatureSimulationReport(
            scenario: scenario, mode: "in-process", layout: layout,
            totalSeconds: Double(seconds.components.seconds) + Double(seconds.components.attoseconds) * 1e-18,
            connections: nil, apiReads: nil, windows: windows)
    }

    /// The values an empty window decodes to (no contributors).
    public static func emptyValues(_ layout: FeatureLayout) -> FeatureSetValues {
        try! layout.decode(ModularVector(zerosOfCount: layout.dimension, bitWidth: layout.featureSet.bitWidth))
    }
}
