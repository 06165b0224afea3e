/// Arithmetic in the prime field GF(p) with the Mersenne prime p = 2^61 - 1, used by Shamir
/// secret sharing. Elements are `UInt64` values in `0..<p`.
///
/// Multiplication reduces the 122-bit product with the identity 2^61 = 1 (mod p), so every
/// operation is a handful of integer instructions and runs in time independent of the values.
enum PrimeField {
    /// The modulus 2^61 - 1.
    static let p: UInt64 = (1 << 61) - 1

    @inline(__always)
    static func add(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let s = a &+ b
        return s >= p ? s &- p : s
    }

    @inline(__always)
    static func subtract(_ a: UInt64, _ b: UInt64) -> UInt64 {
        a >= b ? a &- b : a &+ p &- b
    }

    @inline(__always)
    static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (high, low) = a.multipliedFullWidth(by: b)
        // product = high * 2^64 + low = (high << 3 | low >> 61) * 2^61 + (low & p)
        let folded = (high << 3 | low >> 61) &+ (low & p)
        return folded >= p ? folded &- p : folded
    }

    /// a^(p-2), the inverse of a non-zero `a` (Fermat).
    static func inverse(_ a: UInt64) -> UInt64 {
        precondition(a != 0, "zero has no inverse")
        var result: UInt64 = 1
        var base = a
        var exponent = p - 2
        while exponent > 0 {
            if exponent & 1 == 1 { result = multiply(result, base) }
            base = multiply(base, base)
            exponent >>= 1
        }
        return result
    }

    /// Inverts every element of `values` with one field inversion (Montgomery's trick).
    static func batchInverse(_ values: [UInt64]) -> [UInt64] {
        guard !values.isEmpty else { return [] }
        var prefix = [UInt64](repeating: 1, count: values.count)
        var running: UInt64 = 1
        for i in values.indices {
            prefix[i] = running
            running = multiply(running, values[i])
        }
        var inverseRunning = inverse(running)
        var result = [UInt64](repeating: 0, count: values.count)
        for i in values.indices.reversed() {
            result[i] = multiply(inverseRunning, prefix[i])
            inverseRunning = multiply(inverseRunning, values[i])
        }
        return result
    }
}
