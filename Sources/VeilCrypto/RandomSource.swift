import CSodium

/// A source of cryptographically strong random bytes, injected wherever randomness is needed so
/// that protocol state machines stay deterministic under test.
///
/// Production code uses ``SystemRandomSource`` for everything secret (keys, self-mask seeds, Shamir
/// coefficients, round identifiers). The deterministic `SeededRandomSource` has `package` access:
/// only code inside this package (tests, the simulator, the vector generator, and derivations of
/// public values such as the Harary permutation from a round seed) can construct one, so no client
/// of the libraries can pass it where secrets are drawn.
public protocol RandomSource {
    /// Fills `buffer` entirely with random bytes.
    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

extension RandomSource {
    /// Returns `count` random bytes as a (public, unprotected) array, for nonces and round seeds.
    public mutating func bytes(count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        result.withUnsafeMutableBytes { fill($0) }
        return result
    }

    /// Returns a uniformly random 64-bit value.
    public mutating func nextUInt64() -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { fill($0) }
        return UInt64(littleEndian: value)
    }

    /// Returns a uniformly random integer in `0..<bound` (rejection sampling, no modulo bias).
    public mutating func nextUInt64(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let value = nextUInt64()
            if value < limit { return value % bound }
        }
    }

    /// Returns a uniformly random double in `[0, 1)` with 53 bits of precision.
    public mutating func nextUnitDouble() -> Double {
        Double(nextUInt64() >> 11) * 0x1.0p-53
    }
}

/// The operating system's CSPRNG, through libsodium's `randombytes_buf`.
public struct SystemRandomSource: RandomSource, Sendable {
    /// Creates the system source; libsodium is initialised on first use.
    public init() { SodiumRuntime.ensureInitialized() }

    /// Fills `buffer` with bytes from the operating system's CSPRNG.
    public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }
}

/// A deterministic random source: the ChaCha20 keystream of a 32-byte seed.
///
/// Every `fill` call uses the next 64-bit nonce, so output never repeats within one source.
/// Two sources with the same seed produce the same sequence of calls' output, which makes
/// simulator runs and known-answer tests reproducible.
///
/// Reachable only from inside this package (`package` access): tests, the simulator, the vector
/// generator, internal derivations whose output is public by design (the Harary permutation keyed
/// by the round seed), and the per-worker streams the aggregation session seeds from its injected
/// source to pick share subsets during unmasking. Clients of the libraries cannot construct one,
/// and the device and aggregator draw their secrets from ``SystemRandomSource``.
///
/// - warning: Only as secret as its seed. Use it for tests, simulations and public derivations,
///   never to generate keys that protect real data.
package struct SeededRandomSource: RandomSource, Sendable {
    private let key: SecretBytes
    private var nonce: UInt64 = 0

    /// Creates a source from a 32-byte seed; throws ``CryptoError/invalidLength(what:expected:actual:)``
    /// for any other length.
    package init(seed: SecretBytes) throws(CryptoError) {
        guard seed.count == Int(crypto_stream_chacha20_KEYBYTES) else {
            throw .invalidLength(what: "SeededRandomSource seed", expected: Int(crypto_stream_chacha20_KEYBYTES), actual: seed.count)
        }
        key = seed
    }

    /// Creates a source whose 32-byte seed is derived from a 64-bit number and a label (BLAKE2b),
    /// so `SeededRandomSource(seed: 7, label: "device-3")` is reproducible and distinct per label.
    package init(seed: UInt64, label: String) {
        var material = withUnsafeBytes(of: seed.littleEndian) { Array($0) }
        material.append(contentsOf: Array(label.utf8))
        key = SecretBytes(copying: BLAKE2b.hash(label: "veil/v1/seeded-random", message: material, outputByteCount: 32))
    }

    /// Fills `buffer` with the ChaCha20 keystream of the seed under the next nonce.
    package mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var nonceBytes = nonce.littleEndian
        nonce &+= 1
        key.withUnsafeBytes { k in
            withUnsafeBytes(of: &nonceBytes) { n in
                _ = crypto_stream_chacha20(
                    base.assumingMemoryBound(to: UInt8.self), UInt64(buffer.count),
                    n.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }
}
