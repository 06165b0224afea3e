import CSodium

/// Ed25519 signatures (RFC 8032) on libsodium's `crypto_sign_*`.
public enum Ed25519 {
    /// Public key size: 32 bytes.
    public static let publicKeyByteCount = 32
    /// Seed (private key) size: 32 bytes.
    public static let seedByteCount = 32
    /// Signature size: 64 bytes.
    public static let signatureByteCount = 64

    /// An Ed25519 verification key.
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        /// The 32-byte encoding.
        public let rawRepresentation: [UInt8]

        /// Wraps 32 bytes; the length is checked here, the point when verifying.
        public init(rawRepresentation: [UInt8]) throws(CryptoError) {
            guard rawRepresentation.count == Ed25519.publicKeyByteCount else {
                throw .invalidLength(what: "Ed25519 public key", expected: Ed25519.publicKeyByteCount, actual: rawRepresentation.count)
            }
            self.rawRepresentation = rawRepresentation
        }

        /// Verifies `signature` over `message`. libsodium rejects small-order keys and
        /// non-canonical encodings, so a `true` here is strong.
        public func isValidSignature(_ signature: Signature, for message: [UInt8]) -> Bool {
            SodiumRuntime.ensureInitialized()
            return signature.rawRepresentation.withUnsafeBytes { s in
                message.withUnsafeBytes { m in
                    rawRepresentation.withUnsafeBytes { p in
                        crypto_sign_verify_detached(
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            m.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            UInt64(m.count),
                            p.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
                    }
                }
            }
        }

        public var description: String { "Ed25519.PublicKey(\(Hex.prefix(rawRepresentation)))" }
    }

    /// A 64-byte Ed25519 signature.
    public struct Signature: Sendable, Hashable {
        /// The 64 signature bytes (R || S).
        public let rawRepresentation: [UInt8]

        /// Wraps 64 bytes received from a peer.
        public init(rawRepresentation: [UInt8]) throws(CryptoError) {
            guard rawRepresentation.count == Ed25519.signatureByteCount else {
                throw .invalidLength(what: "Ed25519 signature", expected: Ed25519.signatureByteCount, actual: rawRepresentation.count)
            }
            self.rawRepresentation = rawRepresentation
        }
    }

    /// An Ed25519 signing key in zeroizing storage.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        /// The 32-byte seed from which the key is derived (what is stored on disk).
        public let seed: SecretBytes
        /// libsodium's 64-byte expanded secret key (seed || public key).
        private let expanded: SecretBytes
        /// The verification key.
        public let publicKey: PublicKey

        /// Generates a fresh signing key from `random`.
        public init(using random: inout some RandomSource) {
            try! self.init(seed: SecretBytes(randomCount: Ed25519.seedByteCount, using: &random))
        }

        /// Restores a signing key from its 32-byte seed (RFC 8032's private key).
        public init(seed: SecretBytes) throws(CryptoError) {
            guard seed.count == Ed25519.seedByteCount else {
                throw .invalidLength(what: "Ed25519 seed", expected: Ed25519.seedByteCount, actual: seed.count)
            }
            SodiumRuntime.ensureInitialized()
            var pub = [UInt8](repeating: 0, count: Ed25519.publicKeyByteCount)
            var rc: Int32 = 0
            let expanded = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { sk in
                seed.withUnsafeBytes { s in
                    pub.withUnsafeMutableBytes { p in
                        rc = crypto_sign_seed_keypair(
                            p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            guard rc == 0 else { throw .libraryFailure("crypto_sign_seed_keypair") }
            self.seed = seed
            self.expanded = expanded
            self.publicKey = try PublicKey(rawRepresentation: pub)
        }

        /// Signs `message` (deterministic, RFC 8032).
        public func signature(for message: [UInt8]) -> Signature {
            var sig = [UInt8](repeating: 0, count: Ed25519.signatureByteCount)
            sig.withUnsafeMutableBytes { s in
                message.withUnsafeBytes { m in
                    expanded.withUnsafeBytes { k in
                        _ = crypto_sign_detached(
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self), nil,
                            m.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(s.baseAddress!.assumingMemoryBound(to: UInt8.self)),
                            UInt64(m.count),
                            k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
            return try! Signature(rawRepresentation: sig)
        }

        /// Redacted: shows only the public key.
        public var description: String { "Ed25519.PrivateKey(public: \(Hex.prefix(publicKey.rawRepresentation)), secret redacted)" }
    }
}
