import CSodium
import COpenSSLCrypto

/// The stream cipher a ``MaskGenerator`` expands seeds with.
public enum PRGAlgorithm: String, Sendable, Hashable, CaseIterable, Codable {
    /// AES-128 in counter mode, through OpenSSL's EVP interface (AES-NI where the CPU has it).
    case aes128CTR = "aes-128-ctr"
    /// The original ChaCha20 (64-bit nonce, 64-bit block counter), through libsodium.
    case chacha20 = "chacha20"
}

/// An unsigned integer type that can hold mask elements: `UInt32` for bit widths up to 32,
/// `UInt64` for 33...64.
public protocol MaskElement: FixedWidthInteger, UnsignedInteger, Sendable {}
extension UInt32: MaskElement {}
extension UInt64: MaskElement {}

/// Expands a 32-byte seed into a vector of integers modulo 2^b (the masks of secure aggregation).
///
/// Output element `i` is the `i`-th `w`-byte little-endian word of the cipher's keystream, reduced
/// modulo 2^b by keeping its low `b` bits, where `w` = 4 when b <= 32 and 8 otherwise. The
/// keystream key and IV are `KeyDerivation.derive(from: seed, label: "veil/v1/prg/<algorithm>",
/// context: label, outputByteCount: 48)`: bytes 0..<16 key and 16..<32 IV for AES-128-CTR
/// (big-endian 128-bit counter), bytes 0..<32 key and 32..<40 nonce for ChaCha20 (counter from 0).
///
/// The generator writes straight into the caller's buffer and keeps one small scratch block, so
/// it allocates nothing per element or per call. It is not thread-safe: give each thread its own.
///
/// - warning: A (seed, label) pair must be used for one mask only. Reusing it makes two masks
///   identical, and their difference reveals the difference of the masked inputs.
public final class MaskGenerator {
    /// The cipher used by this generator.
    public let algorithm: PRGAlgorithm

    /// Bytes per keystream chunk: small enough to stay in L1/L2 cache between the cipher and the
    /// addition, large enough to amortise call overhead. A multiple of 64 (ChaCha20's block).
    static let chunkByteCount = 16 * 1024

    private let cipherContext: OpaquePointer?
    private let scratch: UnsafeMutableRawBufferPointer
    private let zeros: UnsafeMutableRawBufferPointer

    /// Creates a generator for `algorithm`.
    public init(algorithm: PRGAlgorithm) {
        SodiumRuntime.ensureInitialized()
        self.algorithm = algorithm
        scratch = .allocate(byteCount: Self.chunkByteCount, alignment: 64)
        zeros = .allocate(byteCount: Self.chunkByteCount, alignment: 64)
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        scratch.initializeMemory(as: UInt8.self, repeating: 0)
        cipherContext = algorithm == .aes128CTR ? EVP_CIPHER_CTX_new() : nil
        if algorithm == .aes128CTR { precondition(cipherContext != nil, "EVP_CIPHER_CTX_new failed") }
    }

    deinit {
        if let cipherContext { EVP_CIPHER_CTX_free(cipherContext) }
        // The scratch block held keystream: wipe it.
        sodium_memzero(scratch.baseAddress!, scratch.count)
        scratch.deallocate()
        zeros.deallocate()
    }

    /// The element width in bits that carries b-bit masks: 32 for b <= 32, 64 otherwise.
    public static func elementBits(forBitWidth bitWidth: Int) -> Int { bitWidth <= 32 ? 32 : 64 }

    /// Writes the first `output.count` mask elements for (`seed`, `label`) modulo 2^`bitWidth`
    /// into `output`.
    public func fill<Element: MaskElement>(
        _ output: UnsafeMutableBufferPointer<Element>, seed: SecretBytes, label: [UInt8], bitWidth: Int
    ) throws(CryptoError) {
        try validate(Element.self, bitWidth: bitWidth, seed: seed)
        let keystream = try Keystream(generator: self, seed: seed, label: label)
        defer { keystream.finish() }
        let raw = UnsafeMutableRawBufferPointer(output)
        var offset = 0
        while offset < raw.count {
            let n = min(Self.chunkByteCount, raw.count - offset)
            let chunk = UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + n)])
            keystream.write(into: chunk)
            offset += n
        }
        Self.reduce(output, bitWidth: bitWidth)
    }

    /// Adds (or, with `subtracting`, subtracts) the mask for (`seed`, `label`) to `vector`
    /// element-wise modulo 2^`bitWidth`. `vector`'s elements must already be below 2^`bitWidth`.
    public func accumulate<Element: MaskElement>(
        into vector: UnsafeMutableBufferPointer<Element>, seed: SecretBytes, label: [UInt8], bitWidth: Int, subtracting: Bool = false
    ) throws(CryptoError) {
        try validate(Element.self, bitWidth: bitWidth, seed: seed)
        let keystream = try Keystream(generator: self, seed: seed, label: label)
        defer { keystream.finish() }
        let elementsPerChunk = Self.chunkByteCount / MemoryLayout<Element>.stride
        let modulusMask = Self.modulusMask(Element.self, bitWidth: bitWidth)
        var start = 0
        while start < vector.count {
            let n = min(elementsPerChunk, vector.count - start)
            let chunk = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(n * MemoryLayout<Element>.stride)])
            keystream.write(into: chunk)
            let target = UnsafeMutableBufferPointer(rebasing: vector[start..<(start + n)])
            if Element.self == UInt32.self {
                Self.combine(
                    UnsafeMutablePointer<UInt32>(OpaquePointer(target.baseAddress!)),
                    UnsafePointer<UInt32>(OpaquePointer(chunk.baseAddress!)), n,
                    UInt32(truncatingIfNeeded: modulusMask), subtracting)
            } else {
                Self.combine(
                    UnsafeMutablePointer<UInt64>(OpaquePointer(target.baseAddress!)),
                    UnsafePointer<UInt64>(OpaquePointer(chunk.baseAddress!)), n,
                    UInt64(truncatingIfNeeded: modulusMask), subtracting)
            }
            start += n
        }
    }

    // MARK: - Internals

    private func validate<Element: MaskElement>(_: Element.Type, bitWidth: Int, seed: SecretBytes) throws(CryptoError) {
        guard (1...64).contains(bitWidth), Element.bitWidth == Self.elementBits(forBitWidth: bitWidth) else {
            throw .invalidBitWidth(bitWidth, elementBits: Element.bitWidth)
        }
        guard seed.count == 32 else { throw .invalidLength(what: "PRG seed", expected: 32, actual: seed.count) }
    }

    static func modulusMask<Element: MaskElement>(_: Element.Type, bitWidth: Int) -> UInt64 {
        bitWidth == 64 ? UInt64.max : (UInt64(1) << UInt64(bitWidth)) - 1
    }

    /// Converts keystream words (little-endian) to host order and keeps the low `bitWidth` bits.
    static func reduce<Element: MaskElement>(_ output: UnsafeMutableBufferPointer<Element>, bitWidth: Int) {
        #if _endian(big)
        for i in output.indices { output[i] = Element(littleEndian: output[i]) }
        #endif
        guard bitWidth < Element.bitWidth else { return }
        let mask = Element(truncatingIfNeeded: modulusMask(Element.self, bitWidth: bitWidth))
        for i in output.indices { output[i] &= mask }
    }

    @inline(__always)
    static func combine<T: FixedWidthInteger>(_ target: UnsafeMutablePointer<T>, _ stream: UnsafePointer<T>, _ n: Int, _ mask: T, _ subtracting: Bool) {
        if subtracting {
            for i in 0..<n { target[i] = (target[i] &- (T(littleEndian: stream[i]) & mask)) & mask }
        } else {
            for i in 0..<n { target[i] = (target[i] &+ (T(littleEndian: stream[i]) & mask)) & mask }
        }
    }

    /// One keystream positioned at its start.
    private struct Keystream {
        let generator: MaskGenerator
        let material: SecretBytes

        init(generator: MaskGenerator, seed: SecretBytes, label: [UInt8]) throws(CryptoError) {
            try self.init(generator: generator, material: KeyDerivation.derive(
                from: seed, label: "veil/v1/prg/" + generator.algorithm.rawValue, context: label, outputByteCount: 48))
        }

        /// Positions a keystream on raw cipher material (48 bytes laid out as in the type's
        /// documentation), bypassing the KDF; used by the seed path and by known-answer tests.
        init(generator: MaskGenerator, material: SecretBytes) throws(CryptoError) {
            precondition(material.count == 48, "keystream material is 48 bytes")
            self.generator = generator
            self.material = material
            if generator.algorithm == .aes128CTR {
                let ok = material.withUnsafeBytes { m in
                    EVP_EncryptInit_ex(
                        generator.cipherContext, EVP_aes_128_ctr(), nil,
                        m.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        m.baseAddress!.assumingMemoryBound(to: UInt8.self) + 16)
                }
                guard ok == 1 else { throw .libraryFailure("EVP_EncryptInit_ex") }
            }
        }

        /// Writes the next `chunk.count` keystream bytes into `chunk` (at most one scratch block).
        func write(into chunk: UnsafeMutableRawBufferPointer) {
            precondition(chunk.count <= MaskGenerator.chunkByteCount)
            switch generator.algorithm {
            case .aes128CTR:
                var written: Int32 = 0
                let ok = EVP_EncryptUpdate(
                    generator.cipherContext,
                    chunk.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                    generator.zeros.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(chunk.count))
                precondition(ok == 1 && Int(written) == chunk.count, "EVP_EncryptUpdate failed in CTR mode")
            case .chacha20:
                mutatingChaCha(chunk)
            }
        }

        private func mutatingChaCha(_ chunk: UnsafeMutableRawBufferPointer) {
            // The block counter lives on the generator so `write` stays non-mutating for both ciphers.
            let counter = generator.chachaCounter
            material.withUnsafeBytes { m in
                _ = crypto_stream_chacha20_xor_ic(
                    chunk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    generator.zeros.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(chunk.count),
                    m.baseAddress!.assumingMemoryBound(to: UInt8.self) + 32,
                    counter,
                    m.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            // Chunks are whole blocks except possibly the last one of a call.
            generator.chachaCounter = counter &+ UInt64((chunk.count + 63) / 64)
        }

        func finish() {
            generator.chachaCounter = 0
        }
    }

    /// The raw keystream of `algorithm` for a cipher key and IV/nonce, without the KDF: AES-128-CTR
    /// takes a 16-byte key and 16-byte initial counter block, ChaCha20 a 32-byte key and 8-byte
    /// nonce. Exists so that tests can check the cipher path against published vectors and the
    /// benchmark can measure the raw primitive through the same calls.
    static func rawKeystream(algorithm: PRGAlgorithm, key: [UInt8], iv: [UInt8], into output: UnsafeMutableRawBufferPointer) {
        var material = [UInt8](repeating: 0, count: 48)
        switch algorithm {
        case .aes128CTR:
            precondition(key.count == 16 && iv.count == 16, "AES-128-CTR takes a 16-byte key and IV")
            material.replaceSubrange(0..<16, with: key)
            material.replaceSubrange(16..<32, with: iv)
        case .chacha20:
            precondition(key.count == 32 && iv.count == 8, "ChaCha20 takes a 32-byte key and 8-byte nonce")
            material.replaceSubrange(0..<32, with: key)
            material.replaceSubrange(32..<40, with: iv)
        }
        let generator = MaskGenerator(algorithm: algorithm)
        let keystream = try! Keystream(generator: generator, material: SecretBytes(copying: material))
        defer { keystream.finish() }
        var offset = 0
        while offset < output.count {
            let n = min(chunkByteCount, output.count - offset)
            keystream.write(into: UnsafeMutableRawBufferPointer(rebasing: output[offset..<(offset + n)]))
            offset += n
        }
    }

    /// Writes the raw cipher keystream for a fixed all-zero key into `output`, through exactly the
    /// calls mask expansion uses but without the KDF and the reduction. Benchmarks use it as the
    /// physical limit that mask expansion is compared against.
    public static func writeBaselineKeystream(algorithm: PRGAlgorithm, into output: UnsafeMutableRawBufferPointer) {
        switch algorithm {
        case .aes128CTR: rawKeystream(algorithm: algorithm, key: [UInt8](repeating: 0, count: 16), iv: [UInt8](repeating: 0, count: 16), into: output)
        case .chacha20: rawKeystream(algorithm: algorithm, key: [UInt8](repeating: 0, count: 32), iv: [UInt8](repeating: 0, count: 8), into: output)
        }
    }

    /// ChaCha20 block counter of the keystream in progress (64-byte blocks written so far).
    private var chachaCounter: UInt64 = 0
}
