import Foundation
import VeilCrypto
import VeilProtocol

/// Helpers shared by the vector builders: fixed byte patterns, hex, big-endian integers and the
/// JSON form every file is written in.
enum VectorFile {
    /// Pretty-printed JSON with sorted keys and unescaped slashes, ending in a newline, so that
    /// regenerating an unchanged vector gives the same bytes.
    static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try! encoder.encode(value)
        data.append(0x0A)
        return data
    }
}

/// `count` bytes counting up from `start` (wrapping): the fixed, recognisable inputs of the vectors.
func pattern(_ count: Int, from start: UInt8) -> [UInt8] {
    (0..<count).map { start &+ UInt8(truncatingIfNeeded: $0) }
}

/// Lower-case hex of public or deliberately published bytes.
func hex(_ bytes: some Sequence<UInt8>) -> String { Hex.encode(bytes) }

/// Lower-case hex of secret bytes: vectors publish their secrets on purpose.
func hex(_ secret: SecretBytes) -> String { Hex.encode(secret.unprotectedCopy()) }

/// The four big-endian bytes of `value` (SPEC.md §1, `u32`).
func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

/// `rid || u32(a) || u32(b)` (SPEC.md §4).
func context(_ round: RoundID, _ a: UInt32, _ b: UInt32) -> [UInt8] { round.bytes + u32(a) + u32(b) }
