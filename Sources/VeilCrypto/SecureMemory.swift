import CSodium

/// Zeroing of memory that held secret values, through libsodium's `sodium_memzero`, whose stores
/// the compiler may not remove even when the memory is released right afterwards.
///
/// For secrets that live outside ``SecretBytes`` for a moment: Shamir coefficients and limbs, a
/// device's input vector. ``SecretBytes`` zeroes its own buffer and needs none of this.
public enum SecureMemory {
    /// Overwrites every byte of `buffer` with zero.
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }

    /// Overwrites every element of `array` with zero, in the array's own buffer.
    ///
    /// - warning: Zeroes only the buffer `array` owns. If that buffer is shared with a copy
    ///   (copy-on-write), `array` first gets a private copy, which is zeroed, and the other copy
    ///   keeps the values: call this on the last holder of the buffer.
    public static func zero<Element: FixedWidthInteger & BitwiseCopyable>(_ array: inout [Element]) {
        array.withUnsafeMutableBytes { zero($0) }
    }
}
