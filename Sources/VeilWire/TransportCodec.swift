import Foundation
import SwiftProtobuf
public import VeilCrypto
public import VeilProtocol

/// A device's answer to the check-in challenge, decoded and length-checked (signature not yet
/// verified: that needs the challenge nonce, which the receiver holds).
public struct CheckInFrame: Sendable, Equatable {
    /// The identity the device claims.
    public let identityKey: Ed25519.PublicKey
    /// Its signature over the check-in statement.
    public let signature: Ed25519.Signature
    /// The window starts it offers (feature rounds), strictly increasing; empty when it leaves
    /// the choice to the server.
    public let offeredWindows: [Int]
}

/// What a device receives on its round stream, decoded and validated.
public enum ServerFrameContent: Sendable, Equatable {
    /// The server's opening challenge.
    case challenge(nonce: [UInt8])
    /// Admission to a round.
    case assignment(RoundAssignmentContent)
    /// A serialized `veil.v1.ServerToDevice`, decoded by ``WireCodec/decodeServerMessage(_:for:configuration:)``.
    case protocolMessage([UInt8])
    /// The stream's last frame.
    case ended(RoundEndedContent)
}

/// What a device may send after check-in, decoded and validated.
public enum DeviceFrameContent: Sendable, Equatable {
    /// A serialized `veil.v1.DeviceToServer`, decoded by ``WireCodec/decodeDeviceMessage(_:from:configuration:)``.
    case protocolMessage([UInt8])
    /// The device will not go on with its round (`Refusal`, SPEC.md §11.3).
    case refusal(RefusalContent)
}

/// A decoded, validated `Refusal`: why a device will not go on with its round.
public struct RefusalContent: Sendable, Equatable, CustomStringConvertible {
    /// The reason, one of the values `service.proto` defines (never unspecified).
    public let reason: Veil_V1_Refusal.Reason
    /// The device's explanation, at most ``TransportCodec/maximumTextByteCount`` bytes.
    public let detail: String

    /// Creates a refusal.
    public init(reason: Veil_V1_Refusal.Reason, detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// The reason's short name, for metrics labels and logs.
    public var reasonName: String {
        switch reason {
        case .policy: return "policy"
        case .roundReused: return "round-reused"
        case .aggregatorViolation: return "aggregator-violation"
        case .peerFault: return "peer-fault"
        default: return "unspecified"
        }
    }

    public var description: String { "\(reasonName): \(detail)" }
}

/// A decoded, validated `RoundAssignment`.
public struct RoundAssignmentContent: Sendable, Equatable {
    /// The round's configuration, validated as ``RoundConfiguration`` validates it.
    public let configuration: RoundConfiguration
    /// The device's index in the round.
    public let deviceIndex: UInt32
    /// What the round aggregates.
    public let task: String
    /// How long the server waits for each phase.
    public let phaseTimeoutMilliseconds: UInt32

    /// Creates an assignment (decoders build them from frames; tests and simulators directly).
    public init(configuration: RoundConfiguration, deviceIndex: UInt32, task: String, phaseTimeoutMilliseconds: UInt32) {
        self.configuration = configuration
        self.deviceIndex = deviceIndex
        self.task = task
        self.phaseTimeoutMilliseconds = phaseTimeoutMilliseconds
    }
}

/// How a stream ended, as the server reported it.
public struct RoundEndedContent: Sendable, Equatable {
    /// The outcome for this device.
    public let outcome: Veil_V1_RoundEnded.Outcome
    /// The server's explanation.
    public let reason: String
    /// |U3| when the round finished.
    public let survivors: UInt32
    /// When to check in again after `noRound`, in milliseconds.
    public let retryAfterMilliseconds: UInt32
    /// With `alreadyCounted`: the feature window (a round task) the device was already counted in.
    public let task: String
    /// With `alreadyCounted`: the round that counted the device, in hex.
    public let countedRoundID: String
}

/// Encodes and strictly decodes the frames of the `Participate` stream and the round
/// configuration (`Protocols/veil/v1/service.proto`). Like ``WireCodec``, decoding refuses unknown
/// fields, wrong lengths and impossible values with a ``WireError`` naming the field.
public enum TransportCodec {
    /// The largest frame a device may send before it is assigned to a round: a check-in with
    /// the most windows it may offer (each at most 11 bytes encoded).
    public static let maximumCheckInFrameByteCount = 1024
    /// The most windows one check-in may offer (SPEC.md §12.1).
    public static let maximumOfferedWindows = 64
    /// The longest task name or reason string accepted.
    public static let maximumTextByteCount = 1024

    // MARK: Round configuration

    /// The protobuf form of `configuration`.
    public static func wire(_ configuration: RoundConfiguration) -> Veil_V1_RoundConfiguration {
        var w = Veil_V1_RoundConfiguration()
        w.roundID = Data(configuration.roundID.bytes)
        w.roundSeed = Data(configuration.roundSeed)
        w.cohortSize = UInt32(configuration.cohortSize)
        w.dimension = UInt32(configuration.dimension)
        w.bitWidth = UInt32(configuration.bitWidth)
        w.prg = configuration.prg == .aes128CTR ? .aes128Ctr : .chacha20
        if case let .harary(k) = configuration.graph { w.hararyDegree = UInt32(k) }
        w.threshold = UInt32(configuration.threshold)
        w.threatModel = configuration.threatModel == .active ? .active : .honestButCurious
        w.placementCommitment = Data(configuration.placementCommitment ?? [])
        return w
    }

    /// Validates a received configuration.
    public static func configuration(from w: Veil_V1_RoundConfiguration) throws(WireError) -> RoundConfiguration {
        try WireCodec.refuseUnknownFields(w, name: "configuration")
        let prg: PRGAlgorithm
        switch w.prg {
        case .aes128Ctr: prg = .aes128CTR
        case .chacha20: prg = .chacha20
        default: throw .invalidField(field: "configuration.prg", reason: "unknown PRG algorithm \(w.prg.rawValue)")
        }
        let threat: ThreatModel
        switch w.threatModel {
        case .honestButCurious: threat = .honestButCurious
        case .active: threat = .active
        default: throw .invalidField(field: "configuration.threat_model", reason: "unknown threat model \(w.threatModel.rawValue)")
        }
        let round = try WireCodec.field("configuration.round_id") { try RoundID(bytes: Array(w.roundID)) }
        // Bound the sizes a device will allocate for before RoundConfiguration checks the rest.
        guard w.dimension <= 1 << 26 else { throw .invalidField(field: "configuration.dimension", reason: "\(w.dimension) exceeds 2^26 elements") }
        guard w.cohortSize <= 1 << 24 else { throw .invalidField(field: "configuration.cohort_size", reason: "\(w.cohortSize) exceeds 2^24 devices") }
        do {
            return try RoundConfiguration(
                roundID: round, roundSeed: Array(w.roundSeed), cohortSize: Int(w.cohortSize),
                dimension: Int(w.dimension), bitWidth: Int(w.bitWidth), prg: prg,
                graph: w.hararyDegree == 0 ? .complete : .harary(degree: Int(w.hararyDegree)),
                threshold: Int(w.threshold), threatModel: threat,
                placementCommitment: w.placementCommitment.isEmpty ? nil : Array(w.placementCommitment))
        } catch {
            throw .invalidField(field: "configuration", reason: error.description)
        }
    }

    // MARK: Device frames

    /// A check-in frame offering `offeredWindows` (window starts, strictly increasing).
    public static func checkInFrame(identityKey: Ed25519.PublicKey, signature: Ed25519.Signature, offeredWindows: [Int] = []) -> Veil_V1_DeviceFrame {
        var frame = Veil_V1_DeviceFrame()
        frame.checkIn = .with {
            $0.identityKey = Data(identityKey.rawRepresentation)
            $0.signature = Data(signature.rawRepresentation)
            $0.offeredWindows = offeredWindows.map(Int64.init)
        }
        return frame
    }

    /// A serialized check-in frame.
    public static func checkIn(identityKey: Ed25519.PublicKey, signature: Ed25519.Signature, offeredWindows: [Int] = []) -> [UInt8] {
        WireCodec.serialize(checkInFrame(identityKey: identityKey, signature: signature, offeredWindows: offeredWindows))
    }

    /// Validates a device's first frame: it must be a check-in with a 32-byte key, a 64-byte
    /// signature and at most ``maximumOfferedWindows`` strictly increasing, non-negative window
    /// starts, within ``maximumCheckInFrameByteCount`` bytes, and nothing else.
    public static func checkIn(from frame: Veil_V1_DeviceFrame) throws(WireError) -> CheckInFrame {
        try WireCodec.refuseUnknownFields(frame, name: "device_frame")
        guard case let .checkIn(c)? = frame.frame else {
            throw frame.frame == nil ? .missingMessage : .invalidField(field: "device_frame", reason: "the first frame must be check_in")
        }
        try WireCodec.refuseUnknownFields(c, name: "check_in")
        let size = (try? frame.serializedBytes() as [UInt8])?.count ?? Int.max
        guard size <= maximumCheckInFrameByteCount else {
            throw .tooLarge(bytes: size, limit: maximumCheckInFrameByteCount)
        }
        guard c.offeredWindows.count <= maximumOfferedWindows else {
            throw .invalidField(field: "check_in.offered_windows", reason: "more than \(maximumOfferedWindows) windows")
        }
        guard c.offeredWindows.allSatisfy({ $0 >= 0 }), zip(c.offeredWindows, c.offeredWindows.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw .invalidField(field: "check_in.offered_windows", reason: "window starts must be non-negative and strictly increasing")
        }
        return CheckInFrame(
            identityKey: try WireCodec.field("check_in.identity_key") { try Ed25519.PublicKey(rawRepresentation: Array(c.identityKey)) },
            signature: try WireCodec.field("check_in.signature") { try Ed25519.Signature(rawRepresentation: Array(c.signature)) },
            offeredWindows: c.offeredWindows.map { Int($0) })
    }

    /// What a frame after check-in carries: a protocol message, size-checked against `limit`, or
    /// a refusal with a known reason and a detail of at most ``maximumTextByteCount`` bytes.
    public static func afterCheckIn(from frame: Veil_V1_DeviceFrame, limit: Int) throws(WireError) -> DeviceFrameContent {
        try WireCodec.refuseUnknownFields(frame, name: "device_frame")
        switch frame.frame {
        case let .protocolMessage(bytes)?:
            guard bytes.count <= limit else { throw .tooLarge(bytes: bytes.count, limit: limit) }
            return .protocolMessage(Array(bytes))
        case let .refusal(r)?:
            try WireCodec.refuseUnknownFields(r, name: "refusal")
            switch r.reason {
            case .policy, .roundReused, .aggregatorViolation, .peerFault: break
            default: throw .invalidField(field: "refusal.reason", reason: "unknown reason \(r.reason.rawValue)")
            }
            guard r.detail.utf8.count <= maximumTextByteCount else {
                throw .invalidField(field: "refusal.detail", reason: "longer than \(maximumTextByteCount) bytes")
            }
            return .refusal(RefusalContent(reason: r.reason, detail: r.detail))
        case .checkIn?:
            throw .invalidField(field: "device_frame", reason: "check_in is accepted only as the first frame")
        case nil:
            throw .missingMessage
        }
    }

    /// The protocol message carried by a frame after check-in, size-checked against `limit`; a
    /// refusal or any other frame is refused.
    public static func protocolMessage(from frame: Veil_V1_DeviceFrame, limit: Int) throws(WireError) -> [UInt8] {
        guard case let .protocolMessage(bytes) = try afterCheckIn(from: frame, limit: limit) else {
            throw .invalidField(field: "device_frame", reason: "expected protocol_message")
        }
        return bytes
    }

    /// A refusal frame; `detail` is cut to ``maximumTextByteCount`` bytes.
    public static func refusalFrame(_ refusal: RefusalContent) -> Veil_V1_DeviceFrame {
        var frame = Veil_V1_DeviceFrame()
        frame.refusal = .with {
            $0.reason = refusal.reason
            $0.detail = String(refusal.detail.utf8.prefix(maximumTextByteCount)) ?? ""
        }
        return frame
    }

    /// Decodes a serialized device frame (for callers that receive raw bytes, and the fuzzer).
    public static func deviceFrame(_ bytes: [UInt8], limit: Int) throws(WireError) -> Veil_V1_DeviceFrame {
        guard bytes.count <= limit else { throw .tooLarge(bytes: bytes.count, limit: limit) }
        return try WireCodec.parse(bytes)
    }

    // MARK: Server frames

    /// Validates a frame the server sent.
    public static func content(of frame: Veil_V1_ServerFrame) throws(WireError) -> ServerFrameContent {
        try WireCodec.refuseUnknownFields(frame, name: "server_frame")
        switch frame.frame {
        case nil:
            throw .missingMessage
        case let .challenge(c)?:
            try WireCodec.refuseUnknownFields(c, name: "challenge")
            try WireCodec.exactLength(c.nonce, 32, "challenge.nonce")
            return .challenge(nonce: Array(c.nonce))
        case let .assignment(a)?:
            try WireCodec.refuseUnknownFields(a, name: "assignment")
            guard a.hasConfiguration else { throw .invalidField(field: "assignment.configuration", reason: "missing") }
            let configuration = try configuration(from: a.configuration)
            guard Int(a.deviceIndex) < configuration.cohortSize else {
                throw .invalidField(field: "assignment.device_index", reason: "\(a.deviceIndex) is outside the cohort of \(configuration.cohortSize)")
            }
            guard a.task.utf8.count <= maximumTextByteCount else { throw .invalidField(field: "assignment.task", reason: "longer than \(maximumTextByteCount) bytes") }
            return .assignment(RoundAssignmentContent(
                configuration: configuration, deviceIndex: a.deviceIndex, task: a.task, phaseTimeoutMilliseconds: a.phaseTimeoutMs))
        case let .protocolMessage(bytes)?:
            return .protocolMessage(Array(bytes))
        case let .ended(e)?:
            try WireCodec.refuseUnknownFields(e, name: "ended")
            switch e.outcome {
            case .counted, .notCounted, .aborted, .noRound, .alreadyCounted: break
            default: throw .invalidField(field: "ended.outcome", reason: "unknown outcome \(e.outcome.rawValue)")
            }
            guard e.reason.utf8.count <= maximumTextByteCount else { throw .invalidField(field: "ended.reason", reason: "longer than \(maximumTextByteCount) bytes") }
            guard e.task.utf8.count <= maximumTextByteCount else { throw .invalidField(field: "ended.task", reason: "longer than \(maximumTextByteCount) bytes") }
            if e.outcome == .alreadyCounted {
                guard !e.task.isEmpty else { throw .invalidField(field: "ended.task", reason: "ALREADY_COUNTED must name the window") }
                guard RoundID(hex: e.countedRoundID) != nil else {
                    throw .invalidField(field: "ended.counted_round_id", reason: "must be \(2 * RoundID.byteCount) hex digits")
                }
            } else {
                guard e.task.isEmpty, e.countedRoundID.isEmpty else {
                    throw .invalidField(field: "ended.task", reason: "only ALREADY_COUNTED names a window")
                }
            }
            return .ended(RoundEndedContent(outcome: e.outcome, reason: e.reason, survivors: e.survivors, retryAfterMilliseconds: e.retryAfterMs,
                                            task: e.task, countedRoundID: e.countedRoundID))
        }
    }

    /// A challenge frame.
    public static func challengeFrame(nonce: [UInt8]) -> Veil_V1_ServerFrame {
        var frame = Veil_V1_ServerFrame()
        frame.challenge = .with { $0.nonce = Data(nonce) }
        return frame
    }

    /// An assignment frame.
    public static func assignmentFrame(configuration: RoundConfiguration, deviceIndex: UInt32, task: String, phaseTimeoutMilliseconds: UInt32) -> Veil_V1_ServerFrame {
        var frame = Veil_V1_ServerFrame()
        frame.assignment = .with {
            $0.configuration = wire(configuration)
            $0.deviceIndex = deviceIndex
            $0.task = task
            $0.phaseTimeoutMs = phaseTimeoutMilliseconds
        }
        return frame
    }

    /// A frame carrying a serialized `ServerToDevice`.
    public static func protocolFrame(_ bytes: [UInt8]) -> Veil_V1_ServerFrame {
        var frame = Veil_V1_ServerFrame()
        frame.protocolMessage = Data(bytes)
        return frame
    }

    /// A frame carrying a serialized `DeviceToServer`.
    public static func protocolFrame(_ bytes: [UInt8]) -> Veil_V1_DeviceFrame {
        var frame = Veil_V1_DeviceFrame()
        frame.protocolMessage = Data(bytes)
        return frame
    }

    /// The last frame of a stream.
    public static func endedFrame(_ outcome: Veil_V1_RoundEnded.Outcome, reason: String, survivors: Int = 0, retryAfterMilliseconds: UInt32 = 0) -> Veil_V1_ServerFrame {
        var frame = Veil_V1_ServerFrame()
        frame.ended = .with {
            $0.outcome = outcome
            $0.reason = String(reason.utf8.prefix(maximumTextByteCount)) ?? ""
            $0.survivors = UInt32(survivors)
            $0.retryAfterMs = retryAfterMilliseconds
        }
        return frame
    }

    /// The frame ending the stream of a device already counted in feature window `task` by round
    /// `countedRoundID` (hex), sent instead of an assignment (SPEC.md §12.1).
    public static func alreadyCountedFrame(task: String, countedRoundID: String) -> Veil_V1_ServerFrame {
        var frame = endedFrame(.alreadyCounted, reason: "this device is already counted in \(task)")
        frame.ended.task = task
        frame.ended.countedRoundID = countedRoundID
        return frame
    }
}
