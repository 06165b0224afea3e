/// Exact Bernoulli trials from uniform bits, for the discrete samplers (Canonne, Kamath and
/// Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020, Algorithms 1 and 2).
/// No floating point: probabilities are rationals and are compared with uniform bits lazily, bit
/// by bit, so a trial uses two random bits on average and its outcome has exactly the stated
/// probability. Floating-point samplers leak through the gaps in their outputs (Mironov,
/// "On Significance of the Least Significant Bits for Differential Privacy", CCS 2012).
enum ExactBernoulli {
    /// True with probability `numerator / denominator` (at most 1).
    @inline(__always)
    static func trial(_ numerator: UInt128, _ denominator: UInt128, bits: inout NoiseBits) -> Bool {
        if numerator >= denominator { return true }
        if numerator == 0 { return false }
        // Compare a uniform U in [0, 1) with p = numerator / denominator one binary digit at a
        // time: U < p exactly when, at the first digit where they differ, U's digit is 0.
        var remainder = numerator
        while true {
            remainder <<= 1
            let pDigit: UInt64
            if remainder >= denominator {
                remainder -= denominator
                pDigit = 1
            } else {
                pDigit = 0
            }
            let uDigit = bits.nextBit()
            if uDigit != pDigit { return uDigit < pDigit }
            if remainder == 0 { return false }   // p's expansion ended: U ≥ p from here on
        }
    }

    /// ``trial(_:_:bits:)`` for a denominator below 2^63, sixteen digits at a time: the next
    /// sixteen binary digits of p are computed without branching and compared with sixteen
    /// uniform bits at once; the first digit where they differ decides, exactly as comparing
    /// digit by digit would (the same digits, consumed in the same order).
    @inline(__always)
    static func trial64(_ numerator: UInt64, _ denominator: UInt64, bits: inout NoiseBits) -> Bool {
        if numerator >= denominator { return true }
        if numerator == 0 { return false }
        var remainder = numerator
        while true {
            var pDigits: UInt64 = 0
            for _ in 0..<4 {
                remainder <<= 1
                let digit: UInt64 = remainder >= denominator ? 1 : 0
                remainder -= denominator & (0 &- digit)
                pDigits = pDigits << 1 | digit
            }
            let uDigits = bits.next4()
            let differ = pDigits ^ uDigits
            if differ != 0 {
                // The first digit (most significant) where U and p differ: U < p when U's is 0.
                let position = 63 - differ.leadingZeroBitCount
                return (uDigits >> UInt64(position)) & 1 == 0
            }
        }
    }

    /// True with probability exp(−numerator / denominator), for numerator / denominator in [0, 1].
    @inline(__always)
    static func expMinusFraction(_ numerator: UInt128, _ denominator: UInt128, bits: inout NoiseBits) -> Bool {
        // Algorithm 1 for γ ≤ 1: count the K with Bernoulli(γ / K) true in a row; exp(−γ) is
        // the probability that the first false comes at an odd K.
        if denominator < 1 << 54 {
            // Sixty-four-bit arithmetic while denominator · K stays below 2^63 (K < 512).
            let n = UInt64(numerator), d = UInt64(denominator)
            var k: UInt64 = 1
            while k < 512 {
                guard trial64(n, d * k, bits: &bits) else { return k & 1 == 1 }
                k += 1
            }
            var wide = UInt128(k)
            while trial(numerator, denominator * wide, bits: &bits) { wide += 1 }
            return wide & 1 == 1
        }
        var k: UInt128 = 1
        while trial(numerator, denominator * k, bits: &bits) { k += 1 }
        return k & 1 == 1
    }

    /// True with probability exp(−numerator / denominator), any non-negative ratio.
    static func expMinus(_ numerator: UInt128, _ denominator: UInt128, bits: inout NoiseBits) -> Bool {
        if numerator < denominator { return expMinusFraction(numerator, denominator, bits: &bits) }
        var whole = numerator / denominator
        while whole > 0 {
            if !expMinusFraction(1, 1, bits: &bits) { return false }
            whole -= 1
        }
        return expMinusFraction(numerator % denominator, denominator, bits: &bits)
    }
}

extension NoiseBits {
    /// True with probability exactly `numerator / denominator` (at most 1), from these bits: the
    /// stochastic rounding of a device's scaled values uses it.
    public mutating func bernoulli(_ numerator: UInt128, over denominator: UInt128) -> Bool {
        ExactBernoulli.trial(numerator, denominator, bits: &self)
    }
}
