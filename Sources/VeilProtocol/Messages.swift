public import VeilCrypto

/// One device's public round keys, as the server relays them to the device's neighbours.
public struct AdvertisedKeys: Sendable, Equatable {
    /// The device's index in the cohort.
    public let device: UInt32
    /// c_pk: the key shares are sealed to.
    public let encryptionKey: X25519.PublicKey
    /// s_pk: the key pairwise masks are agreed with.
    public let maskingKey: X25519.PublicKey
    /// Signature over ``ProtocolEncoding/advertiseStatement(transcript:device:encryptionKey:maskingKey:placementContribution:)``
    /// with the device's identity key (active threat model), else nil.
    public let signature: Ed25519.Signature?
    /// The device's placement contribution (committed placement only), covered by the signature.
    public let placementContribution: [UInt8]?
    /// The device's long-term identity key as enrolled with the server (active threat model).
    public let identityKey: Ed25519.PublicKey?

    /// Creates an entry.
    public init(
        device: UInt32, encryptionKey: X25519.PublicKey, maskingKey: X25519.PublicKey, signature: Ed25519.Signature?,
        identityKey: Ed25519.PublicKey?, placementContribution: [UInt8]? = nil
    ) {
        self.device = device
        self.encryptionKey = encryptionKey
        self.maskingKey = maskingKey
        self.signature = signature
        self.identityKey = identityKey
        self.placementContribution = placementContribution
    }
}

/// A share pair sealed from `sender` to `recipient`: XChaCha20-Poly1305 of
/// masking-key share values (40 bytes) || self-seed share values (40 bytes), plus the tag, with the
/// dealer's digest of each share (``ProtocolEncoding/shareDigest(transcript:dealer:holder:kind:values:)``).
public struct SealedShares: Sendable, Equatable {
    /// The dealer.
    public let sender: UInt32
    /// The holder.
    public let recipient: UInt32
    /// 96 bytes: 80 bytes of ciphertext and a 16-byte tag.
    public let ciphertext: Ciphertext
    /// The dealer's digest of the masking-key share inside.
    public let maskingKeyShareDigest: ShareDigest
    /// The dealer's digest of the self-mask share inside.
    public let selfMaskShareDigest: ShareDigest

    /// The exact ciphertext size.
    public static let ciphertextByteCount = 2 * ShamirSecretSharing.shareValueByteCount + XChaCha20Poly1305.tagByteCount
    /// The size of each share digest.
    public static let digestByteCount = ShareDigest.byteCount

    /// Creates a sealed share pair.
    public init(sender: UInt32, recipient: UInt32, ciphertext: Ciphertext, maskingKeyShareDigest: ShareDigest, selfMaskShareDigest: ShareDigest) {
        self.sender = sender
        self.recipient = recipient
        self.ciphertext = ciphertext
        self.maskingKeyShareDigest = maskingKeyShareDigest
        self.selfMaskShareDigest = selfMaskShareDigest
    }

    /// The digest of the share of `kind`.
    public func digest(of kind: ShareKind) -> ShareDigest {
        kind == .maskingKey ? maskingKeyShareDigest : selfMaskShareDigest
    }

    /// The 96 sealed bytes of one share pair, held inline.
    ///
    /// Inline, not in an array: the aggregator receives k sealed pairs from every device and
    /// routes each to its holder, so a heap array per pair cost an allocation when decoding and a
    /// reference-count update and a cache miss when routing. Ciphertext is public; `==` compares
    /// all 96 bytes.
    public struct Ciphertext: Sendable, Hashable {
        /// The first 64 bytes, in order.
        private var head: SIMD64<UInt8>
        /// The last 32 bytes, in order.
        private var tail: SIMD32<UInt8>

        /// The sealed bytes `bytes`, or nil unless there are exactly ``SealedShares/ciphertextByteCount`` of them.
        public init?(_ bytes: some Collection<UInt8>) {
            guard bytes.count == SealedShares.ciphertextByteCount else { return nil }
            head = SIMD64()
            tail = SIMD32()
            Swift.withUnsafeMutableBytes(of: &self) { copyInline(bytes, to: $0) }
        }

        /// The sealed bytes `bytes`, or nil unless there are exactly ``SealedShares/ciphertextByteCount`` of them.
        ///
        /// Not generic, so that a decoder in another module pays no generic dispatch per pair.
        public init?(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count == SealedShares.ciphertextByteCount else { return nil }
            head = SIMD64()
            tail = SIMD32()
            Swift.withUnsafeMutableBytes(of: &self) { $0.copyMemory(from: bytes) }
        }

        /// The 96 bytes, as a new array.
        public var bytes: [UInt8] { Swift.withUnsafeBytes(of: self) { Array($0) } }

        /// Calls `body` with the 96 bytes, without copying them.
        public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try Swift.withUnsafeBytes(of: self, body)
        }
    }
}

/// Which of a device's two secrets a share belongs to.
public enum ShareKind: UInt8, Sendable, Hashable {
    /// A share of s_sk, revealed when the device dropped.
    case maskingKey = 1
    /// A share of β, revealed when the device survived.
    case selfMask = 2
}

/// A revealed share: the values of the share that the responding device holds for `owner`.
public struct RevealedShare: Sendable, Equatable {
    /// The device whose secret this is a share of.
    public let owner: UInt32
    /// The 40-byte share values.
    public let values: SecretBytes

    /// Creates a revealed share.
    public init(owner: UInt32, values: SecretBytes) {
        self.owner = owner
        self.values = values
    }
}

/// A message a device sends to the server.
public enum DeviceMessage: Sendable, Equatable {
    /// Round 0: the device's two fresh public keys, signed in the active threat model, and its 32
    /// random placement bytes when the round uses committed placement (§5.1).
    case advertiseKeys(encryptionKey: X25519.PublicKey, maskingKey: X25519.PublicKey, signature: Ed25519.Signature?, placementContribution: [UInt8]? = nil)
    /// Round 1: commitments to both secrets and one sealed share pair per live neighbour.
    case shareKeys(maskingKeyCommitment: ShamirCommitment, selfMaskCommitment: ShamirCommitment, shares: [SealedShares])
    /// Round 2: y = x + PRG(b) + sum of signed pairwise masks, modulo 2^b.
    case maskedInput(ModularVector)
    /// Round 3 (active only): the signature of the consistency statement.
    case consistencySignature(Ed25519.Signature)
    /// Round 4: self-mask shares of surviving neighbours and masking-key shares of dropped ones.
    case unmaskingShares(selfMaskShares: [RevealedShare], maskingKeyShares: [RevealedShare])

    /// The phase in which the server expects this message.
    public var phase: Phase {
        switch self {
        case .advertiseKeys: return .advertiseKeys
        case .shareKeys: return .shareKeys
        case .maskedInput: return .maskedInputCollection
        case .consistencySignature: return .consistencyCheck
        case .unmaskingShares: return .unmasking
        }
    }
}

/// A message the server sends to one device.
public enum ServerMessage: Sendable, Equatable {
    /// After round 0: the keys of the device's neighbours that advertised, and the placement
    /// reveal when the round uses committed placement (§5.1).
    case neighbourKeys([AdvertisedKeys], placement: PlacementReveal? = nil)
    /// After round 1: the share pairs sealed to this device by neighbours that shared keys.
    case sealedShares([SealedShares])
    /// After round 2 (active only): the survivor set U3, every device whose masked input arrived.
    case consistencyCheck(survivors: [UInt32])
    /// After round 2 or 3: which neighbours survived and which dropped, with the consistency
    /// signatures of neighbours that signed (active threat model).
    case unmaskingRequest(survivingNeighbours: [UInt32], droppedNeighbours: [UInt32], signatures: [UInt32: Ed25519.Signature])

    /// The phase the device enters when it receives this message.
    public var phase: Phase {
        switch self {
        case .neighbourKeys: return .shareKeys
        case .sealedShares: return .maskedInputCollection
        case .consistencyCheck: return .consistencyCheck
        case .unmaskingRequest: return .unmasking
        }
    }
}
