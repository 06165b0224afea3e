/// A message that breaks the protocol, attributed to the party that sent it.
///
/// On the device side the culprit is the server (or, through it, a neighbour); on the server side
/// it is the device that sent the message. Our own bugs are never reported this way: they are
/// preconditions.
public struct ProtocolViolation: Error, Hashable, Sendable, CustomStringConvertible {
    /// The round.
    public let round: RoundID
    /// The device concerned: on a device, the device itself; on the server, the sender.
    public let device: UInt32
    /// The phase in which it happened.
    public let phase: Phase
    /// What was wrong.
    public let kind: Kind

    /// Creates a violation record.
    public init(round: RoundID, device: UInt32, phase: Phase, kind: Kind) {
        self.round = round
        self.device = device
        self.phase = phase
        self.kind = kind
    }

    /// What was wrong with the message.
    public enum Kind: Hashable, Sendable {
        /// The message belongs to another phase than the current one (out of order or late).
        case unexpectedMessage(received: Phase)
        /// A second message of a phase that accepts one.
        case duplicateMessage
        /// The sender is not part of the round at this point (never invited, or dropped).
        case notAParticipant
        /// A structural problem: wrong sizes, unsorted or repeated lists, out-of-range indices.
        case malformed(String)
        /// A device index that is not a neighbour of the device concerned.
        case notANeighbour(UInt32)
        /// Fewer live neighbours than the threshold: the round cannot finish safely.
        case tooFewNeighbours(have: Int, need: Int)
        /// A signature did not verify; names the signer.
        case invalidSignature(signer: UInt32)
        /// A public key was reused across devices or roles; names the device that reused it.
        case reusedKey(device: UInt32)
        /// An unmasking request asked for both shares of one neighbour.
        case requestedBothShares(neighbour: UInt32)
        /// The survivor set is inconsistent with what the device saw earlier.
        case inconsistentSurvivorSet(String)
        /// A masked input of the wrong length or bit width.
        case wrongVectorShape(expectedCount: Int, count: Int, expectedBitWidth: Int, bitWidth: Int)
        /// The shares in the message do not match what was asked.
        case wrongShareSet(String)
        /// A public key of small order (the all-zero key included): key agreement with it gives a
        /// predictable secret. Names the device that advertised it.
        case unusableKey(device: UInt32)
        /// The server's placement reveal (§5.1) is missing, does not match its commitment, or
        /// leaves out this device's contribution.
        case placementRefused(String)
        /// The round's parameters break the device's ``DevicePolicy``, or its id was already used
        /// in a round the device signed in. Raised before AdvertiseKeys; nothing was sent.
        case policy(PolicyViolation)
    }

    /// On a device: whether another device, not the aggregator, is the likely cause (a neighbour's
    /// unusable or repeated key). The device then leaves this round and tries again in a later
    /// one; every other violation is the aggregator's, and the device stops and reports it.
    ///
    /// A key comes from the neighbour that advertised it (signed by it, in the active model); an
    /// aggregator should have removed the neighbour (Veil's does), but the device cannot tell a
    /// careless aggregator from a bad peer, and stopping for good would let one enrolled device
    /// stop every agent in its cohort.
    public var isCausedByPeer: Bool {
        switch kind {
        case .unusableKey, .reusedKey: return true
        default: return false
        }
    }

    public var description: String {
        "round \(round) device \(device) phase \(phase.rawValue): \(kind)"
    }
}

extension ProtocolViolation.Kind: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .unexpectedMessage(p): return "unexpected \(p.rawValue) message"
        case .duplicateMessage: return "duplicate message"
        case .notAParticipant: return "sender is not a participant at this point"
        case let .malformed(why): return "malformed message: \(why)"
        case let .notANeighbour(d): return "device \(d) is not a neighbour"
        case let .tooFewNeighbours(have, need): return "\(have) live neighbours, threshold needs \(need)"
        case let .invalidSignature(signer): return "signature of device \(signer) does not verify"
        case let .reusedKey(d): return "device \(d) reused a public key"
        case let .requestedBothShares(n): return "request asks for both shares of neighbour \(n)"
        case let .inconsistentSurvivorSet(why): return "inconsistent survivor set: \(why)"
        case let .wrongVectorShape(ec, c, eb, b): return "vector has \(c) elements of \(b) bits, expected \(ec) of \(eb)"
        case let .wrongShareSet(why): return "wrong share set: \(why)"
        case let .unusableKey(d): return "device \(d) advertised a key of small order"
        case let .placementRefused(why): return "placement refused: \(why)"
        case let .policy(v): return "refused by the device's policy: \(v)"
        }
    }
}

/// Why the server gave up on a round. Names the devices concerned where there are any.
public enum RoundAbortReason: Error, Hashable, Sendable, CustomStringConvertible {
    /// Too few devices remained after a phase.
    case tooFewDevices(phase: Phase, remaining: Int, needed: Int)
    /// A device whose mask must be removed has fewer answering neighbours than the threshold.
    case notEnoughShares(device: UInt32, have: Int, need: Int)
    /// No subset of the revealed shares reconstructs a secret matching its commitment or key;
    /// `suspects` is the dealer itself when every share matched its digest (§7).
    case reconstructionFailed(device: UInt32, suspects: [UInt32])
    /// The operator or the service shut the round down.
    case cancelled(String)

    public var description: String {
        switch self {
        case let .tooFewDevices(phase, remaining, needed):
            return "only \(remaining) devices remained after \(phase.rawValue), \(needed) needed"
        case let .notEnoughShares(d, have, need):
            return "device \(d) needs \(need) answering neighbours to be unmasked, has \(have)"
        case let .reconstructionFailed(d, suspects):
            return "could not reconstruct a verified secret for device \(d); suspects: \(suspects)"
        case let .cancelled(why):
            return "cancelled: \(why)"
        }
    }
}
