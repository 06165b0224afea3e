import VeilCrypto

/// What each cryptographic operation the protocol cannot avoid costs on one core of this machine,
/// measured at the start of the same run as the round it is compared with: the X25519, Ed25519,
/// BLAKE2b and XChaCha20-Poly1305 calls of libsodium at the sizes the protocol uses, and Shamir
/// splitting and reconstruction over GF(2^61 − 1) (SPEC.md §3). Mask expansion and addition are
/// ``PhysicalLimits``.
public struct PrimitiveCosts: Sendable, Codable, Equatable {
    /// Seconds for one X25519 key pair (a fixed-base scalar multiplication).
    public let x25519KeyPair: Double
    /// Seconds for one X25519 agreement.
    public let x25519Agreement: Double
    /// Seconds for one Ed25519 signature over a statement of about 150 bytes.
    public let ed25519Sign: Double
    /// Seconds for one Ed25519 verification of such a statement.
    public let ed25519Verify: Double
    /// Seconds for one keyed BLAKE2b derivation of 32 bytes (the KDF of §1).
    public let kdf: Double
    /// Seconds for one BLAKE2b digest of a share or secret (about 100 bytes in).
    public let digest: Double
    /// Seconds to seal one 80-byte share pair.
    public let aeadSeal: Double
    /// Seconds to open one 96-byte sealed pair.
    public let aeadOpen: Double
    /// Seconds of one split beyond its polynomial evaluations (the commitment, the random
    /// coefficients' fixed part, the allocations).
    public let shamirSplit: Double
    /// Seconds per share per unit of threshold when splitting (a split into k shares at
    /// threshold t costs k · t of these, beyond ``shamirSplit``).
    public let shamirSplitUnit: Double
    /// Seconds per share used when reconstructing with a computed Lagrange basis (the
    /// commitment check is a digest).
    public let shamirReconstructShare: Double

    /// This process's measurement, made the first time it is asked for (one simulator run is one
    /// process, so the costs are measured in the same run as the round).
    public static let measured = measure()

    /// Measures every operation on this core: the median of 5 timed batches, after 3 untimed.
    public static func measure() -> PrimitiveCosts {
        var random = SeededRandomSource(seed: 0x5EC_A66, label: "primitive-costs")
        let peer = X25519.PrivateKey(using: &random).publicKey
        let mine = X25519.PrivateKey(using: &random)
        let signer = Ed25519.PrivateKey(using: &random)
        let statement = random.bytes(count: 150)
        let signature = signer.signature(for: statement)
        let secret = SecretBytes(randomCount: 32, using: &random)
        let shareText = random.bytes(count: 100)
        let key = XChaCha20Poly1305.Key(using: &random)
        let nonce = XChaCha20Poly1305.Nonce(using: &random)
        let pair = SecretBytes(randomCount: 80, using: &random)
        let associated = random.bytes(count: 37)
        let sealed = XChaCha20Poly1305.seal(pair, key: key, nonce: nonce, associatedData: associated)
        // Two sizes, so that a split's fixed cost and its marginal cost per share and threshold
        // unit come apart (one size would charge the fixed cost to every unit, and overstate
        // large splits).
        let small = (t: 16, k: 32), large = (t: 128, k: 256)
        let smallShares = try! ShamirSecretSharing.split(secret, threshold: small.t, shareCount: small.k, using: &random)
        let largeShares = try! ShamirSecretSharing.split(secret, threshold: large.t, shareCount: large.k, using: &random)
        let smallUsed = Array(smallShares.prefix(small.t)), largeUsed = Array(largeShares.prefix(large.t))
        let smallBasis = try! LagrangeBasis(xCoordinates: smallUsed.map(\.x)), largeBasis = try! LagrangeBasis(xCoordinates: largeUsed.map(\.x))
        func each(_ batch: Int, _ body: () -> Void) -> Double {
            PhysicalLimits.median { for _ in 0..<batch { body() } } / Double(batch)
        }
        let splitSmall = each(4) { _ = try? ShamirSecretSharing.split(secret, threshold: small.t, shareCount: small.k, using: &random) }
        let splitLarge = each(1) { _ = try? ShamirSecretSharing.split(secret, threshold: large.t, shareCount: large.k, using: &random) }
        let splitUnit = max(0, splitLarge - splitSmall) / Double(large.t * large.k - small.t * small.k)
        let reconstructSmall = each(20) { _ = try? ShamirSecretSharing.reconstruct(smallUsed, basis: smallBasis) }
        let reconstructLarge = each(5) { _ = try? ShamirSecretSharing.reconstruct(largeUsed, basis: largeBasis) }
        return PrimitiveCosts(
            x25519KeyPair: each(5) { _ = X25519.PrivateKey(using: &random).publicKey },
            x25519Agreement: each(5) { _ = try? mine.sharedSecret(with: peer) },
            ed25519Sign: each(5) { _ = signer.signature(for: statement) },
            ed25519Verify: each(5) { _ = signer.publicKey.isValidSignature(signature, for: statement) },
            kdf: each(50) { _ = try? KeyDerivation.derive(from: secret, label: "veil/v1/share-key", context: associated, outputByteCount: 32) },
            digest: each(50) { _ = BLAKE2b.hash(label: "veil/v1/share-digest", message: shareText, outputByteCount: 16) },
            aeadSeal: each(50) { _ = XChaCha20Poly1305.seal(pair, key: key, nonce: nonce, associatedData: associated) },
            aeadOpen: each(50) { _ = try? XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: associated) },
            shamirSplit: max(0, splitSmall - Double(small.t * small.k) * splitUnit), shamirSplitUnit: splitUnit,
            shamirReconstructShare: max(0, reconstructLarge - reconstructSmall) / Double(large.t - small.t))
    }
}
