#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the operator assumes about a cohort, from which degree and threshold are chosen.
public struct CohortAssumptions: Sendable, Hashable {
    /// n: devices invited.
    public var cohortSize: Int
    /// δ: expected fraction of devices that drop out at some point during the round.
    public var dropoutFraction: Double
    /// γ: fraction of devices assumed to collude with the server.
    public var corruptFraction: Double
    /// The threat model.
    public var threatModel: ThreatModel
    /// σ: an honest device's input must stay hidden except with probability 2^-σ (default 40).
    public var securityBits: Double
    /// η: the round may fail for lack of live neighbours with probability at most 2^-η (default 20).
    public var correctnessBits: Double
    /// g: log2 of the candidate placements an active server may try before it must reveal one
    /// (`SPEC.md` §5.1, §9): by claiming devices dropped, or with colluding devices choosing their
    /// contributions late, within the device's placement deadline. A sparse graph in the active
    /// model must then meet 2^-(σ + g); the complete graph has nothing to place. Default 0 here;
    /// Veil's aggregator and devices default to ``defaultPlacementGrindingBits``.
    public var placementGrindingBits: Double

    /// The grinding Veil's aggregator and device policy assume by default: 2^40 candidate
    /// placements within the 60-second placement deadline.
    public static let defaultPlacementGrindingBits = 40.0

    /// Creates assumptions with the default σ = 40, η = 20 and no grinding.
    public init(cohortSize: Int, dropoutFraction: Double, corruptFraction: Double = 0, threatModel: ThreatModel = .honestButCurious,
                securityBits: Double = 40, correctnessBits: Double = 20, placementGrindingBits: Double = 0) {
        self.cohortSize = cohortSize
        self.dropoutFraction = dropoutFraction
        self.corruptFraction = corruptFraction
        self.threatModel = threatModel
        self.securityBits = securityBits
        self.correctnessBits = correctnessBits
        self.placementGrindingBits = placementGrindingBits
    }

    /// The exposure and isolation target, in bits, a graph of degree `k` must meet per device:
    /// σ + log2 n, plus g for a sparse graph in the active model (its placement can be ground).
    func requiredSecurityBits(degree k: Int) -> Double {
        let grinding = threatModel == .active && k < cohortSize - 1 ? placementGrindingBits : 0
        return securityBits + grinding + log2(Double(cohortSize))
    }
}

/// A degree and threshold with the probabilities that justify them.
public struct GraphParameters: Sendable, Hashable {
    /// The graph (complete when no sparse graph meets the targets).
    public let graph: GraphKind
    /// k.
    public let degree: Int
    /// t.
    public let threshold: Int
    /// -log2 of the union-bounded probability that some honest device's input is exposed: over the
    /// n devices and, for a sparse graph in the active model, over the 2^g placements a server may try.
    public let securityBits: Double
    /// -log2 of the union-bounded probability that some device lacks t live neighbours.
    public let correctnessBits: Double
}

/// Chooses SecAgg+ degree and threshold from cohort assumptions, after Bell et al. (CCS 2020).
///
/// The Harary graph with permuted labels gives every device a uniformly random set of k
/// neighbours. For an honest device with c corrupt and d dropped neighbours (c hypergeometric,
/// d binomial), the finder requires, each union-bounded over the n devices:
/// - *threshold security*: P[c >= t] (honest-but-curious) or P[c >= 2t - k] (active, where a lying
///   server can split honest neighbours between the two kinds of share) is at most 2^-σ / n;
/// - *no isolation*: P[every neighbour is corrupt or dropped] = P[c + d = k] <= 2^-σ / n, because an
///   honest survivor whose neighbours all dropped or collude has all its masks removed;
/// - *correctness*: P[live neighbours < t] <= 2^-η / n, where corrupt devices count as dropped in
///   the active model.
/// Dropout below ``minimumPlannedDropout`` is planned as that minimum.
/// It returns the smallest even k with a valid t, choosing the smallest valid t that is also above
/// k/2, and falls back to the complete graph. ``validate(degree:threshold:for:)`` refuses explicit
/// choices that fail a security condition and explains which.
public enum ParameterFinder {
    /// The least dropout fraction the finder plans for: a real cohort always loses some devices,
    /// and planning for none would choose degenerate graphs (k = 2) that one dropout aborts.
    public static let minimumPlannedDropout = 0.01

    /// Picks k and t for `assumptions`, or throws when even the complete graph cannot meet them.
    public static func find(for requested: CohortAssumptions) throws(ConfigurationError) -> GraphParameters {
        try checkRanges(requested)
        var assumptions = requested
        assumptions.dropoutFraction = max(requested.dropoutFraction, minimumPlannedDropout)
        let n = assumptions.cohortSize
        var k = 2
        while k < n - 1 {
            if let result = bestThreshold(degree: k, assumptions) {
                return GraphParameters(graph: .harary(degree: k), degree: k, threshold: result.t,
                                       securityBits: result.security, correctnessBits: result.correctness)
            }
            k += 2
        }
        if let result = bestThreshold(degree: n - 1, assumptions) {
            return GraphParameters(graph: .complete, degree: n - 1, threshold: result.t,
                                   securityBits: result.security, correctnessBits: result.correctness)
        }
        throw .unsafe(field: "cohortSize", reason: "no degree and threshold meet 2^-\(Int(assumptions.securityBits)) security and 2^-\(Int(assumptions.correctnessBits)) failure for n = \(n), dropout \(assumptions.dropoutFraction), corrupt \(assumptions.corruptFraction); lower the dropout or corruption assumption or enlarge the cohort")
    }

    /// Picks the threshold for a fixed degree (k = n - 1 for the complete graph), or throws when
    /// no threshold meets the targets at that degree.
    public static func find(degree k: Int, for requested: CohortAssumptions) throws(ConfigurationError) -> GraphParameters {
        try checkRanges(requested)
        var assumptions = requested
        assumptions.dropoutFraction = max(requested.dropoutFraction, minimumPlannedDropout)
        let n = assumptions.cohortSize
        guard k >= 2, k <= n - 1 else { throw .invalid(field: "degree", reason: "must be in 2...\(n - 1)") }
        guard let result = bestThreshold(degree: k, assumptions) else {
            throw .unsafe(field: "degree", reason: "no threshold meets 2^-\(oneDecimal(assumptions.securityBits)) security and 2^-\(oneDecimal(assumptions.correctnessBits)) failure with k = \(k), n = \(n), dropout \(assumptions.dropoutFraction), corrupt \(assumptions.corruptFraction)")
        }
        return GraphParameters(graph: k == n - 1 ? .complete : .harary(degree: k), degree: k, threshold: result.t,
                               securityBits: result.security, correctnessBits: result.correctness)
    }

    /// Checks explicit k and t against the security conditions; returns the achieved parameters
    /// (correctness may be weaker than asked: the round is then more likely to abort, not leak).
    public static func validate(degree k: Int, threshold t: Int, for assumptions: CohortAssumptions) throws(ConfigurationError) -> GraphParameters {
        try checkRanges(assumptions)
        let n = assumptions.cohortSize
        guard k >= 2, k <= n - 1 else { throw .invalid(field: "degree", reason: "must be in 2...\(n - 1)") }
        guard t >= 1, t <= k else { throw .invalid(field: "threshold", reason: "must be in 1...\(k)") }
        guard 2 * t > k else {
            throw .unsafe(field: "threshold", reason: "t = \(t) must exceed k/2 = \(Double(k) / 2), or two disjoint groups of neighbours could each reconstruct a different secret of one device")
        }
        let odds = Odds(degree: k, assumptions)
        let budget = assumptions.requiredSecurityBits(degree: k)
        let exposure = odds.exposureBits(threshold: t)
        guard exposure >= budget else {
            throw .unsafe(field: "threshold", reason: "with k = \(k) and t = \(t) an honest device's input is exposed with probability \(powerOfTwo(negativeExponent: exposure - log2(Double(n)))) per device, above the 2^-\(oneDecimal(budget - log2(Double(n)))) target\(Self.grindingNote(assumptions, k)); raise t or k")
        }
        let isolation = odds.isolationBits()
        guard isolation >= budget else {
            throw .unsafe(field: "degree", reason: "with k = \(k) an honest survivor has only corrupt or dropped neighbours with probability \(powerOfTwo(negativeExponent: isolation - log2(Double(n)))) per device, above the 2^-\(oneDecimal(budget - log2(Double(n)))) target\(Self.grindingNote(assumptions, k)); raise k")
        }
        return GraphParameters(
            graph: k == n - 1 ? .complete : .harary(degree: k), degree: k, threshold: t,
            securityBits: min(exposure, isolation) - (budget - assumptions.securityBits),
            correctnessBits: odds.failureBits(threshold: t) - log2(Double(n)))
    }

    /// " (2^-σ per candidate placement, 2^g of them)" when grinding is charged at degree `k`.
    static func grindingNote(_ a: CohortAssumptions, _ k: Int) -> String {
        let g = a.requiredSecurityBits(degree: k) - a.securityBits - log2(Double(a.cohortSize))
        return g > 0 ? " (σ = \(oneDecimal(a.securityBits)) plus \(oneDecimal(g)) bits for placements an active server may try)" : ""
    }

    static func checkRanges(_ a: CohortAssumptions) throws(ConfigurationError) {
        guard a.cohortSize >= 3 else { throw .invalid(field: "cohortSize", reason: "must be at least 3") }
        guard (0..<1).contains(a.dropoutFraction) else { throw .invalid(field: "dropoutFraction", reason: "must be in [0, 1)") }
        guard (0...128).contains(a.placementGrindingBits) else { throw .invalid(field: "placementGrindingBits", reason: "must be in 0...128") }
        guard (0..<1).contains(a.corruptFraction) else { throw .invalid(field: "corruptFraction", reason: "must be in [0, 1)") }
        guard a.dropoutFraction + a.corruptFraction < 1 else { throw .invalid(field: "dropoutFraction", reason: "dropout plus corrupt fraction must be below 1") }
    }

    /// The smallest t above k/2 meeting the security target, if it also meets correctness.
    /// Exposure falls and failure rises as t grows, so a binary search finds it.
    static func bestThreshold(degree k: Int, _ a: CohortAssumptions) -> (t: Int, security: Double, correctness: Double)? {
        let odds = Odds(degree: k, a)
        let logN = log2(Double(a.cohortSize))
        let budget = a.requiredSecurityBits(degree: k)
        let isolation = odds.isolationBits()
        guard isolation >= budget else { return nil }
        var low = k / 2 + 1, high = k
        guard odds.exposureBits(threshold: high) >= budget else { return nil }
        while low < high {
            let mid = (low + high) / 2
            if odds.exposureBits(threshold: mid) >= budget { high = mid } else { low = mid + 1 }
        }
        let correctness = odds.failureBits(threshold: low)
        guard correctness >= a.correctnessBits + logN else { return nil }
        return (low, min(odds.exposureBits(threshold: low), isolation) - (budget - a.securityBits), correctness - logN)
    }

    /// Tail probabilities (as -log2) for one honest device of degree k.
    struct Odds {
        let k: Int
        let n: Int
        let corrupt: Int
        let dropout: Double
        let active: Bool
        /// log P[c = i] for the hypergeometric number of corrupt neighbours.
        let corruptLog: [Double]

        init(degree k: Int, _ a: CohortAssumptions) {
            self.k = k
            n = a.cohortSize
            corrupt = Int((a.corruptFraction * Double(a.cohortSize)).rounded(.up))
            dropout = a.dropoutFraction
            active = a.threatModel == .active
            // An honest device's k neighbours are a uniform k-subset of the other n - 1 devices.
            let population = n - 1
            let bad = min(corrupt, population)
            corruptLog = (0...k).map { i in
                guard i <= bad, k - i <= population - bad else { return -.infinity }
                return logChoose(bad, i) + logChoose(population - bad, k - i) - logChoose(population, k)
            }
        }

        /// -log2 P[the adversary can reconstruct both secrets of an honest device].
        func exposureBits(threshold t: Int) -> Double {
            let needed = active ? 2 * t - k : t
            guard needed > 0 else { return 0 }
            return -log2(exp(logSumExp(corruptLog.indices.filter { $0 >= needed }.map { corruptLog[$0] })))
        }

        /// -log2 P[every neighbour of an honest device is corrupt or dropped].
        func isolationBits() -> Double {
            // Given c corrupt neighbours, the other k - c must all drop.
            let terms = corruptLog.indices.map { c in corruptLog[c] + Double(k - c) * log(dropout) }
            return -log2(exp(logSumExp(terms)))
        }

        /// -log2 P[fewer than t live neighbours].
        func failureBits(threshold t: Int) -> Double {
            let p = 1 - dropout
            // In the active model corrupt neighbours may withhold answers: count them as dropped.
            var terms = [Double]()
            for c in corruptLog.indices where corruptLog[c] > -.infinity {
                let honest = k - (active ? c : 0)
                // live ~ Binomial(honest, p); failure when live < t.
                let tail = logBinomialLowerTail(trials: honest, success: p, below: t)
                terms.append(corruptLog[c] + tail)
            }
            return -log2(max(exp(logSumExp(terms)), .leastNonzeroMagnitude))
        }
    }
}

/// 2^-bits as text: "2^-12.5", or "2^3.0" when the bound exceeds 1 (bits < 0), for messages.
func powerOfTwo(negativeExponent bits: Double) -> String {
    bits >= 0 ? "2^-\(oneDecimal(bits))" : "2^\(oneDecimal(-bits))"
}

/// `x` with one decimal, for messages.
func oneDecimal(_ x: Double) -> String {
    guard x.isFinite else { return x > 0 ? "inf" : "-inf" }
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

/// log C(n, r).
func logChoose(_ n: Int, _ r: Int) -> Double {
    guard r >= 0, r <= n else { return -.infinity }
    return lgamma(Double(n + 1)) - lgamma(Double(r + 1)) - lgamma(Double(n - r + 1))
}

/// log P[Binomial(trials, success) < below].
func logBinomialLowerTail(trials: Int, success p: Double, below: Int) -> Double {
    guard below > 0 else { return -.infinity }
    guard below <= trials else { return 0 }
    if p >= 1 { return -.infinity }
    if p <= 0 { return 0 }
    let terms = (0..<below).map { i in logChoose(trials, i) + Double(i) * log(p) + Double(trials - i) * log(1 - p) }
    return logSumExp(terms)
}

/// log of the sum of exp(terms), computed stably.
func logSumExp(_ terms: [Double]) -> Double {
    guard let top = terms.max(), top > -.infinity else { return -.infinity }
    return top + log(terms.reduce(0) { $0 + exp($1 - top) })
}
