import VeilCrypto
import VeilPrivacy

/// The benchmark cases: raw primitives first, then Veil's wrappers measured against them.
struct Cases {
    let harness: Harness
    let quick: Bool

    var throughputBytes: Int { quick ? 256 * 1024 : 1024 * 1024 }

    /// GB/s of the raw cipher keystream written into a cache-friendly buffer.
    func rawKeystream(_ algorithm: PRGAlgorithm) -> Double {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: throughputBytes, alignment: 64)
        defer { buffer.deallocate() }
        let seconds = harness.median(iterations: quick ? 20 : 100) { MaskGenerator.writeBaselineKeystream(algorithm: algorithm, into: buffer) }
        return Double(throughputBytes) / seconds / 1e9
    }

    /// GB/s of mask elements written by `MaskGenerator.fill` (or `accumulate`) for `count` elements.
    func mask<E: MaskElement>(_: E.Type, _ algorithm: PRGAlgorithm, bits: Int, count: Int, accumulate: Bool) -> Double {
        let generator = MaskGenerator(algorithm: algorithm)
        let seed = SecretBytes(copying: [UInt8](repeating: 3, count: 32))
        var vector = [E](repeating: 0, count: count)
        let iterations = max(10, (quick ? 5_000_000 : 50_000_000) / (count * MemoryLayout<E>.stride))
        let seconds = vector.withUnsafeMutableBufferPointer { p in
            harness.median(iterations: iterations) {
                if accumulate {
                    try! generator.accumulate(into: p, seed: seed, label: [1], bitWidth: bits)
                } else {
                    try! generator.fill(p, seed: seed, label: [1], bitWidth: bits)
                }
            }
        }
        return Double(count * MemoryLayout<E>.stride) / seconds / 1e9
    }

    /// GB/s of element-wise wrapping addition of two cache-resident vectors.
    func vectorAdd<E: MaskElement>(_: E.Type) -> Double {
        let count = throughputBytes / MemoryLayout<E>.stride / 4
        var a = [E](repeating: 1, count: count)
        let b = [E](repeating: 2, count: count)
        let seconds = a.withUnsafeMutableBufferPointer { x in
            b.withUnsafeBufferPointer { y in
                harness.median(iterations: quick ? 200 : 2000) {
                    for i in 0..<x.count { x[i] = x[i] &+ y[i] }
                }
            }
        }
        blackHole(a[count / 2])
        return Double(count * MemoryLayout<E>.stride) / seconds / 1e9
    }

    /// Microseconds per call.
    func micros(iterations: Int, _ body: () -> Void) -> Double {
        harness.median(iterations: quick ? max(1, iterations / 10) : iterations, body) * 1e6
    }

    func publicKeyCases() -> [Figure] {
        var random = SystemRandomSource()
        let alice = X25519.PrivateKey(using: &random)
        let bob = X25519.PrivateKey(using: &random).publicKey
        let signer = Ed25519.PrivateKey(using: &random)
        let message = [UInt8](repeating: 7, count: 64)
        let signature = signer.signature(for: message)
        let aeadKey = XChaCha20Poly1305.Key(using: &random)
        let nonce = XChaCha20Poly1305.Nonce(using: &random)
        let small = SecretBytes(copying: [UInt8](repeating: 1, count: 64))
        let share = SecretBytes(copying: [UInt8](repeating: 1, count: 80))
        let secret = SecretBytes(copying: [UInt8](repeating: 9, count: 32))
        return [
            Figure(name: "X25519 key generation", value: micros(iterations: 2000) { blackHole(X25519.PrivateKey(using: &random)) }, unit: "µs"),
            Figure(name: "X25519 key agreement", value: micros(iterations: 2000) { blackHole(try! alice.sharedSecret(with: bob)) }, unit: "µs"),
            Figure(name: "Ed25519 sign (64 B)", value: micros(iterations: 2000) { blackHole(signer.signature(for: message)) }, unit: "µs"),
            Figure(name: "Ed25519 verify (64 B)", value: micros(iterations: 2000) { blackHole(signer.publicKey.isValidSignature(signature, for: message)) }, unit: "µs"),
            Figure(name: "XChaCha20-Poly1305 seal 64 B", value: micros(iterations: 20000) { blackHole(XChaCha20Poly1305.seal(small, key: aeadKey, nonce: nonce, associatedData: [1, 2, 3])) }, unit: "µs"),
            Figure(name: "XChaCha20-Poly1305 seal 80 B (share pair)", value: micros(iterations: 20000) { blackHole(XChaCha20Poly1305.seal(share, key: aeadKey, nonce: nonce, associatedData: [1, 2, 3])) }, unit: "µs"),
            Figure(name: "BLAKE2b KDF, 32 B out", value: micros(iterations: 20000) { blackHole(try! KeyDerivation.derive(from: secret, label: "veil/v1/bench", context: [1, 2, 3, 4], outputByteCount: 32)) }, unit: "µs"),
        ]
    }

    func shamirCases() -> [Figure] {
        var random = SystemRandomSource()
        let secret = SecretBytes(copying: [UInt8](repeating: 5, count: 32))
        var figures = [Figure]()
        for (n, t) in [(100, 51), (1000, 501)] {
            var shares: [ShamirShare] = []
            let split = harness.median(iterations: quick ? 2 : (n == 100 ? 200 : 5)) {
                shares = try! ShamirSecretSharing.split(secret, threshold: t, shareCount: n, using: &random)
            }
            let subset = Array(shares.prefix(t))
            let reconstruct = harness.median(iterations: quick ? 2 : (n == 100 ? 200 : 5)) {
                blackHole(try! ShamirSecretSharing.reconstruct(subset, threshold: t))
            }
            let basis = try! LagrangeBasis(xCoordinates: subset.map(\.x))
            let cached = harness.median(iterations: quick ? 2 : (n == 100 ? 2000 : 200)) {
                blackHole(try! ShamirSecretSharing.reconstruct(subset, basis: basis))
            }
            figures.append(Figure(name: "Shamir split n=\(n) t=\(t)", value: split * 1e3, unit: "ms"))
            figures.append(Figure(name: "Shamir reconstruct n=\(n) t=\(t)", value: reconstruct * 1e3, unit: "ms"))
            figures.append(Figure(name: "Shamir reconstruct n=\(n) t=\(t), cached basis", value: cached * 1e3, unit: "ms"))
        }
        return figures
    }
}

extension Cases {
    /// Milliseconds to sample exact discrete Gaussian noise for `count` coordinates (one device's
    /// distributed-DP noise) at standard deviation `sigma`, from a fresh ChaCha20 noise key.
    func noiseMilliseconds(count: Int, sigma: UInt64) -> Double {
        var random = SystemRandomSource()
        let sampler = DiscreteGaussian(varianceNumerator: sigma * sigma, varianceDenominator: 1)!
        var values = [Int64](repeating: 0, count: count)
        return harness.median(iterations: quick ? 2 : 5) {
            var bits = NoiseBits(using: &random)
            sampler.addNoise(to: &values, bits: &bits)
        } * 1e3
    }

    /// Milliseconds to add one mask of `count` 64-bit elements (one PRG expansion).
    func maskMilliseconds(_ algorithm: PRGAlgorithm, count: Int) -> Double {
        let generator = MaskGenerator(algorithm: algorithm)
        let seed = SecretBytes(copying: [UInt8](repeating: 3, count: 32))
        var vector = [UInt64](repeating: 0, count: count)
        return vector.withUnsafeMutableBufferPointer { p in
            harness.median(iterations: quick ? 5 : 20) { try! generator.accumulate(into: p, seed: seed, label: [1], bitWidth: 64) }
        } * 1e3
    }
}

/// Keeps a value alive so the optimiser cannot remove the work that produced it.
@inline(never)
func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }
