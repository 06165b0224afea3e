import Foundation
import VeilProtocol

/// The bytes of each protobuf message of `Protocols/veil/v1/secagg.proto` one device sends and
/// receives, from the round's shape alone (no round is run): what `veil-sim plan` predicts and
/// `--verify` compares with the real wire encoding. gRPC and TLS framing are not counted, as the
/// simulator's byte counts do not count them.
struct WireSizeModel {
    /// n, m, b.
    let devices: Int
    let dimension: Int
    let bitWidth: Int
    let active: Bool
    /// Committed placement (the active model on a sparse graph, SPEC.md §5.1).
    let committedPlacement: Bool

    /// Bytes of a varint.
    static func varint(_ value: Int) -> Int {
        var v = UInt64(max(0, value)), bytes = 1
        while v >= 0x80 {
            v >>= 7
            bytes += 1
        }
        return bytes
    }

    /// A length-delimited field: tag, length, payload.
    static func field(_ payload: Int) -> Int { 1 + varint(payload) + payload }
    /// An unsigned field holding a typical device index.
    var index: Int { 1 + Self.varint(devices / 2) }
    /// The envelope of either direction: the 16-byte round id and the oneof's message.
    static func envelope(_ inner: Int) -> Int { field(16) + field(inner) }

    /// (up, down) bytes of one device in `phase`, given its neighbours listed to it in ShareKeys,
    /// its senders in MaskedInputCollection, and (active) those that signed the survivor set.
    func bytes(_ phase: Phase, listed: Double, senders: Double, signers: Double) -> (up: Double, down: Double) {
        let f = Self.field, e = Self.envelope
        switch phase {
        case .advertiseKeys:
            let inner = 2 * f(32) + (active ? f(64) : 0) + (committedPlacement ? f(32) : 0)
            return (Double(e(inner)), 0)
        case .shareKeys:
            let neighbour = f(index + 2 * f(32) + (active ? f(64) + f(32) : 0) + (committedPlacement ? f(32) : 0))
            let placement = committedPlacement ? 2 * f(32) + Int(Foundation.log2(Double(devices)).rounded(.up)) * f(32) : 0
            let down = Double(neighbour) * listed + Double(placement + Self.field(16) + 1 + 3)
            let sealed = f(index + f(96) + 2 * f(16))
            let up = Double(sealed) * listed + Double(2 * f(32) + Self.field(16) + 1 + 3)
            return (up, down)
        case .maskedInputCollection:
            let incoming = f(index + f(96) + 2 * f(16))
            let down = Double(incoming) * senders + Double(Self.field(16) + 1 + 3)
            let packed = dimension * ((bitWidth + 7) / 8)
            return (Double(e(f(packed))), down)
        case .consistencyCheck:
            return (Double(e(f(64))), Double(e(f((devices + 7) / 8))))
        case .unmasking:
            // Lists of surviving and dropped neighbours (packed indices), signatures in the active
            // model; one revealed 40-byte share per sender.
            let lists = Double(2 * 2) + senders * Double(index - 1)
            let signatures = active ? signers * Double(f(index + f(64))) : 0
            let up = senders * Double(f(index + f(40))) + Double(Self.field(16) + 1 + 3 + 2)
            return (up, lists + signatures + Double(Self.field(16) + 1 + 3))
        }
    }
}
