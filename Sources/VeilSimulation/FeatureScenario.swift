import Foundation
public import VeilCrypto
public import VeilFeatures
public import VeilProtocol

/// A feature-store scenario (format: `Simulations/README.md`): synthetic devices record raw
/// observations for a feature set over several tumbling windows, and rounds of secure
/// aggregation compute each window's features; the oracle checks every decoded value against the
/// plaintext computation over the devices the aggregator counted.
public struct FeatureScenario: Codable, Sendable, Equatable {
    /// A short name.
    public var name: String
    /// One line saying what the scenario shows.
    public var description: String
    /// Devices in the fleet.
    public var devices: Int
    /// The feature set the devices record for (its layout gives the vector length and bit width).
    public var featureSet: FeatureSet
    /// How many consecutive windows to simulate.
    public var windows: Int
    /// The window length in seconds (tumbling, aligned to the Unix epoch in UTC).
    public var windowSeconds: Int
    /// The first window's start, seconds since the epoch (a multiple of `windowSeconds`).
    public var start: Int
    /// A window's values are released only once this many devices contributed.
    public var minimumReleaseCohort: Int
    /// At most this many rounds per window; each later round takes the devices not yet counted.
    public var roundsPerWindow: Int
    /// The probability that a device records anything in a given window (inactive devices sit
    /// the window out).
    public var activeFraction: Double
    /// The PRG for the rounds.
    public var prg: PRGAlgorithm
    /// The neighbour graph for each round ("auto" sizes it for each round's cohort).
    public var graph: Scenario.GraphSpec
    /// The rounds' threat model.
    public var threatModel: ThreatModel
    /// Per-phase dropout probabilities of every round.
    public var dropout: Scenario.DropoutSpec
    /// How each feature's observations are drawn, by feature name; features left out get none.
    public var observations: [String: ObservationGenerator]
    /// The seed of every random choice.
    public var seed: UInt64
    /// With a feature set that has `privacy`: run every window once per ε here (in-process), each
    /// run with its own budget ledger, to chart accuracy against ε (SPEC.md §12.4). Nil: once,
    /// with the set's own settings.
    public var epsilons: [Double]?

    enum CodingKeys: String, CodingKey {
        case name, description, devices, featureSet, windows, windowSeconds, start, minimumReleaseCohort, roundsPerWindow
        case activeFraction, prg, graph, threatModel, dropout, observations, seed, epsilons
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        devices = try c.decode(Int.self, forKey: .devices)
        featureSet = try c.decode(FeatureSet.self, forKey: .featureSet)
        windows = try c.decodeIfPresent(Int.self, forKey: .windows) ?? 1
        windowSeconds = try c.decodeIfPresent(Int.self, forKey: .windowSeconds) ?? 3600
        start = try c.decodeIfPresent(Int.self, forKey: .start) ?? 1_800_000_000
        minimumReleaseCohort = try c.decodeIfPresent(Int.self, forKey: .minimumReleaseCohort) ?? 100
        roundsPerWindow = try c.decodeIfPresent(Int.self, forKey: .roundsPerWindow) ?? 2
        activeFraction = try c.decodeIfPresent(Double.self, forKey: .activeFraction) ?? 1
        prg = try c.decodeIfPresent(PRGAlgorithm.self, forKey: .prg) ?? .aes128CTR
        graph = try c.decodeIfPresent(Scenario.GraphSpec.self, forKey: .graph) ?? .init(kind: "auto", degree: nil, threshold: nil, corruptFraction: nil)
        threatModel = try c.decodeIfPresent(ThreatModel.self, forKey: .threatModel) ?? .honestButCurious
        dropout = try c.decodeIfPresent(Scenario.DropoutSpec.self, forKey: .dropout) ?? Scenario.DropoutSpec()
        observations = try c.decodeIfPresent([String: ObservationGenerator].self, forKey: .observations) ?? [:]
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1
        epsilons = try c.decodeIfPresent([Double].self, forKey: .epsilons)
    }

    /// How one feature's observations are drawn for each device and window.
    public struct ObservationGenerator: Codable, Sendable, Equatable {
        /// Values (events, for an eventCount feature) per device per window: uniform in
        /// `perDevice[0]...perDevice[1]`.
        public var perDevice: [Int]
        /// Numeric and histogram features: "uniform" (`minimum`...`maximum`) or "normal" (`mean`,
        /// `standardDeviation`). Categorical: "zipf" over the vocabulary in order (`exponent`).
        /// Not used for eventCount.
        public var distribution: String?
        /// Uniform bounds.
        public var minimum: Double?
        /// Uniform bounds.
        public var maximum: Double?
        /// Normal mean.
        public var mean: Double?
        /// Normal standard deviation.
        public var standardDeviation: Double?
        /// Zipf exponent s.
        public var exponent: Double?
        /// Categorical: the fraction of values outside the vocabulary (counted as clipped).
        public var outOfVocabulary: Double?
    }

    /// The feature set's layout, or the definition error naming the field under `featureSet`.
    public func layout() throws(ScenarioError) -> FeatureLayout {
        do { return try FeatureLayout(featureSet) } catch {
            throw ScenarioError(field: "featureSet.\(error.field)", reason: error.reason)
        }
    }

    /// The protocol scenario of one round of `cohort` devices, with its own seed so that no two
    /// rounds share keys, masks or randomness.
    public func roundScenario(cohort: Int, window: Int, attempt: Int) throws(ScenarioError) -> Scenario {
        let layout = try layout()
        let seedBytes = BLAKE2b.hash(label: "veil-sim/feature-round", message: Array("\(seed)/\(window)/\(attempt)".utf8), outputByteCount: 16)
        let roundSeed = seedBytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        var graph = self.graph
        // Explicit degrees and thresholds were chosen for the whole fleet; later rounds are smaller.
        if cohort != devices, graph.kind == "harary" || graph.threshold != nil {
            graph = .init(kind: graph.kind == "complete" ? "complete" : "auto", degree: nil, threshold: nil, corruptFraction: graph.corruptFraction)
        }
        return Scenario(
            name: "\(name)/window-\(window)/round-\(attempt)", devices: cohort, dimension: layout.dimension,
            bitWidth: featureSet.bitWidth, prg: prg, graph: graph, threatModel: threatModel, dropout: dropout, seed: roundSeed)
    }

    /// The start of window `index`.
    public func windowStart(_ index: Int) -> Int { start + index * windowSeconds }
}
