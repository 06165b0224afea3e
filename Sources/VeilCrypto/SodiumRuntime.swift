import CSodium

/// Runs `sodium_init()` exactly once per process before any libsodium call.
///
/// Every entry point of VeilCrypto that touches libsodium calls ``ensureInitialized()`` first.
/// Swift guarantees that a `static let` initialiser runs once, atomically, even under concurrent
/// first use, so this is safe from any thread.
enum SodiumRuntime {
    private static let initialization: Int32 = sodium_init()

    /// Initialises libsodium if it has not been initialised yet; traps if libsodium cannot start
    /// (which only happens when the process cannot obtain entropy: continuing would be unsafe).
    @inline(__always)
    static func ensureInitialized() {
        precondition(initialization >= 0, "sodium_init() failed: libsodium is unusable in this process")
    }
}
