/// The discrete Gaussian N_Z(0, σ²) on the integers, P[x] ∝ exp(−x² / 2σ²), with σ² a rational
/// `varianceNumerator / varianceDenominator`, sampled exactly from uniform bits (Canonne, Kamath
/// and Steinke 2020, Algorithm 3: a discrete Laplace proposal, accepted with an exact Bernoulli of
/// an exponential). Each device adds one independent sample per coordinate; the sum over n devices
/// is close to N_Z(0, nσ²), and the accountant charges for exactly that sum (``DistributedDiscreteGaussian``).
public struct DiscreteGaussian: Sendable, Equatable {
    /// σ² = varianceNumerator / varianceDenominator.
    public let varianceNumerator: UInt64
    /// The denominator of σ².
    public let varianceDenominator: UInt64
    /// The discrete Laplace proposal's scale: ⌊σ⌋ + 1.
    let laplaceScale: UInt64

    /// The largest σ the sampler's exact arithmetic covers.
    public static let maximumStandardDeviation = 1 << 24

    /// A sampler for σ² = numerator / denominator; nil unless 0 < σ ≤ ``maximumStandardDeviation``
    /// and the denominator is at most 2^16.
    public init?(varianceNumerator: UInt64, varianceDenominator: UInt64) {
        guard varianceNumerator > 0, varianceDenominator > 0, varianceDenominator <= 1 << 16 else { return nil }
        let floorVariance = varianceNumerator / varianceDenominator
        guard floorVariance <= UInt64(Self.maximumStandardDeviation) * UInt64(Self.maximumStandardDeviation) else { return nil }
        self.varianceNumerator = varianceNumerator
        self.varianceDenominator = varianceDenominator
        laplaceScale = Self.integerSquareRoot(floorVariance) + 1
    }

    /// σ² as a Double (for reports; the sampler never uses it).
    public var variance: Double { Double(varianceNumerator) / Double(varianceDenominator) }

    /// ⌊√x⌋.
    static func integerSquareRoot(_ x: UInt64) -> UInt64 {
        guard x > 1 else { return x }
        var root = UInt64(Double(x).squareRoot())
        while root * root > x { root -= 1 }
        while (root + 1) * (root + 1) <= x { root += 1 }
        return root
    }

    /// The discrete Laplace distribution P[x] ∝ exp(−|x| / t) (Algorithm 2 with s = 1).
    @inline(__always)
    func laplace(bits: inout NoiseBits) -> Int64 {
        let t = laplaceScale
        while true {
            let u = bits.uniform(below: t)
            guard ExactBernoulli.expMinusFraction(UInt128(u), UInt128(t), bits: &bits) else { continue }
            var v: UInt64 = 0
            while ExactBernoulli.expMinusFraction(1, 1, bits: &bits) { v += 1 }
            let magnitude = u + t * v
            let negative = bits.nextBit() == 1
            if negative && magnitude == 0 { continue }
            return negative ? -Int64(magnitude) : Int64(magnitude)
        }
    }

    /// One sample.
    public func sample(bits: inout NoiseBits) -> Int64 {
        let a = UInt128(varianceNumerator), b = UInt128(varianceDenominator), t = UInt128(laplaceScale)
        // Accept y with probability exp(−(|y| − σ²/t)² / 2σ²) = exp(−(|y|·b·t − a)² / (2·a·b·t²)).
        let denominator = 2 * a * b * t * t
        while true {
            let y = laplace(bits: &bits)
            let scaled = UInt128(y.magnitude) * b * t
            let (square, overflow) = (scaled > a ? scaled - a : a - scaled).multipliedReportingOverflow(by: scaled > a ? scaled - a : a - scaled)
            // |y| beyond 2^40 σ: the acceptance probability is below exp(−2^78); rejecting it
            // outright changes the distribution by less than that.
            if overflow { continue }
            if ExactBernoulli.expMinus(square, denominator, bits: &bits) { return y }
        }
    }

    /// Adds one independent sample to each element of `values`.
    public func addNoise(to values: inout [Int64], bits: inout NoiseBits) {
        for i in values.indices { values[i] += sample(bits: &bits) }
    }
}
