import CSodium

/// X25519 Diffie-Hellman key agreement (RFC 7748) on libsodium's `crypto_scalarmult`.
public enum X25519 {
    /// The size of private keys, public keys and shared secrets: 32 bytes.
    public static let keyByteCount = 32

    /// An X25519 public key: 32 public bytes, held inline.
    ///
    /// Inline, not in an array: an aggregator copies every device's two keys into each of its
    /// neighbours' key lists, k times per device, and a heap array per key made each copy a
    /// reference-count update and a cache miss of its own.
    public struct PublicKey: Sendable, Hashable, CustomStringConvertible {
        /// The 32 bytes, in order.
        private var storage: SIMD32<UInt8>

        /// Wraps 32 bytes received from a peer; the length is checked, small-order points are
        /// caught at key agreement.
        public init(rawRepresentation: some Collection<UInt8>) throws(CryptoError) {
            guard rawRepresentation.count == X25519.keyByteCount else {
                throw .invalidLength(what: "X25519 public key", expected: X25519.keyByteCount, actual: rawRepresentation.count)
            }
            storage = SIMD32()
            Swift.withUnsafeMutableBytes(of: &storage) { copyInline(rawRepresentation, to: $0) }
        }

        /// The 32-byte encoding (RFC 7748 u-coordinate, little-endian), as a new array.
        public var rawRepresentation: [UInt8] { Swift.withUnsafeBytes(of: storage) { Array($0) } }

        /// Calls `body` with the 32-byte encoding, without copying it.
        public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
            var storage = storage
            return try Swift.withUnsafeBytes(of: &storage) { (bytes) throws(E) -> R in try body(bytes) }
        }

        /// Whether the key is a point of small order (order dividing 8, on the curve or its twist),
        /// the all-zero key included: key agreement with it yields a predictable (all-zero) secret.
        ///
        /// Exact and constant-cost: X25519 ignores the top bit, and the points of order dividing 8
        /// on Curve25519 and its twist have exactly five u-coordinates (0, 1, p − 1 and the two
        /// points of order 8), two of which (0 and 1) also have the non-canonical encodings p and
        /// p + 1; no other 255-bit value reduces to one of them. These are the values libsodium's
        /// `crypto_scalarmult` refuses. An aggregator checks every advertised key with it.
        public func hasSmallOrder() -> Bool {
            var masked = rawRepresentation
            masked[31] &= 0x7F
            return X25519.smallOrderEncodings.contains(masked)
        }

        public var description: String { "X25519.PublicKey(\(Hex.prefix(rawRepresentation)))" }
    }

    /// The seven encodings (top bit clear, little-endian) of points of order dividing 8.
    static let smallOrderEncodings: Set<[UInt8]> = Set([
        "0000000000000000000000000000000000000000000000000000000000000000", // 0
        "0100000000000000000000000000000000000000000000000000000000000000", // 1
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p - 1
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p (= 0)
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p + 1 (= 1)
    ].map { Hex.decode($0)! })

    /// An X25519 private key, kept in zeroizing storage, with its public key.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        /// The 32-byte secret scalar.
        public let rawRepresentation: SecretBytes
        /// The matching public key.
        public let publicKey: PublicKey

        /// Generates a fresh key pair from `random`.
        public init(using random: inout some RandomSource) {
            let secret = SecretBytes(randomCount: X25519.keyByteCount, using: &random)
            // A 32-byte scalar always yields a valid public key.
            try! self.init(rawRepresentation: secret)
        }

        /// Restores a private key from its 32-byte scalar (for example after Shamir reconstruction).
        public init(rawRepresentation: SecretBytes) throws(CryptoError) {
            guard rawRepresentation.count == X25519.keyByteCount else {
                throw .invalidLength(what: "X25519 private key", expected: X25519.keyByteCount, actual: rawRepresentation.count)
            }
            self.rawRepresentation = rawRepresentation
            var pub = [UInt8](repeating: 0, count: X25519.keyByteCount)
            let rc = pub.withUnsafeMutableBytes { p in
                rawRepresentation.withUnsafeBytes { s in
                    crypto_scalarmult_base(
                        p.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            guard rc == 0 else { throw .libraryFailure("crypto_scalarmult_base") }
            publicKey = try PublicKey(rawRepresentation: pub)
        }

        /// Computes the shared secret with `peer`, refusing the all-zero result that a small-order
        /// peer key produces (libsodium returns -1 for it).
        public func sharedSecret(with peer: PublicKey) throws(CryptoError) -> SharedSecret {
            var failed = false
            let secret = SecretBytes(count: X25519.keyByteCount) { out in
                rawRepresentation.withUnsafeBytes { s in
                    peer.withUnsafeBytes { p in
                        failed = crypto_scalarmult(
                            out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            p.baseAddress!.assumingMemoryBound(to: UInt8.self)) != 0
                    }
                }
            }
            // libsodium already rejects an all-zero output; check again in constant time so the
            // guarantee does not depend on the library version.
            let zero = SecretBytes(copying: [UInt8](repeating: 0, count: X25519.keyByteCount))
            guard !failed, secret != zero else { throw .weakPublicKey }
            return SharedSecret(bytes: secret)
        }

        /// Redacted: shows only the public key.
        public var description: String { "X25519.PrivateKey(public: \(Hex.prefix(publicKey.rawRepresentation)), secret redacted)" }
    }

    /// The raw output of key agreement. Feed it to ``KeyDerivation`` rather than using it as a key.
    public struct SharedSecret: Sendable, Equatable, CustomStringConvertible {
        /// The 32 shared bytes.
        public let bytes: SecretBytes

        public var description: String { "X25519.SharedSecret(redacted)" }
    }
}

/// Hex helpers for public data (never used on secrets).
public enum Hex {
    /// Lower-case hex of `bytes`.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes lower- or upper-case hex; returns nil on odd length or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    /// The first eight bytes in hex followed by an ellipsis, for log-friendly identifiers.
    static func prefix(_ bytes: [UInt8]) -> String {
        encode(bytes.prefix(8)) + (bytes.count > 8 ? "…" : "")
    }
}

/// Copies `bytes` (exactly `out.count` of them) into a value's inline storage: in one copy from
/// contiguous storage (arrays, Data, buffers), byte by byte only otherwise. For this package's
/// fixed-size byte values (public keys, sealed share pairs, share digests).
package func copyInline(_ bytes: some Collection<UInt8>, to out: UnsafeMutableRawBufferPointer) {
    precondition(bytes.count == out.count, "copyInline needs exactly as many bytes as the storage holds")
    let copied: Void? = bytes.withContiguousStorageIfAvailable { out.copyMemory(from: UnsafeRawBufferPointer($0)) }
    if copied == nil {
        for (index, byte) in bytes.enumerated() { out[index] = byte }
    }
}
