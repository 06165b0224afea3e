import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import VeilCrypto

/// A device's long-term Ed25519 identity: enrolled once with the aggregator, then used to answer
/// every check-in challenge and, in the active threat model, to sign round keys.
public struct DeviceIdentity: Sendable, CustomStringConvertible {
    /// The private key (its seed is zeroed when released).
    public let privateKey: Ed25519.PrivateKey

    /// The public key the aggregator knows the device by.
    public var publicKey: Ed25519.PublicKey { privateKey.publicKey }

    /// Wraps an existing key.
    public init(privateKey: Ed25519.PrivateKey) {
        self.privateKey = privateKey
    }

    /// A fresh identity from the system CSPRNG (not stored anywhere).
    public static func generate() -> DeviceIdentity {
        var random = SystemRandomSource()
        return DeviceIdentity(privateKey: Ed25519.PrivateKey(using: &random))
    }

    /// Loads the identity stored at `path`, or creates one there. The file holds the 32-byte seed
    /// and is created with mode 0600; an existing file readable or writable by group or others, or
    /// of the wrong size, is refused rather than used.
    public static func loadOrCreate(at path: String) throws(IdentityFileError) -> DeviceIdentity {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd >= 0 {
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw .unreadable(path, errno: errno) }
            guard info.st_mode & 0o077 == 0 else { throw .tooPermissive(path, mode: UInt32(info.st_mode & 0o777)) }
            guard info.st_size == Int64(Ed25519.seedByteCount) else { throw .wrongSize(path, bytes: Int(info.st_size)) }
            let seed = try SecretBytes(count: Ed25519.seedByteCount) { (buffer) throws(IdentityFileError) in
                guard read(fd, buffer.baseAddress, buffer.count) == buffer.count else { throw .unreadable(path, errno: errno) }
            }
            do { return DeviceIdentity(privateKey: try Ed25519.PrivateKey(seed: seed)) } catch { throw .wrongSize(path, bytes: seed.count) }
        }
        guard errno == ENOENT else { throw .unreadable(path, errno: errno) }
        var random = SystemRandomSource()
        let key = Ed25519.PrivateKey(using: &random)
        let out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard out >= 0 else { throw .unwritable(path, errno: errno) }
        defer { close(out) }
        let written = key.seed.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
        guard written == Ed25519.seedByteCount, fsync(out) == 0 else {
            unlink(path)
            throw .unwritable(path, errno: errno)
        }
        return DeviceIdentity(privateKey: key)
    }

    /// Shows the public key only.
    public var description: String { "DeviceIdentity(\(Hex.encode(publicKey.rawRepresentation.prefix(8)))…)" }
}

/// Why the identity file could not be used.
public enum IdentityFileError: Error, Equatable, CustomStringConvertible {
    /// The file exists but could not be read.
    case unreadable(String, errno: Int32)
    /// The file could not be created or written.
    case unwritable(String, errno: Int32)
    /// Group or others may access the file.
    case tooPermissive(String, mode: UInt32)
    /// The file does not hold exactly a 32-byte seed.
    case wrongSize(String, bytes: Int)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .unreadable(path, e): return "cannot read the identity file \(path): \(String(cString: strerror(e)))"
        case let .unwritable(path, e): return "cannot create the identity file \(path): \(String(cString: strerror(e)))"
        case let .tooPermissive(path, mode): return "the identity file \(path) has mode \(String(mode, radix: 8)); it must not be accessible to group or others (chmod 600)"
        case let .wrongSize(path, bytes): return "the identity file \(path) holds \(bytes) bytes, not a 32-byte Ed25519 seed"
        }
    }
}
