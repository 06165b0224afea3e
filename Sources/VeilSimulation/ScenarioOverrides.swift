public import VeilProtocol

/// Command-line changes to a scenario.
public struct ScenarioOverrides: Sendable {
    /// n: devices invited.
    public var devices: Int?
    /// m: elements per vector.
    public var dimension: Int?
    /// b: bits per element.
    public var bitWidth: Int?
    /// Total dropout fraction, spread evenly over the phases of the threat model.
    public var dropout: Double?
    /// "secagg" (complete graph) or "secagg+" (Harary graph, parameters chosen automatically).
    public var protocolName: String?
    /// The threat model.
    public var threatModel: ThreatModel?
    /// The seed of every random choice.
    public var seed: UInt64?
    /// A malicious aggregator strategy (or "all") to run instead of an honest round.
    public var adversary: String?
    /// A built-in network profile, for a round in simulated time.
    public var network: String?
    /// Every phase's deadline in simulated time, seconds.
    public var deadline: Double?

    /// The changes given; no argument, no change.
    public init(
        devices: Int? = nil, dimension: Int? = nil, bitWidth: Int? = nil, dropout: Double? = nil, protocolName: String? = nil,
        threatModel: ThreatModel? = nil, seed: UInt64? = nil, adversary: String? = nil, network: String? = nil, deadline: Double? = nil
    ) {
        self.devices = devices
        self.dimension = dimension
        self.bitWidth = bitWidth
        self.dropout = dropout
        self.protocolName = protocolName
        self.threatModel = threatModel
        self.seed = seed
        self.adversary = adversary
        self.network = network
        self.deadline = deadline
    }
}

extension Scenario {
    /// The scenario with `overrides` applied, validated again.
    public func applying(_ overrides: ScenarioOverrides) throws(ScenarioError) -> Scenario {
        var s = self
        if let v = overrides.devices { s.devices = v }
        if let v = overrides.dimension {
            s.dimension = v
            // Keep generators inside the new dimension.
            s.data = s.data.compactMap { g in
                var g = g
                g.end = min(g.end, v)
                return g.start < g.end ? g : nil
            }
        }
        if let v = overrides.bitWidth { s.bitWidth = v }
        if let v = overrides.threatModel {
            s.threatModel = v
            if v == .honestButCurious { s.dropout.consistencyCheck = 0 }
        }
        if let v = overrides.dropout {
            guard (0..<1).contains(v) else { throw ScenarioError(field: "--dropout", reason: "must be in [0, 1), got \(v)") }
            s.dropout = .spread(v, over: s.threatModel.phases)
        }
        if let v = overrides.protocolName {
            switch v {
            case "secagg": s.graph = GraphSpec(kind: "complete", degree: nil, threshold: nil, corruptFraction: s.graph.corruptFraction)
            case "secagg+": s.graph = GraphSpec(kind: "auto", degree: nil, threshold: nil, corruptFraction: s.graph.corruptFraction)
            default: throw ScenarioError(field: "--protocol", reason: "must be secagg or secagg+, got \(v)")
            }
        } else if overrides.devices != nil || overrides.dropout != nil, s.graph.kind == "harary" || s.graph.threshold != nil {
            // Explicit k and t were chosen for the file's cohort and dropout: choose again.
            s.graph = GraphSpec(kind: s.graph.kind == "complete" ? "complete" : "auto", degree: nil, threshold: nil, corruptFraction: s.graph.corruptFraction)
        }
        if let v = overrides.seed { s.seed = v }
        if let v = overrides.adversary { s.adversary = v }
        if let v = overrides.network {
            guard let profile = NetworkSpec.profiles[v] else {
                throw ScenarioError(field: "--network", reason: "must be one of \(NetworkSpec.profiles.keys.sorted()), got \(v)")
            }
            s.network = profile
        }
        if let v = overrides.deadline {
            guard v > 0, v.isFinite else { throw ScenarioError(field: "--deadline", reason: "must be a positive number of seconds, got \(v)") }
            s.deadlines = DeadlineSpec(default: v)
        }
        try s.validate()
        return s
    }
}
