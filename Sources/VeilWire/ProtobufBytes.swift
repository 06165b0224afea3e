/// The protobuf wire format at the byte level, for the few messages the aggregator handles once
/// per device pair: building each device's neighbour keys and incoming shares, and reading each
/// ShareKeys. Through swift-protobuf these cost one intermediate message and several small
/// allocations per share, which made them the server's largest cost (`Simulations/RESULTS.md`).
///
/// The writer emits exactly what swift-protobuf emits for the same message (fields in number
/// order, proto3 defaults left out), which `FastWireTests` checks byte for byte. The reader only
/// ever *accepts*: when anything is unusual (an unknown or repeated field, a wrong wire type, a
/// bad length) it gives up and the caller decodes through swift-protobuf, so errors stay as they were.
enum ProtobufBytes {
    /// Wire type 0: varint.
    static let varintType = 0
    /// Wire type 2: length-delimited.
    static let lengthType = 2

    /// The bytes `value` takes as a varint.
    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var v = value >> 7
        while v != 0 {
            size += 1
            v >>= 7
        }
        return size
    }

    /// The bytes a length-delimited field of `length` bytes takes with its one-byte tag.
    static func lengthFieldSize(_ length: Int) -> Int { 1 + varintSize(UInt64(length)) + length }

    /// The bytes a non-zero varint field takes with its one-byte tag (nothing when zero).
    static func varintFieldSize(_ value: UInt64) -> Int { value == 0 ? 0 : 1 + varintSize(value) }

    /// The bytes a bytes field takes (nothing when empty, as proto3 leaves it out).
    static func bytesFieldSize(_ length: Int) -> Int { length == 0 ? 0 : lengthFieldSize(length) }

    /// `raw` (part of a received `[UInt8]`) as typed bytes, whose contiguous storage lets arrays,
    /// digests and secrets copy it in one `memcpy` rather than byte by byte.
    static func typed(_ raw: UnsafeRawBufferPointer) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
    }
}

/// Writes protobuf fields straight into a buffer of exactly the size the caller computed, with
/// no capacity checks per field (a field costs a few nanoseconds, which is what makes routing
/// fast). Field numbers must be below 16 (one-byte tags). Writing more than the size given traps.
struct ProtobufWriter {
    private var cursor: UnsafeMutablePointer<UInt8>
    private let end: UnsafeMutablePointer<UInt8>

    /// Fills a new array of exactly `size` bytes with `body`, which must write all of them.
    static func write(size: Int, _ body: (inout ProtobufWriter) -> Void) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            var writer = ProtobufWriter(cursor: base, end: base + size)
            body(&writer)
            precondition(writer.cursor == writer.end, "the message is \(writer.cursor - base) bytes, not the \(size) computed")
            initialized = size
        }
    }

    private init(cursor: UnsafeMutablePointer<UInt8>, end: UnsafeMutablePointer<UInt8>) {
        self.cursor = cursor
        self.end = end
    }

    private mutating func byte(_ value: UInt8) {
        precondition(cursor < end, "writing past the computed size")
        cursor.pointee = value
        cursor += 1
    }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        byte(UInt8(v))
    }

    mutating func tag(_ field: Int, _ wireType: Int) { byte(UInt8(field << 3 | wireType)) }

    /// A varint field, left out when zero.
    mutating func varintField(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, ProtobufBytes.varintType)
        varint(value)
    }

    /// A bytes field, left out when empty (unless `always`, as repeated elements are written).
    mutating func bytesField(_ field: Int, _ value: UnsafeRawBufferPointer, always: Bool = false) {
        guard always || !value.isEmpty else { return }
        tag(field, ProtobufBytes.lengthType)
        varint(UInt64(value.count))
        precondition(end - cursor >= value.count, "writing past the computed size")
        if let source = value.baseAddress { UnsafeMutableRawPointer(cursor).copyMemory(from: source, byteCount: value.count) }
        cursor += value.count
    }

    /// A bytes field from an array.
    mutating func bytesField(_ field: Int, _ value: [UInt8], always: Bool = false) {
        value.withUnsafeBytes { bytesField(field, $0, always: always) }
    }

    /// The header of an embedded message of `length` bytes; its fields follow.
    mutating func messageHeader(_ field: Int, length: Int) {
        tag(field, ProtobufBytes.lengthType)
        varint(UInt64(length))
    }
}

/// Reads protobuf fields from a buffer. Every method returns nil on anything malformed.
struct ProtobufReader {
    let buffer: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var isAtEnd: Bool { offset >= buffer.count }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < buffer.count, shift < 64 {
            let byte = buffer[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }

    /// The next field's number and wire type.
    mutating func field() -> (number: Int, wireType: Int)? {
        guard let key = varint(), key >> 3 > 0, key >> 3 < 1 << 29 else { return nil }
        return (Int(key >> 3), Int(key & 7))
    }

    /// The body of a length-delimited field.
    mutating func lengthDelimited() -> UnsafeRawBufferPointer? {
        guard let length = varint(), length <= UInt64(buffer.count - offset) else { return nil }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: buffer[start..<offset])
    }
}
