public import VeilCrypto

/// The byte-exact derivations of the protocol: KDF contexts, associated data, PRG labels and
/// signed statements. `SPEC.md` §4 documents every layout; the vectors in `Protocols/vectors/`
/// are generated from these functions.
///
/// Integers are big-endian; `i` and `j` are 32-bit device indices; `rid` is the 16-byte round id.
public enum ProtocolEncoding {
    /// Shamir x-coordinate of the share held by device `holder`: holder + 1.
    public static func shareXCoordinate(holder: UInt32) -> UInt32 { holder + 1 }

    /// `rid || u32(a) || u32(b)`.
    static func context(_ round: RoundID, _ a: UInt32, _ b: UInt32) -> [UInt8] {
        round.bytes + a.bigEndianBytes + b.bigEndianBytes
    }

    /// The AEAD key sealing shares from `sender` to `recipient`:
    /// KDF(X25519(c_sk, c_pk'), "veil/v1/share-key", rid || u32(sender) || u32(recipient), 32).
    public static func shareEncryptionKey(
        sharedSecret: X25519.SharedSecret, round: RoundID, sender: UInt32, recipient: UInt32
    ) throws(CryptoError) -> (XChaCha20Poly1305.Key, XChaCha20Poly1305.Nonce) {
        let ctx = context(round, sender, recipient)
        let key = try KeyDerivation.derive(from: sharedSecret.bytes, label: "veil/v1/share-key", context: ctx, outputByteCount: 32)
        let nonce = try KeyDerivation.derive(from: sharedSecret.bytes, label: "veil/v1/share-nonce", context: ctx, outputByteCount: 24)
        return (try XChaCha20Poly1305.Key(key), try XChaCha20Poly1305.Nonce(bytes: nonce.unprotectedCopy()))
    }

    /// Associated data of a sealed share: "veil/v1/share" (13 bytes) || rid || u32(sender) || u32(recipient).
    public static func shareAssociatedData(round: RoundID, sender: UInt32, recipient: UInt32) -> [UInt8] {
        Array("veil/v1/share".utf8) + context(round, sender, recipient)
    }

    /// The pairwise mask seed of devices `a` and `b` (order-independent):
    /// KDF(X25519(s_sk, s_pk'), "veil/v1/pairwise-seed", rid || u32(min) || u32(max), 32).
    public static func pairwiseSeed(sharedSecret: X25519.SharedSecret, round: RoundID, _ a: UInt32, _ b: UInt32) throws(CryptoError) -> SecretBytes {
        try KeyDerivation.derive(
            from: sharedSecret.bytes, label: "veil/v1/pairwise-seed", context: context(round, min(a, b), max(a, b)), outputByteCount: 32)
    }

    /// PRG label of a pairwise mask: "veil/v1/pairwise-mask" || rid || u32(min) || u32(max).
    public static func pairwiseMaskLabel(round: RoundID, _ a: UInt32, _ b: UInt32) -> [UInt8] {
        Array("veil/v1/pairwise-mask".utf8) + context(round, min(a, b), max(a, b))
    }

    /// PRG label of a device's self mask: "veil/v1/self-mask" || rid || u32(device).
    public static func selfMaskLabel(round: RoundID, device: UInt32) -> [UInt8] {
        Array("veil/v1/self-mask".utf8) + round.bytes + device.bigEndianBytes
    }

    /// Whether device `i` adds (true) or subtracts (false) the pairwise mask it shares with `j`:
    /// the lower index adds, the higher subtracts, so the two cancel in the sum.
    public static func addsPairwiseMask(_ i: UInt32, with j: UInt32) -> Bool { i < j }

    /// The round transcript hash τ that every signed statement binds (`SPEC.md` §4.10):
    /// H("veil/v1/round-transcript", rid || seed || u32(n) || u32(m) || u32(b) || u32(prg) ||
    /// u32(k or 0 for the complete graph) || u32(t) || u32(model) [|| placement commitment], 32), with prg 1 for
    /// AES-128-CTR and 2 for ChaCha20, model 1 for honest-but-curious and 2 for active (the
    /// numbers of `secagg.proto`). A signature made for one configuration never verifies for
    /// another, even under the same round id.
    public static func roundTranscript(_ configuration: RoundConfiguration) -> [UInt8] {
        var message = configuration.roundID.bytes + configuration.roundSeed
        let degree: UInt32
        switch configuration.graph {
        case .complete: degree = 0
        case let .harary(k): degree = UInt32(k)
        }
        let prg: UInt32 = configuration.prg == .aes128CTR ? 1 : 2
        let model: UInt32 = configuration.threatModel == .honestButCurious ? 1 : 2
        for field in [UInt32(configuration.cohortSize), UInt32(configuration.dimension), UInt32(configuration.bitWidth),
                      prg, degree, UInt32(configuration.threshold), model] {
            message += field.bigEndianBytes
        }
        // With committed placement (§5.1) the commitment follows: 32 more bytes.
        message += configuration.placementCommitment ?? []
        return BLAKE2b.hash(label: "veil/v1/round-transcript", message: message, outputByteCount: 32)
    }

    /// The statement signed in AdvertiseKeys (active threat model):
    /// "veil/v1/advertise-keys" || τ || u32(device) || c_pk || s_pk [|| r_i], with the device's
    /// placement contribution r_i when the round uses committed placement (§5.1).
    public static func advertiseStatement(
        transcript: [UInt8], device: UInt32, encryptionKey: X25519.PublicKey, maskingKey: X25519.PublicKey,
        placementContribution: [UInt8]? = nil
    ) -> [UInt8] {
        Array("veil/v1/advertise-keys".utf8) + transcript + device.bigEndianBytes
            + encryptionKey.rawRepresentation + maskingKey.rawRepresentation + (placementContribution ?? [])
    }

    /// The statement signed in ConsistencyCheck: "veil/v1/consistency" || τ || u32(device) ||
    /// c_pk || s_pk || BLAKE2b-256(label "veil/v1/survivor-set", u32(count) || u32(index)... ascending).
    /// The signer's own fresh round keys tie the signature to this session: a second round under
    /// the same id has other keys, so a signature from one never verifies in the other.
    public static func consistencyStatement(
        transcript: [UInt8], device: UInt32, encryptionKey: X25519.PublicKey, maskingKey: X25519.PublicKey, survivors: [UInt32]
    ) -> [UInt8] {
        Array("veil/v1/consistency".utf8) + transcript + device.bigEndianBytes
            + encryptionKey.rawRepresentation + maskingKey.rawRepresentation + survivorSetDigest(survivors)
    }

    /// BLAKE2b-256 of the ascending survivor list.
    public static func survivorSetDigest(_ survivors: [UInt32]) -> [UInt8] {
        var message = UInt32(survivors.count).bigEndianBytes
        message.reserveCapacity(4 + 4 * survivors.count)
        for s in survivors { message += s.bigEndianBytes }
        return BLAKE2b.hash(label: "veil/v1/survivor-set", message: message, outputByteCount: 32)
    }
}

extension UInt32 {
    /// The four big-endian bytes.
    var bigEndianBytes: [UInt8] { withUnsafeBytes(of: bigEndian) { Array($0) } }
}
