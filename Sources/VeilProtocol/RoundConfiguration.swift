public import VeilCrypto

/// Which neighbour graph a round uses.
public enum GraphKind: Sendable, Hashable {
    /// Every device is a neighbour of every other (SecAgg, Bonawitz et al. 2017).
    case complete
    /// A k-regular Harary graph with labels permuted from the round seed (SecAgg+, Bell et al. 2020).
    case harary(degree: Int)
}

/// Everything both sides of a round must agree on. The aggregator chooses it and sends it to each
/// device when the device joins; all of it is public.
public struct RoundConfiguration: Sendable, Hashable {
    /// The round's identifier, bound into every derived key, label and signature.
    public let roundID: RoundID
    /// 32 public random bytes from which the Harary graph's label permutation is derived.
    public let roundSeed: [UInt8]
    /// n: the number of devices invited (indices 0..<n).
    public let cohortSize: Int
    /// m: the number of elements in every input vector.
    public let dimension: Int
    /// b: inputs, masks and the sum are integers modulo 2^b.
    public let bitWidth: Int
    /// The mask expansion cipher.
    public let prg: PRGAlgorithm
    /// The neighbour graph.
    public let graph: GraphKind
    /// t: the Shamir threshold; also the least number of live neighbours every device needs.
    public let threshold: Int
    /// The threat model.
    public let threatModel: ThreatModel
    /// H(s) of the server's placement secret (``Placement``, `SPEC.md` §5.1): present exactly in
    /// the active model with a Harary graph, where the ring order comes from s and the devices'
    /// contributions instead of ``roundSeed``.
    public let placementCommitment: [UInt8]?

    /// Whether the ring order is drawn from committed placement (active model, Harary graph).
    public var usesCommittedPlacement: Bool { placementCommitment != nil }

    /// Whether a configuration with this threat model and graph must carry a placement commitment.
    public static func requiresPlacementCommitment(threatModel: ThreatModel, graph: GraphKind) -> Bool {
        if case .harary = graph { return threatModel == .active }
        return false
    }

    /// Validates and creates a configuration. `placementCommitment` is required (32 bytes) in the
    /// active model with a Harary graph and refused otherwise.
    public init(
        roundID: RoundID, roundSeed: [UInt8], cohortSize: Int, dimension: Int, bitWidth: Int,
        prg: PRGAlgorithm, graph: GraphKind, threshold: Int, threatModel: ThreatModel, placementCommitment: [UInt8]? = nil
    ) throws(ConfigurationError) {
        guard roundSeed.count == 32 else { throw .invalid(field: "roundSeed", reason: "must be 32 bytes, got \(roundSeed.count)") }
        guard cohortSize >= 3 else { throw .invalid(field: "cohortSize", reason: "must be at least 3, got \(cohortSize)") }
        guard cohortSize <= Int(UInt32.max) - 1 else { throw .invalid(field: "cohortSize", reason: "must fit a 32-bit index") }
        guard dimension >= 1 else { throw .invalid(field: "dimension", reason: "must be at least 1, got \(dimension)") }
        guard (1...64).contains(bitWidth) else { throw .invalid(field: "bitWidth", reason: "must be in 1...64, got \(bitWidth)") }
        let degree: Int
        switch graph {
        case .complete:
            degree = cohortSize - 1
            guard cohortSize - 1 <= ShamirSecretSharing.maximumShareCount else {
                throw .invalid(field: "graph", reason: "a complete graph supports at most \(ShamirSecretSharing.maximumShareCount + 1) devices; use a Harary graph")
            }
        case let .harary(k):
            guard k >= 2, k % 2 == 0 else { throw .invalid(field: "degree", reason: "Harary degree must be even and at least 2, got \(k)") }
            guard k < cohortSize - 1 else { throw .invalid(field: "degree", reason: "degree \(k) must be below n - 1 = \(cohortSize - 1); use the complete graph") }
            degree = k
        }
        guard threshold >= 1, threshold <= degree else {
            throw .invalid(field: "threshold", reason: "must be in 1...\(degree) (the degree), got \(threshold)")
        }
        if RoundConfiguration.requiresPlacementCommitment(threatModel: threatModel, graph: graph) {
            guard let placementCommitment, placementCommitment.count == Placement.byteCount else {
                throw .invalid(field: "placementCommitment", reason: "an active round on a Harary graph needs a 32-byte placement commitment")
            }
        } else if placementCommitment != nil {
            throw .invalid(field: "placementCommitment", reason: "only an active round on a Harary graph has a placement commitment")
        }
        self.placementCommitment = placementCommitment
        self.roundID = roundID
        self.roundSeed = roundSeed
        self.cohortSize = cohortSize
        self.dimension = dimension
        self.bitWidth = bitWidth
        self.prg = prg
        self.graph = graph
        self.threshold = threshold
        self.threatModel = threatModel
    }

    /// k: the number of neighbours of every device (n - 1 for the complete graph).
    public var degree: Int {
        switch graph {
        case .complete: return cohortSize - 1
        case let .harary(k): return k
        }
    }
}

/// A configuration or parameter choice that cannot be used.
public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A field has an invalid value.
    case invalid(field: String, reason: String)
    /// Explicit degree and threshold fail a security condition.
    case unsafe(field: String, reason: String)

    public var description: String {
        switch self {
        case let .invalid(field, reason): return "\(field): \(reason)"
        case let .unsafe(field, reason): return "\(field): unsafe: \(reason)"
        }
    }
}
