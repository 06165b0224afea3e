public import VeilCrypto

/// The random bits noise is sampled from: the ChaCha20 keystream of a fresh 32-byte key drawn
/// from an injected ``RandomSource`` (the system CSPRNG on a device), read in 32 KiB blocks, each
/// under its own label, so no (key, label) pair is ever used twice. Consumed a bit or a word at a
/// time by the exact samplers; the buffer holds secrets and is wiped when refilled and released.
public struct NoiseBits: ~Copyable {
    private static let wordsPerBlock = 4096
    private let generator = MaskGenerator(algorithm: .chacha20)
    private let key: SecretBytes
    private let buffer: UnsafeMutableBufferPointer<UInt64>
    private var block: UInt64 = 0
    private var index: Int
    private var word: UInt64 = 0
    private var bitsLeft = 0

    /// A source keyed from `random`, which must be a cryptographic source outside tests.
    public init(using random: inout some RandomSource) {
        key = SecretBytes(randomCount: 32, using: &random)
        buffer = .allocate(capacity: Self.wordsPerBlock)
        buffer.initialize(repeating: 0)
        index = Self.wordsPerBlock
    }

    deinit {
        SecureMemory.zero(UnsafeMutableRawBufferPointer(buffer))
        buffer.deallocate()
    }

    private mutating func refill() {
        var label = Array("veil/v1/dp-noise/".utf8)
        withUnsafeBytes(of: block.littleEndian) { label.append(contentsOf: $0) }
        block += 1
        // A 32-byte key is what fill expects: it cannot fail.
        try! generator.fill(buffer, seed: key, label: label, bitWidth: 64)
        index = 0
    }

    /// 64 uniform bits.
    @inline(__always)
    public mutating func nextWord() -> UInt64 {
        if index == Self.wordsPerBlock { refill() }
        defer { index += 1 }
        return buffer[index]
    }

    /// One uniform bit (0 or 1).
    @inline(__always)
    public mutating func nextBit() -> UInt64 {
        if bitsLeft == 0 {
            word = nextWord()
            bitsLeft = 64
        }
        let bit = word & 1
        word >>= 1
        bitsLeft -= 1
        return bit
    }

    /// Four uniform bits (in the low bits of the result).
    @inline(__always)
    public mutating func next4() -> UInt64 {
        if bitsLeft < 4 {
            word = nextWord()
            bitsLeft = 64
        }
        let chunk = word & 0xF
        word >>= 4
        bitsLeft -= 4
        return chunk
    }

    /// A uniform integer in `0 ..< bound` (rejection sampling: exact).
    public mutating func uniform(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        if bound & (bound - 1) == 0 { return nextWord() & (bound - 1) }
        // Lemire's multiply-and-reject: the high word of x · bound is uniform once the low
        // word is at least 2^64 mod bound.
        var product = nextWord().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = nextWord().multipliedFullWidth(by: bound) }
        }
        return product.high
    }
}
