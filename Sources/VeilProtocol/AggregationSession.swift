public import VeilCrypto

/// The server side of one secure-aggregation round: a value-type state machine.
///
/// The driver feeds each device message to ``receive(_:from:)`` as it arrives and calls
/// ``closePhase(using:)`` when every expected device has answered (``isPhaseComplete``) or the
/// phase's deadline has passed; the session itself reads no clock. After a phase closes, the driver
/// sends ``outgoingMessage(for:)`` to every device in ``recipients``. Outgoing messages are built on
/// demand so that the server never holds n copies of broadcast data.
///
/// Masked inputs are added to one running sum as they arrive, so memory is O(m + n·k), not O(n·m).
/// Unmasking reconstructs secrets and expands masks on `workers` threads.
///
/// - warning: Not thread-safe: drive one instance from one task at a time.
public struct AggregationSession: Sendable {
    /// The round configuration sent to every device.
    public let configuration: RoundConfiguration
    /// The neighbour graph; with committed placement it is rebuilt when AdvertiseKeys closes.
    var graph: NeighbourGraph
    let identities: [UInt32: Ed25519.PublicKey]
    /// s, with committed placement (§5.1).
    let placementSecret: [UInt8]?
    /// The tree over the accepted contributions, once AdvertiseKeys closed (committed placement).
    var placementTree: Placement.Tree?
    let workers: Int
    /// τ, the configuration hash every signed statement binds (§4.10).
    let transcript: [UInt8]

    /// The phase whose messages are being collected; nil once the round finished or aborted.
    public internal(set) var phase: Phase?
    /// The outcome, once there is one.
    public internal(set) var outcome: AggregationOutcome?
    /// The devices that should receive ``outgoingMessage(for:)`` for the phase now open.
    public internal(set) var recipients: [UInt32] = []

    var records: [DeviceRecord]
    var expected: [Bool]
    var expectedRemaining: Int
    var advertisedKeys: Set<X25519.PublicKey> = []
    var accumulator: ModularVector
    /// U1 after closing AdvertiseKeys: advertised, and kept because enough neighbours did too.
    var inKeySet: [Bool]
    /// U2 after closing ShareKeys.
    var inShareSet: [Bool]
    /// Where each device's incoming shares are, while MaskedInputCollection is open.
    var incomingShares: IncomingShareIndex?
    /// U3 (ascending): devices whose masked input was added to the sum.
    var survivors: [UInt32] = []
    var inSurvivors: [Bool]
    /// U4: devices whose consistency signature verified (active threat model).
    var signers: [Bool]
    var misbehaving: [UInt32: ProtocolViolation.Kind] = [:]
    var droppedInPhase: [Phase: [UInt32]] = [:]
    /// Statistics of the unmasking computation, for reports and metrics.
    public internal(set) var statistics = UnmaskingStatistics()
    /// The fewest survivors (|U3|) the round unmasks; with fewer it aborts when
    /// MaskedInputCollection closes. Differential-privacy noise sized for n devices sets n
    /// (SPEC.md §12.4); 0 leaves only the threshold's limit.
    public var minimumSurvivors = 0

    /// Creates a session. In the active threat model `identities` must hold the enrolled identity
    /// key of every invited device. With committed placement (§5.1) `placementSecret` is the s
    /// whose commitment the configuration carries (draw it with ``Placement`` in mind: 32 fresh
    /// random bytes, never reused); `graph` is then replaced when AdvertiseKeys closes.
    public init(
        configuration: RoundConfiguration, graph: NeighbourGraph,
        identities: [UInt32: Ed25519.PublicKey] = [:], placementSecret: [UInt8]? = nil,
        workers: Int = AggregationSession.defaultWorkerCount
    ) throws(ConfigurationError) {
        guard graph.cohortSize == configuration.cohortSize, graph.degree == configuration.degree else {
            throw .invalid(field: "graph", reason: "graph was built for another configuration")
        }
        if let commitment = configuration.placementCommitment {
            guard let placementSecret, Placement.commitment(to: placementSecret) == commitment else {
                throw .invalid(field: "placementSecret", reason: "must be the secret the configuration's placement commitment commits to")
            }
        } else if placementSecret != nil {
            throw .invalid(field: "placementSecret", reason: "the configuration has no placement commitment")
        }
        self.placementSecret = placementSecret
        if configuration.threatModel == .active {
            let missing = (0..<UInt32(configuration.cohortSize)).first { identities[$0] == nil }
            if let missing { throw .invalid(field: "identities", reason: "no identity key for device \(missing)") }
        }
        let n = configuration.cohortSize
        self.configuration = configuration
        self.graph = graph
        self.identities = identities
        self.workers = max(1, workers)
        self.transcript = ProtocolEncoding.roundTranscript(configuration)
        records = Array(repeating: DeviceRecord(), count: n)
        expected = Array(repeating: true, count: n)
        expectedRemaining = n
        inKeySet = Array(repeating: false, count: n)
        inShareSet = Array(repeating: false, count: n)
        inSurvivors = Array(repeating: false, count: n)
        signers = Array(repeating: false, count: n)
        accumulator = ModularVector(zerosOfCount: configuration.dimension, bitWidth: configuration.bitWidth)
        phase = .advertiseKeys
        recipients = (0..<UInt32(n)).map { $0 }
    }

    /// U3, ascending: the devices whose masked input is in the sum, once MaskedInputCollection
    /// closed; empty before.
    public var survivorSet: [UInt32] { survivors }

    /// Whether every device expected in the current phase has answered or been removed.
    public var isPhaseComplete: Bool { expectedRemaining == 0 }

    /// The devices still expected to answer in the current phase.
    public var pendingDevices: [UInt32] {
        (0..<UInt32(configuration.cohortSize)).filter { expected[Int($0)] && !records[Int($0)].answered(phase) }
    }

    /// Records that `device` went away (disconnected, or was told the round moved on). It stops
    /// being expected; what it already contributed is kept, as the protocol requires.
    public mutating func deviceLeft(_ device: UInt32) {
        guard Int(device) < configuration.cohortSize, let phase else { return }
        if expected[Int(device)] && !records[Int(device)].answered(phase) {
            expected[Int(device)] = false
            expectedRemaining -= 1
        }
    }

    /// Removes a device that broke the protocol and returns the violation to report.
    mutating func reject(_ device: UInt32, _ kind: ProtocolViolation.Kind, in phase: Phase) -> ProtocolViolation {
        misbehaving[device] = kind
        deviceLeft(device)
        return ProtocolViolation(round: configuration.roundID, device: device, phase: phase, kind: kind)
    }

    /// The default worker count for unmasking: the number of online processors.
    public static var defaultWorkerCount: Int { ProcessorCount.online }
}

/// How a round ended.
public enum AggregationOutcome: Sendable, Equatable {
    /// The sum of the surviving devices' inputs.
    case finished(AggregationResult)
    /// The round was abandoned.
    case aborted(RoundAbortReason)
}

/// The output of a finished round.
public struct AggregationResult: Sendable, Equatable {
    /// The round.
    public let roundID: RoundID
    /// The sum modulo 2^b of the inputs of `survivors`.
    public let sum: ModularVector
    /// The devices whose inputs are in the sum (U3), ascending.
    public let survivors: [UInt32]
    /// Devices that stopped answering, by the phase whose message they did not send.
    public let droppedInPhase: [Phase: [UInt32]]
    /// Devices removed for breaking the protocol, with what they did.
    public let misbehaving: [UInt32: ProtocolViolation.Kind]

    /// Creates a result (the session makes them; stores read them back).
    public init(roundID: RoundID, sum: ModularVector, survivors: [UInt32], droppedInPhase: [Phase: [UInt32]], misbehaving: [UInt32: ProtocolViolation.Kind]) {
        self.roundID = roundID
        self.sum = sum
        self.survivors = survivors
        self.droppedInPhase = droppedInPhase
        self.misbehaving = misbehaving
    }
}

/// Counts of the work unmasking did.
public struct UnmaskingStatistics: Sendable, Equatable {
    /// Secrets reconstructed (self-mask seeds plus masking keys).
    public var reconstructions = 0
    /// Reconstructions that needed the robust (subset-searching) path.
    public var robustReconstructions = 0
    /// Masks expanded and removed (self masks plus pairwise masks).
    public var maskExpansions = 0

    /// No work yet.
    public init() {}
}

/// What the server stores about one device.
struct DeviceRecord: Sendable {
    var encryptionKey: X25519.PublicKey?
    var maskingKey: X25519.PublicKey?
    var signature: Ed25519.Signature?
    var placementContribution: [UInt8]?
    var maskingKeyCommitment: ShamirCommitment?
    var selfMaskCommitment: ShamirCommitment?
    /// The sealed shares it sent, ascending by recipient; released after delivery.
    var sealedShares: [SealedShares] = []
    /// The recipients of its shares, ascending, and its two 16-byte digests per recipient
    /// (masking key, then self mask), kept after delivery to check revealed shares (§7).
    var shareHolders: [UInt32] = []
    var shareDigests: [ShareDigest] = []
    var sharedKeys = false
    var maskedInput = false
    var consistencySignature: Ed25519.Signature?
    var selfMaskShares: [RevealedShare]?
    var maskingKeyShares: [RevealedShare]?

    func answered(_ phase: Phase?) -> Bool {
        switch phase {
        case .advertiseKeys: return maskingKey != nil
        case .shareKeys: return sharedKeys
        case .maskedInputCollection: return maskedInput
        case .consistencyCheck: return consistencySignature != nil
        case .unmasking: return selfMaskShares != nil
        case nil: return true
        }
    }
}
