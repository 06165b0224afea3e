public import VeilCrypto

/// A dealer's 16-byte digest of one Shamir share (SPEC §4.11), held inline: two words, no heap
/// allocation, so the 2(k) digests a device deals and the 2(k) it checks cost no allocator work.
///
/// Digests are public (the server keeps them to check revealed shares), so equality need not be
/// constant-time; `==` compares all 16 bytes.
public struct ShareDigest: Sendable, Hashable {
    /// The digest's size on the wire and in the hash.
    public static let byteCount = 16

    /// The first eight bytes, as stored in memory (no byte-order conversion).
    private var head: UInt64
    /// The last eight bytes, as stored in memory.
    private var tail: UInt64

    /// The digest whose bytes are `bytes`, or nil unless there are exactly ``byteCount`` of them.
    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        head = 0
        tail = 0
        withUnsafeMutableBytes(of: &self) { copyInline(bytes, to: $0) }
    }

    /// The digest whose bytes are `bytes`, or nil unless there are exactly ``byteCount`` of them.
    ///
    /// Not generic, so that a decoder in another module pays no generic dispatch per share.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count == Self.byteCount else { return nil }
        head = 0
        tail = 0
        withUnsafeMutableBytes(of: &self) { $0.copyMemory(from: bytes) }
    }

    /// A digest computed into zero-initialised storage by `body`.
    init(computing body: (UnsafeMutableRawBufferPointer) -> Void) {
        head = 0
        tail = 0
        withUnsafeMutableBytes(of: &self, body)
    }

    /// The 16 bytes, in order.
    public var bytes: [UInt8] { Swift.withUnsafeBytes(of: self) { Array($0) } }

    /// Calls `body` with the 16 bytes, without copying them.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: self, body)
    }
}

extension ProtocolEncoding {
    /// The dealer's digest of one share (§4.11): H("veil/v1/share-digest", τ || u32(dealer) ||
    /// u32(holder) || u8(kind) || values, 16), kind 1 for a masking-key share and 2 for a self-mask
    /// share. The dealer sends it beside the sealed pair; the holder keeps a share only if it
    /// matches, and the server accepts a revealed share only if it matches, in O(1) per share.
    /// A share's 40 bytes carry at least 256 bits of entropy, so the digest reveals nothing.
    ///
    /// The hash input is assembled on the stack and zeroed before this returns, since it holds the
    /// share; this is the hot path (2k digests per device and t per secret the server rebuilds).
    public static func shareDigest(transcript: [UInt8], dealer: UInt32, holder: UInt32, kind: ShareKind, values: SecretBytes) -> ShareDigest {
        let prefix = shareDigestPrefix
        let count = prefix.count + transcript.count + 9 + values.count
        return withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { input in
            defer { SecureMemory.zero(input) }
            let base = input.baseAddress!
            var offset = 0
            func put(_ bytes: UnsafeRawBufferPointer) {
                (base + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                offset += bytes.count
            }
            prefix.withUnsafeBytes(put)
            transcript.withUnsafeBytes(put)
            Swift.withUnsafeBytes(of: dealer.bigEndian, put)
            Swift.withUnsafeBytes(of: holder.bigEndian, put)
            Swift.withUnsafeBytes(of: kind.rawValue, put)
            values.withUnsafeBytes(put)
            return ShareDigest { out in BLAKE2b.hash(encodedInput: UnsafeRawBufferPointer(input), into: out) }
        }
    }

    /// `len(label) || label` for the share-digest label, computed once.
    private static let shareDigestPrefix: [UInt8] = {
        let label = Array("veil/v1/share-digest".utf8)
        return [UInt8(label.count)] + label
    }()
}
