import CSodium

/// XChaCha20-Poly1305-IETF authenticated encryption with associated data, on libsodium's
/// `crypto_aead_xchacha20poly1305_ietf_*`.
///
/// The 24-byte nonce is large enough to draw at random; Veil derives it from a KDF instead where
/// each key seals exactly one message, which makes reuse impossible by construction.
public enum XChaCha20Poly1305 {
    /// Key size: 32 bytes.
    public static let keyByteCount = 32
    /// Nonce size: 24 bytes.
    public static let nonceByteCount = 24
    /// Authentication tag size appended to every ciphertext: 16 bytes.
    public static let tagByteCount = 16

    /// A 32-byte AEAD key in zeroizing storage.
    public struct Key: Sendable, Equatable, CustomStringConvertible {
        let secret: SecretBytes

        /// Wraps 32 secret bytes (typically a ``KeyDerivation`` output).
        public init(_ secret: SecretBytes) throws(CryptoError) {
            guard secret.count == XChaCha20Poly1305.keyByteCount else {
                throw .invalidLength(what: "XChaCha20-Poly1305 key", expected: XChaCha20Poly1305.keyByteCount, actual: secret.count)
            }
            self.secret = secret
        }

        /// Generates a random key.
        public init(using random: inout some RandomSource) {
            secret = SecretBytes(randomCount: XChaCha20Poly1305.keyByteCount, using: &random)
        }

        public var description: String { "XChaCha20Poly1305.Key(redacted)" }
    }

    /// A 24-byte nonce. Public, but must never repeat under one key.
    public struct Nonce: Sendable, Hashable {
        /// The 24 nonce bytes.
        public let bytes: [UInt8]

        /// Wraps 24 bytes.
        public init(bytes: [UInt8]) throws(CryptoError) {
            guard bytes.count == XChaCha20Poly1305.nonceByteCount else {
                throw .invalidLength(what: "XChaCha20-Poly1305 nonce", expected: XChaCha20Poly1305.nonceByteCount, actual: bytes.count)
            }
            self.bytes = bytes
        }

        /// Draws a random nonce.
        public init(using random: inout some RandomSource) {
            bytes = random.bytes(count: XChaCha20Poly1305.nonceByteCount)
        }
    }

    /// Encrypts and authenticates `plaintext`, binding `associatedData`; returns ciphertext || tag.
    public static func seal(_ plaintext: SecretBytes, key: Key, nonce: Nonce, associatedData: [UInt8]) -> [UInt8] {
        SodiumRuntime.ensureInitialized()
        var out = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        var outLength: UInt64 = 0
        out.withUnsafeMutableBytes { o in
            plaintext.withUnsafeBytes { m in
                key.secret.withUnsafeBytes { k in
                    associatedData.withUnsafeBytes { ad in
                        nonce.bytes.withUnsafeBytes { n in
                            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                                o.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLength,
                                m.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(m.count),
                                ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
                                nil,
                                n.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            }
        }
        return out
    }

    /// Verifies and decrypts `ciphertext` (ciphertext || tag); the plaintext lands in zeroizing
    /// storage. Throws ``CryptoError/authenticationFailed`` on any mismatch.
    public static func open(_ ciphertext: [UInt8], key: Key, nonce: Nonce, associatedData: [UInt8]) throws(CryptoError) -> SecretBytes {
        SodiumRuntime.ensureInitialized()
        guard ciphertext.count >= tagByteCount else { throw .authenticationFailed }
        var failed = false
        let plaintext = SecretBytes(count: ciphertext.count - tagByteCount) { out in
            var outLength: UInt64 = 0
            ciphertext.withUnsafeBytes { c in
                key.secret.withUnsafeBytes { k in
                    associatedData.withUnsafeBytes { ad in
                        nonce.bytes.withUnsafeBytes { n in
                            // The output buffer is never empty (SecretBytes allocates >= 1 byte).
                            let o = out.baseAddress ?? UnsafeMutableRawPointer(mutating: k.baseAddress!)
                            failed = crypto_aead_xchacha20poly1305_ietf_decrypt(
                                o.assumingMemoryBound(to: UInt8.self), &outLength,
                                nil,
                                c.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(c.count),
                                ad.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(ad.count),
                                n.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                k.baseAddress!.assumingMemoryBound(to: UInt8.self)) != 0
                        }
                    }
                }
            }
        }
        guard !failed else { throw .authenticationFailed }
        return plaintext
    }
}
