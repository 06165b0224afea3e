public import VeilCrypto

/// What a device accepts from an aggregator, set by the edge agent and enforced by the device
/// before it sends anything in a round (`SPEC.md` §13.1).
///
/// The aggregator chooses every round parameter; the policy is how a device refuses choices that
/// would weaken its own privacy, whatever the aggregator says. A round that violates it is refused
/// before AdvertiseKeys: ``DeviceSession/start(using:)`` throws a ``ProtocolViolation`` whose kind
/// is ``ProtocolViolation/Kind/policy(_:)``, the device reports the ``PolicyViolation`` to the
/// aggregator and to its caller, and it reveals nothing.
///
/// The defaults are for a device that does not trust the aggregator: the active threat model,
/// cohorts of at least 10, and (k, t) that keep an honest input hidden except with probability
/// 2^-40 when up to 5% of the cohort drops out. A fleet whose aggregator plans for more dropout or
/// for corrupt devices sets the same assumptions here, so that the device checks what the
/// aggregator promised.
public struct DevicePolicy: Sendable, Hashable {
    /// The weakest threat model the device takes part in. `.active` (the default) refuses
    /// honest-but-curious rounds, which have no signatures and no signed survivor set;
    /// `.honestButCurious` accepts both.
    public var requiredThreatModel: ThreatModel
    /// The smallest cohort n the device joins (default 10). A sum over few devices says much about
    /// each of them, and the graph bounds below need a cohort to average over.
    public var minimumCohort: Int
    /// δ: the dropout fraction the device assumes when it re-checks (k, t) (default 0.05).
    public var assumedDropout: Double
    /// γ: the fraction of the cohort the device assumes colludes with the aggregator (default 0).
    public var assumedCorruptFraction: Double
    /// σ: an honest device's input must stay hidden except with probability 2^-σ per round
    /// (default 40, as ``ParameterFinder`` plans).
    public var securityBits: Double
    /// g: log2 of the candidate placements the device assumes an active server can try before
    /// its placement deadline (default 40, ``ParameterFinder``'s
    /// ``CohortAssumptions/defaultPlacementGrindingBits``). A sparse active round must meet
    /// 2^-(σ + g); see `SPEC.md` §5.1 and §9.
    public var assumedGrindingBits: Double
    /// How long the device waits, after sending AdvertiseKeys, for the placement reveal with its
    /// neighbours' keys (default 60 s). A server that takes longer may be trying placements; the
    /// device then leaves the round. ``assumedGrindingBits`` is what it may try in this time.
    public var placementDeadlineSeconds: Double
    /// The mask expansion ciphers the device accepts (default: both).
    public var acceptedPRGs: Set<PRGAlgorithm>
    /// The largest vector length m the device accepts (default 1,000,000): bounds the device's
    /// memory, bandwidth and mask work in one round.
    public var maximumDimension: Int
    /// The largest bit width b the device accepts (default 64).
    public var maximumBitWidth: Int
    /// The fewest survivors whose sum the device helps unmask (default 0: no limit beyond the
    /// threshold). A device adding differential-privacy noise sized for n devices sets n
    /// (SPEC.md §12.4); it checks the signed survivor set in the active model and refuses to
    /// sign a smaller one.
    public var minimumSurvivors = 0

    /// Creates a policy; every argument has the documented default.
    public init(
        requiredThreatModel: ThreatModel = .active, minimumCohort: Int = 10, assumedDropout: Double = 0.05,
        assumedCorruptFraction: Double = 0, securityBits: Double = 40,
        assumedGrindingBits: Double = CohortAssumptions.defaultPlacementGrindingBits, placementDeadlineSeconds: Double = 60,
        acceptedPRGs: Set<PRGAlgorithm> = Set(PRGAlgorithm.allCases), maximumDimension: Int = 1_000_000, maximumBitWidth: Int = 64
    ) {
        self.requiredThreatModel = requiredThreatModel
        self.minimumCohort = minimumCohort
        self.assumedDropout = assumedDropout
        self.assumedCorruptFraction = assumedCorruptFraction
        self.securityBits = securityBits
        self.assumedGrindingBits = assumedGrindingBits
        self.placementDeadlineSeconds = placementDeadlineSeconds
        self.acceptedPRGs = acceptedPRGs
        self.maximumDimension = maximumDimension
        self.maximumBitWidth = maximumBitWidth
    }

    /// The policy for a device that accepts what an aggregator planned with `assumptions`: the same
    /// threat model, dropout, corrupt fraction, grinding and security target, and a minimum cohort of 3.
    /// Simulations and tests use it to give every synthetic device the scenario's policy.
    public static func matching(_ assumptions: CohortAssumptions) -> DevicePolicy {
        DevicePolicy(
            requiredThreatModel: assumptions.threatModel, minimumCohort: 3, assumedDropout: assumptions.dropoutFraction,
            assumedCorruptFraction: assumptions.corruptFraction, securityBits: assumptions.securityBits,
            assumedGrindingBits: assumptions.placementGrindingBits)
    }

    /// Checks `configuration` against the policy; throws the first rule it breaks.
    ///
    /// The order is: threat model, cohort size, PRG, dimension, bit width, t ≥ 2, 2t > k, then the
    /// exposure and isolation bounds of ``ParameterFinder/validate(degree:threshold:for:)`` for
    /// the announced n under this policy's δ, γ and σ.
    public func check(_ configuration: RoundConfiguration) throws(PolicyViolation) {
        if requiredThreatModel == .active && configuration.threatModel != .active {
            throw .threatModel(required: requiredThreatModel, offered: configuration.threatModel)
        }
        guard configuration.cohortSize >= minimumCohort else {
            throw .cohortTooSmall(minimum: minimumCohort, offered: configuration.cohortSize)
        }
        guard acceptedPRGs.contains(configuration.prg) else { throw .prgNotAccepted(configuration.prg) }
        guard configuration.dimension <= maximumDimension else {
            throw .dimensionTooLarge(maximum: maximumDimension, offered: configuration.dimension)
        }
        guard configuration.bitWidth <= maximumBitWidth else {
            throw .bitWidthTooLarge(maximum: maximumBitWidth, offered: configuration.bitWidth)
        }
        let k = configuration.degree, t = configuration.threshold
        guard t >= 2 else { throw .thresholdTooLow(threshold: t) }
        guard 2 * t > k else { throw .thresholdNotAboveHalfDegree(threshold: t, degree: k) }
        let assumptions = CohortAssumptions(
            cohortSize: configuration.cohortSize, dropoutFraction: assumedDropout, corruptFraction: assumedCorruptFraction,
            threatModel: configuration.threatModel, securityBits: securityBits, placementGrindingBits: assumedGrindingBits)
        do {
            _ = try ParameterFinder.validate(degree: k, threshold: t, for: assumptions)
        } catch {
            throw .missesSecurityTarget(error.description)
        }
    }
}

/// A round parameter that breaks a device's ``DevicePolicy``, or a round the device must not sign
/// in again. Attributed to the aggregator, which chose it.
public enum PolicyViolation: Error, Hashable, Sendable, CustomStringConvertible {
    /// The round's threat model is weaker than the device requires.
    case threatModel(required: ThreatModel, offered: ThreatModel)
    /// The cohort is smaller than the device's minimum.
    case cohortTooSmall(minimum: Int, offered: Int)
    /// The device does not accept the round's mask cipher.
    case prgNotAccepted(PRGAlgorithm)
    /// The vector is longer than the device accepts.
    case dimensionTooLarge(maximum: Int, offered: Int)
    /// The bit width is larger than the device accepts.
    case bitWidthTooLarge(maximum: Int, offered: Int)
    /// t < 2: a single share would be the secret.
    case thresholdTooLow(threshold: Int)
    /// 2t ≤ k: two disjoint groups of neighbours could each rebuild a secret of one device.
    case thresholdNotAboveHalfDegree(threshold: Int, degree: Int)
    /// (k, t) miss the device's security target for the announced cohort; says which bound.
    case missesSecurityTarget(String)
    /// The round id names a round the device already signed in (`SPEC.md` §13.2).
    case roundReused(RoundID)

    public var description: String {
        switch self {
        case let .threatModel(required, offered):
            return "the round is \(offered.rawValue), the device requires \(required.rawValue)"
        case let .cohortTooSmall(minimum, offered):
            return "cohort of \(offered) is below the device's minimum of \(minimum)"
        case let .prgNotAccepted(prg):
            return "mask cipher \(prg.rawValue) is not accepted"
        case let .dimensionTooLarge(maximum, offered):
            return "dimension \(offered) is above the device's maximum of \(maximum)"
        case let .bitWidthTooLarge(maximum, offered):
            return "bit width \(offered) is above the device's maximum of \(maximum)"
        case let .thresholdTooLow(t):
            return "threshold \(t) is below 2"
        case let .thresholdNotAboveHalfDegree(t, k):
            return "threshold \(t) is not above half the degree \(k)"
        case let .missesSecurityTarget(why):
            return "parameters miss the device's security target: \(why)"
        case let .roundReused(round):
            return "round \(round) was already used in a round this device signed in"
        }
    }
}

/// The round ids a device has signed in, so that it never signs in one twice (`SPEC.md` §13.2).
///
/// A value type for the sans-I/O core and the simulator; `VeilDevice` keeps the same set durably
/// and records an id before the device signs anything in that round.
public struct SignedRounds: Sendable, Hashable {
    private var ids: Set<RoundID> = []

    /// No round signed yet.
    public init() {}

    /// Whether the device already signed in `round`.
    public func contains(_ round: RoundID) -> Bool { ids.contains(round) }

    /// Records `round`; throws ``PolicyViolation/roundReused(_:)`` when it was recorded before.
    public mutating func record(_ round: RoundID) throws(PolicyViolation) {
        guard ids.insert(round).inserted else { throw .roundReused(round) }
    }

    /// The number of rounds recorded.
    public var count: Int { ids.count }
}
