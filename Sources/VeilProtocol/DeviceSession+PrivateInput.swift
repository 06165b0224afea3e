/// The device's private input for one session: its own copy, zeroed once the masked vector has
/// been computed, and zeroed when released in any case (an aborted session included).
///
/// A ``DeviceSession`` is a value, but its private input is consumed once: a copy of a session
/// that already masked its input cannot mask it again (that would need the plaintext).
final class PrivateInput: @unchecked Sendable {
    // Mutated only by the session that owns it, which is not shared across tasks.
    private var vector: ModularVector
    private(set) var isWiped = false

    /// Takes a private copy of `input`, so that wiping it never depends on the caller's copies.
    init(copying input: ModularVector) {
        vector = input.distinctCopy()
    }

    /// The plaintext vector; precondition: not yet wiped.
    var plaintext: ModularVector {
        precondition(!isWiped, "the session's private input was already masked and wiped; a session masks its input once")
        return vector
    }

    /// Zeroes the private copy in place.
    func wipe() {
        vector.wipe()
        isWiped = true
    }

    deinit { vector.wipe() }
}

extension ModularVector {
    /// A copy with its own element storage (not sharing the buffer copy-on-write).
    func distinctCopy() -> ModularVector {
        switch storage {
        case let .narrow(a): return ModularVector(bitWidth: bitWidth, storage: .narrow(a.withUnsafeBufferPointer { Array($0) }))
        case let .wide(a): return ModularVector(bitWidth: bitWidth, storage: .wide(a.withUnsafeBufferPointer { Array($0) }))
        }
    }
}
