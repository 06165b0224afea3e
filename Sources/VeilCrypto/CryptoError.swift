/// The one error type of VeilCrypto's public-key, AEAD and encoding operations.
///
/// Every case says what was wrong without revealing secret material.
public enum CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A key, nonce, signature or secret had the wrong number of bytes.
    case invalidLength(what: String, expected: Int, actual: Int)
    /// X25519 key agreement produced the all-zero shared secret: the peer's public key has small order.
    case weakPublicKey
    /// An authenticated ciphertext failed to open: wrong key, wrong associated data, or tampering.
    case authenticationFailed
    /// A mask bit width outside 1...64, or an element type too narrow or too wide for it.
    case invalidBitWidth(Int, elementBits: Int)
    /// A KDF output length libsodium's BLAKE2b cannot produce (it allows 16...64 bytes).
    case invalidOutputLength(Int)
    /// An underlying C library reported a failure it should not have; carries the function name.
    case libraryFailure(String)

    public var description: String {
        switch self {
        case let .invalidLength(what, expected, actual):
            return "\(what) must be \(expected) bytes, got \(actual)"
        case .weakPublicKey:
            return "X25519 key agreement produced the all-zero secret (peer public key has small order)"
        case .authenticationFailed:
            return "authenticated decryption failed (wrong key, wrong associated data, or tampered ciphertext)"
        case let .invalidBitWidth(bits, elementBits):
            return "bit width \(bits) is not valid for \(elementBits)-bit mask elements (b must be in 1...64 and use 32-bit elements when b <= 32, 64-bit otherwise)"
        case let .invalidOutputLength(n):
            return "BLAKE2b output length \(n) is outside 16...64 bytes"
        case let .libraryFailure(function):
            return "cryptographic library call \(function) failed"
        }
    }
}
