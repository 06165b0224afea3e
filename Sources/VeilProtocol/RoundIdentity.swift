public import VeilCrypto

/// A round's 16-byte identifier, chosen by the aggregator at random. It is bound into every key
/// derivation, associated-data string, PRG label and signature of the round.
public struct RoundID: Sendable, Hashable, CustomStringConvertible {
    /// The 16 identifier bytes.
    public let bytes: [UInt8]

    /// The length of an identifier in bytes.
    public static let byteCount = 16

    /// Wraps 16 bytes received from the aggregator.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 16 else { throw .invalidLength(what: "round id", expected: 16, actual: bytes.count) }
        self.bytes = bytes
    }

    /// Draws a fresh identifier.
    public init(using random: inout some RandomSource) {
        bytes = random.bytes(count: 16)
    }

    /// Parses the hex form (``description``); nil unless it is 32 hex digits.
    public init?(hex: String) {
        guard hex.utf8.count == 2 * Self.byteCount, let bytes = Hex.decode(hex), bytes.count == Self.byteCount else { return nil }
        self.bytes = bytes
    }

    /// Lower-case hex, for logs.
    public var description: String { Hex.encode(bytes) }
}

/// The attack the round is built to withstand.
public enum ThreatModel: String, Sendable, Hashable, Codable, CaseIterable {
    /// The server follows the protocol but tries to learn individual inputs from what it sees.
    case honestButCurious = "honest-but-curious"
    /// The server may deviate (lie about dropouts, replay, drop messages); devices sign their
    /// keys and the survivor set with long-term Ed25519 identities, and run a consistency check.
    case active

    /// The phases a round of this threat model runs, in protocol order: the consistency check
    /// only in the active model.
    public var phases: [Phase] { Phase.allCases.filter { self == .active || $0 != .consistencyCheck } }
}

/// A protocol phase, named by the message the server collects in it.
public enum Phase: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// Devices send their two public keys.
    case advertiseKeys = "advertise-keys"
    /// Devices send Shamir shares of their secrets, sealed to each neighbour.
    case shareKeys = "share-keys"
    /// Devices send their masked input vectors.
    case maskedInputCollection = "masked-input-collection"
    /// Devices sign the survivor set (active threat model only).
    case consistencyCheck = "consistency-check"
    /// Devices reveal the shares the server needs to remove the masks.
    case unmasking

    /// Protocol order.
    public static func < (lhs: Phase, rhs: Phase) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
