import CSodium

/// A fixed-length buffer of secret bytes that zeroes itself when the last copy is released.
///
/// Copies of a `SecretBytes` share one immutable buffer; the buffer is wiped with
/// `sodium_memzero` in `deinit`. Equality runs in constant time (`sodium_memcmp`) for equal
/// lengths. `description` and `debugDescription` never show the content, so a `SecretBytes`
/// can appear in a log line or an error without leaking.
///
/// - warning: Bytes copied *out* (for example with ``withUnsafeBytes(_:)`` into an `Array`) are no
///   longer protected. Keep secrets inside this type until the moment a C function consumes them.
public struct SecretBytes: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    final class Storage: @unchecked Sendable {
        // Written only during `init`, read-only afterwards: safe to share between threads.
        let buffer: UnsafeMutableRawBufferPointer

        let count: Int

        init(count: Int) {
            SodiumRuntime.ensureInitialized()
            // Allocate at least one byte so `baseAddress` is never nil.
            buffer = .allocate(byteCount: max(count, 1), alignment: 16)
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            self.count = count
        }

        deinit {
            sodium_memzero(buffer.baseAddress!, buffer.count)
            buffer.deallocate()
        }
    }

    let storage: Storage

    /// The number of secret bytes.
    public var count: Int { storage.count }

    /// Creates `count` bytes filled by `initializer`, which writes the secret directly into the
    /// protected buffer (no unprotected intermediate copy).
    public init<E: Error>(count: Int, initializingWith initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void) throws(E) {
        precondition(count >= 0, "SecretBytes count must not be negative")
        storage = Storage(count: count)
        try initializer(UnsafeMutableRawBufferPointer(rebasing: storage.buffer[0..<count]))
    }

    /// Creates `count` bytes drawn from `random`.
    public init(randomCount count: Int, using random: inout some RandomSource) {
        storage = Storage(count: count)
        random.fill(UnsafeMutableRawBufferPointer(rebasing: storage.buffer[0..<count]))
    }

    /// Copies `bytes` into protected storage. The caller remains responsible for the source copy.
    public init(copying bytes: some Collection<UInt8>) {
        storage = Storage(count: bytes.count)
        UnsafeMutableRawBufferPointer(rebasing: storage.buffer[0..<bytes.count]).copyBytes(from: bytes)
    }

    /// Calls `body` with read access to the secret bytes. Do not let the pointer escape.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage.buffer[0..<storage.count]))
    }

    /// Copies the secret out as an array. Use only to serialise a secret into a message that is
    /// itself protected (for example an AEAD plaintext), and prefer ``withUnsafeBytes(_:)``.
    public func unprotectedCopy() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time comparison for equal lengths; different lengths compare unequal.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 { return true }
        return sodium_memcmp(lhs.storage.buffer.baseAddress!, rhs.storage.buffer.baseAddress!, lhs.count) == 0
    }

    /// Compares with public bytes in constant time (for the length-equal case).
    public func constantTimeEquals(_ other: [UInt8]) -> Bool {
        guard other.count == count else { return false }
        if count == 0 { return true }
        return other.withUnsafeBytes { o in
            sodium_memcmp(storage.buffer.baseAddress!, o.baseAddress!, count) == 0
        }
    }

    /// Always redacted: `SecretBytes(32 bytes, redacted)`.
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    /// Always redacted, like ``description``.
    public var debugDescription: String { description }
}
