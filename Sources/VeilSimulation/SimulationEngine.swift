import Dispatch
public import Foundation
import VeilCrypto
public import VeilProtocol
import VeilWire

/// Progress of a run, reported after each batch of devices.
public struct SimulationProgress: Sendable {
    /// The phase whose answers are being collected.
    public let phase: Phase
    /// Devices handled so far in this phase.
    public let done: Int
    /// Devices to handle in this phase.
    public let total: Int
    /// Seconds since the round started.
    public let elapsed: Double
}

/// Drives a whole cohort of real `DeviceSession`s and one real `AggregationSession` through a
/// round in this process. Every message crosses the real wire codec (so byte counts are exact),
/// device work runs on all cores in batches, and the server is fed answers one at a time as the
/// network server would be.
public struct SimulationEngine: Sendable {
    /// The scenario to run.
    public let scenario: Scenario
    /// Worker threads for device work and for the server's unmasking.
    public let workers: Int
    /// Devices processed per parallel batch (bounds the memory of in-flight messages).
    public let batchSize: Int
    /// Each device's input, when the caller supplies them (feature simulations); otherwise the
    /// scenario's synthetic data generators.
    public let inputs: (@Sendable (UInt32) -> ModularVector)?
    /// The fewest survivors the round unmasks, as a server and devices with differential
    /// privacy sized for that many enforce it (SPEC.md §12.4); 0 for none.
    public var minimumSurvivors = 0

    /// Creates an engine.
    public init(
        scenario: Scenario, workers: Int = ProcessInfo.processInfo.activeProcessorCount, batchSize: Int = 1024,
        inputs: (@Sendable (UInt32) -> ModularVector)? = nil
    ) {
        self.scenario = scenario
        self.workers = max(1, workers)
        self.batchSize = max(1, batchSize)
        self.inputs = inputs
    }

    /// What the scenario's aggregator plans for: its dropout, its corrupt (or misbehaving)
    /// fraction and its threat model.
    public var assumptions: CohortAssumptions {
        let n = scenario.devices
        let misbehavingFraction = Double(scenario.misbehaving.reduce(0) { $0 + $1.count }) / Double(n)
        return CohortAssumptions(
            cohortSize: n, dropoutFraction: min(scenario.dropout.total, 0.99),
            corruptFraction: max(scenario.graph.corruptFraction ?? 0, misbehavingFraction),
            threatModel: scenario.threatModel, placementGrindingBits: CohortAssumptions.defaultPlacementGrindingBits)
    }

    /// The policy every simulated device enforces: the scenario's own assumptions
    /// (``DevicePolicy/matching(_:)``), so an honest scenario's rounds are accepted and a round
    /// that breaks them is refused as a real device would refuse it.
    public var devicePolicy: DevicePolicy {
        var policy = DevicePolicy.matching(assumptions)
        policy.minimumSurvivors = minimumSurvivors
        return policy
    }

    /// The graph parameters the scenario asks for (explicit, fixed-degree, or chosen by the finder).
    public func graphParameters() throws(ScenarioError) -> GraphParameters {
        let n = scenario.devices
        let assumptions = self.assumptions
        do {
            switch scenario.graph.kind {
            case "auto":
                return try ParameterFinder.find(for: assumptions)
            default:
                let k = scenario.graph.kind == "complete" ? n - 1 : scenario.graph.degree!
                if let t = scenario.graph.threshold {
                    return try ParameterFinder.validate(degree: k, threshold: t, for: assumptions)
                }
                return try ParameterFinder.find(degree: k, for: assumptions)
            }
        } catch {
            throw ScenarioError(field: "graph", reason: error.description)
        }
    }

    /// Runs the scenario and returns its report; `progress` is called from the driving thread.
    public func run(progress: ((SimulationProgress) -> Void)? = nil) throws(ScenarioError) -> SimulationReport {
        try runRound(progress: progress).report
    }

    /// Runs the scenario and returns its report and the server's outcome (the sum and survivor
    /// set when it finished).
    public func runRound(progress: ((SimulationProgress) -> Void)? = nil) throws(ScenarioError) -> (report: SimulationReport, outcome: AggregationOutcome) {
        let parameters = try graphParameters()
        let limits = PhysicalLimits.measure(algorithm: scenario.prg, cores: workers)
        var random = SeededRandomSource(seed: scenario.seed, label: "round")
        let configuration: RoundConfiguration
        let placementSecret: [UInt8]?
        do {
            placementSecret = RoundConfiguration.requiresPlacementCommitment(threatModel: scenario.threatModel, graph: parameters.graph)
                ? random.bytes(count: Placement.byteCount) : nil
            configuration = try RoundConfiguration(
                roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: scenario.devices,
                dimension: scenario.dimension, bitWidth: scenario.bitWidth, prg: scenario.prg, graph: parameters.graph,
                threshold: parameters.threshold, threatModel: scenario.threatModel,
                placementCommitment: placementSecret.map(Placement.commitment(to:)))
        } catch {
            throw ScenarioError(field: "graph", reason: error.description)
        }
        var cohort = Cohort(
            scenario: scenario, configuration: configuration, policy: devicePolicy, workers: workers, random: &random, inputs: inputs)
        var round = RoundRun(
            configuration: configuration, placementSecret: placementSecret, cohort: cohort, limits: limits, workers: workers, batchSize: batchSize)
        round.server.minimumSurvivors = minimumSurvivors
        if let network = scenario.network {
            round.clock = SimulatedClock(network: network, deadlines: scenario.deadlines ?? .aggregatorDefault, devices: scenario.devices, seed: scenario.seed)
        }
        let outcome = round.drive(cohort: &cohort, random: &random, progress: progress)
        return (SimulationReport(scenario: scenario, parameters: parameters, run: round, cohort: cohort, outcome: outcome), outcome)
    }
}
