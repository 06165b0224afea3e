public import VeilCrypto

/// A vector of integers modulo 2^b, b in 1...64, the value type every input, mask and sum is.
///
/// Storage is `UInt32` for b <= 32 and `UInt64` otherwise, matching the PRG's element width, so
/// mask expansion and addition run on packed words. Every element is kept below 2^b.
public struct ModularVector: Sendable, Equatable {
    enum Storage: Sendable, Equatable {
        case narrow([UInt32])
        case wide([UInt64])
    }

    /// The modulus exponent b.
    public let bitWidth: Int
    var storage: Storage

    /// Wraps storage whose elements are already below 2^b.
    init(bitWidth: Int, storage: Storage) {
        self.bitWidth = bitWidth
        self.storage = storage
    }

    /// The zero vector of `count` elements.
    public init(zerosOfCount count: Int, bitWidth: Int) {
        precondition((1...64).contains(bitWidth), "bit width must be in 1...64")
        self.bitWidth = bitWidth
        storage = bitWidth <= 32 ? .narrow(Array(repeating: 0, count: count)) : .wide(Array(repeating: 0, count: count))
    }

    /// Wraps `values`, refusing any value not below 2^b.
    public init(values: [UInt64], bitWidth: Int) throws(ModularVectorError) {
        guard (1...64).contains(bitWidth) else { throw .invalidBitWidth(bitWidth) }
        let limit = ModularVector.modulusMask(bitWidth)
        if let index = values.firstIndex(where: { $0 > limit }) {
            throw .valueOutOfRange(index: index, bitWidth: bitWidth)
        }
        self.bitWidth = bitWidth
        storage = bitWidth <= 32 ? .narrow(values.map { UInt32(truncatingIfNeeded: $0) }) : .wide(values)
    }

    /// Reduces arbitrary values modulo 2^b (two's complement for negative inputs).
    public init(reducing values: [Int64], bitWidth: Int) {
        precondition((1...64).contains(bitWidth), "bit width must be in 1...64")
        let mask = ModularVector.modulusMask(bitWidth)
        try! self.init(values: values.map { UInt64(bitPattern: $0) & mask }, bitWidth: bitWidth)
    }

    /// The number of elements.
    public var count: Int {
        switch storage {
        case let .narrow(a): return a.count
        case let .wide(a): return a.count
        }
    }

    /// The elements as 64-bit values.
    public var elements: [UInt64] {
        switch storage {
        case let .narrow(a): return a.map(UInt64.init)
        case let .wide(a): return a
        }
    }

    /// 2^b - 1.
    public static func modulusMask(_ bitWidth: Int) -> UInt64 {
        bitWidth == 64 ? .max : (1 << UInt64(bitWidth)) - 1
    }

    /// Adds `other` element-wise modulo 2^b. Both vectors must have the same shape.
    public mutating func add(_ other: ModularVector) {
        precondition(other.bitWidth == bitWidth && other.count == count, "vector shapes differ")
        switch (storage, other.storage) {
        case (.narrow(var a), let .narrow(b)):
            storage = .narrow([])
            let m = UInt32(truncatingIfNeeded: Self.modulusMask(bitWidth))
            a.withUnsafeMutableBufferPointer { x in
                b.withUnsafeBufferPointer { y in
                    for i in 0..<x.count { x[i] = (x[i] &+ y[i]) & m }
                }
            }
            storage = .narrow(a)
        case (.wide(var a), let .wide(b)):
            storage = .wide([])
            let m = Self.modulusMask(bitWidth)
            a.withUnsafeMutableBufferPointer { x in
                b.withUnsafeBufferPointer { y in
                    for i in 0..<x.count { x[i] = (x[i] &+ y[i]) & m }
                }
            }
            storage = .wide(a)
        default:
            preconditionFailure("storage kinds differ for one bit width")
        }
    }

    /// Adds (or subtracts) the PRG mask of `seed` and `label` in place, through `generator`.
    public mutating func applyMask(
        seed: SecretBytes, label: [UInt8], generator: MaskGenerator, subtracting: Bool = false
    ) throws(CryptoError) {
        switch storage {
        case var .narrow(a):
            storage = .narrow([])
            defer { storage = .narrow(a) }
            try a.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in
                try generator.accumulate(into: p, seed: seed, label: label, bitWidth: bitWidth, subtracting: subtracting)
            }
        case var .wide(a):
            storage = .wide([])
            defer { storage = .wide(a) }
            try a.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in
                try generator.accumulate(into: p, seed: seed, label: label, bitWidth: bitWidth, subtracting: subtracting)
            }
        }
    }

    /// Zeroes every element in place, in this value's own buffer (with `sodium_memzero`, which the
    /// compiler may not remove), keeping the count and bit width; a device calls it once its input
    /// is no longer needed.
    ///
    /// - warning: Copies of this vector made before the call (an earlier assignment, the
    ///   ``elements`` array, a vector passed to another session) share or hold their own storage
    ///   and keep their values: wiping them is the caller's responsibility. If the buffer is still
    ///   shared with such a copy, this value first gets a private buffer, which is zeroed.
    public mutating func wipe() {
        switch storage {
        case var .narrow(a):
            storage = .narrow([])
            SecureMemory.zero(&a)
            storage = .narrow(a)
        case var .wide(a):
            storage = .wide([])
            SecureMemory.zero(&a)
            storage = .wide(a)
        }
    }

    /// The number of bytes one element occupies on the wire: ceil(b / 8).
    public var packedElementByteCount: Int { (bitWidth + 7) / 8 }
}

/// Why a vector could not be built.
public enum ModularVectorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bit width is outside 1...64.
    case invalidBitWidth(Int)
    /// An element is not below 2^b.
    case valueOutOfRange(index: Int, bitWidth: Int)
    /// A packed vector has the wrong number of bytes.
    case wrongPackedLength(expected: Int, actual: Int)

    public var description: String {
        switch self {
        case let .invalidBitWidth(b): return "bit width \(b) is outside 1...64"
        case let .valueOutOfRange(i, b): return "element \(i) is not below 2^\(b)"
        case let .wrongPackedLength(e, a): return "packed vector is \(a) bytes, expected \(e)"
        }
    }
}

extension ModularVector {
    /// The vector packed as `count` little-endian words of ``packedElementByteCount`` bytes each:
    /// the wire form of a masked input (SPEC.md §6.3).
    public func packed() -> [UInt8] {
        let width = packedElementByteCount
        #if _endian(little)
        // Full-width words are already in wire order in memory.
        switch storage {
        case let .narrow(a) where width == 4: return a.withUnsafeBytes { Array($0) }
        case let .wide(a) where width == 8: return a.withUnsafeBytes { Array($0) }
        default: break
        }
        #endif
        var out = [UInt8](repeating: 0, count: count * width)
        out.withUnsafeMutableBytes { raw in
            func write<T: FixedWidthInteger>(_ values: [T]) {
                var offset = 0
                for v in values {
                    var value = v
                    for _ in 0..<width {
                        raw[offset] = UInt8(truncatingIfNeeded: value)
                        value >>= 8
                        offset += 1
                    }
                }
            }
            switch storage {
            case let .narrow(a): write(a)
            case let .wide(a): write(a)
            }
        }
        return out
    }

    /// Unpacks `count` elements of b bits from their packed form, refusing a wrong length or an
    /// element not below 2^b.
    public init(packed bytes: [UInt8], count: Int, bitWidth: Int) throws(ModularVectorError) {
        let unpacked = bytes.withUnsafeBytes { raw in
            Result { () throws(ModularVectorError) in try ModularVector(packed: raw, count: count, bitWidth: bitWidth) }
        }
        self = try unpacked.get()
    }

    /// Unpacks from bytes in place (a received message's buffer), without copying them first.
    public init(packed bytes: UnsafeRawBufferPointer, count: Int, bitWidth: Int) throws(ModularVectorError) {
        guard (1...64).contains(bitWidth) else { throw .invalidBitWidth(bitWidth) }
        let width = (bitWidth + 7) / 8
        guard bytes.count == count * width else { throw .wrongPackedLength(expected: count * width, actual: bytes.count) }
        let limit = ModularVector.modulusMask(bitWidth)
        #if _endian(little)
        // Full-width words need no range check (every 32- or 64-bit word is below 2^b), and the
        // packed little-endian form is the words' own layout: one copy.
        if width == 4 && bitWidth == 32 {
            let words = [UInt32](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
                initialized = count
            }
            self.init(bitWidth: bitWidth, storage: .narrow(words))
            return
        }
        if width == 8 && bitWidth == 64 {
            let words = [UInt64](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
                initialized = count
            }
            self.init(bitWidth: bitWidth, storage: .wide(words))
            return
        }
        #endif
        var values = [UInt64](repeating: 0, count: count)
        for i in 0..<count {
            var value: UInt64 = 0
            for j in 0..<width { value |= UInt64(bytes[i * width + j]) << UInt64(8 * j) }
            guard value <= limit else { throw .valueOutOfRange(index: i, bitWidth: bitWidth) }
            values[i] = value
        }
        try self.init(values: values, bitWidth: bitWidth)
    }
}
