public import VeilCrypto

/// The device side of one secure-aggregation round: a value-type state machine.
///
/// The driver (the network client, or the simulator) calls ``start(using:)`` once, then
/// ``handle(_:using:)`` with each message from the server, and sends back the message each call
/// returns. The session performs no I/O and reads no clock; randomness comes from the caller.
///
/// A message that breaks the protocol moves the session to a terminal aborted state and throws a
/// ``ProtocolViolation`` naming the round, this device and what was wrong. A device answers each
/// phase at most once, and never reveals both shares it holds for one neighbour.
///
/// - warning: Not thread-safe (it is a value; do not share one instance across tasks).
public struct DeviceSession: Sendable {
    /// The round configuration, as received from the server.
    public let configuration: RoundConfiguration
    /// This device's index in the cohort.
    public let device: UInt32
    /// What this device accepts; checked by ``start(using:)`` before anything is sent.
    public let policy: DevicePolicy
    /// τ, the hash of the configuration that every statement this device signs binds (§4.10).
    let transcript: [UInt8]
    /// The neighbour graph; with committed placement it is replaced by the revealed one in ShareKeys.
    var graph: NeighbourGraph
    let identity: Ed25519.PrivateKey?
    var state: State
    /// The public keys this device advertised (public; kept for the consistency statement).
    var advertisedKeys: (encryption: X25519.PublicKey, masking: X25519.PublicKey)?
    /// r_i, the placement contribution this device sent (committed placement only).
    var placementContribution: [UInt8]?
    /// Shares graphs between sessions that derive the same placement (simulations); nil on devices.
    let graphCache: NeighbourGraphCache?

    /// The round's secrets: two X25519 key pairs and the self-mask seed.
    struct RoundSecrets: Sendable {
        let encryption: X25519.PrivateKey
        let masking: X25519.PrivateKey
        let selfMaskSeed: SecretBytes
    }

    /// The two shares this device holds for one neighbour.
    struct HeldShares: Sendable {
        let maskingKey: SecretBytes
        let selfMask: SecretBytes
    }

    /// What a neighbour advertised, kept after round 0.
    struct NeighbourRecord: Sendable {
        let encryptionKey: X25519.PublicKey
        let maskingKey: X25519.PublicKey
        let identityKey: Ed25519.PublicKey?
        /// The key and nonce that open what this neighbour seals to us, derived in ShareKeys from
        /// the same X25519 secret we sealed with (so round 2 needs no second key agreement).
        var opening: (key: XChaCha20Poly1305.Key, nonce: XChaCha20Poly1305.Nonce)?
    }

    enum State: Sendable {
        case ready(input: PrivateInput)
        case advertised(input: PrivateInput, secrets: RoundSecrets)
        case sharedKeys(input: PrivateInput, secrets: RoundSecrets, neighbours: [UInt32: NeighbourRecord])
        case maskedInputSent(held: [UInt32: HeldShares], sharers: [UInt32], neighbours: [UInt32: NeighbourRecord])
        case consistencySigned(held: [UInt32: HeldShares], sharers: [UInt32], neighbours: [UInt32: NeighbourRecord], survivors: [UInt32])
        case finished
        case aborted(ProtocolViolation)
    }

    /// Creates a session for `device` with its private `input`.
    ///
    /// The session keeps its own copy of `input` and zeroes it once the masked vector is computed
    /// (or when the session is released); copies the caller keeps are the caller's to wipe.
    ///
    /// - Parameters:
    ///   - graph: the graph built from `configuration` (``NeighbourGraph/init(configuration:)``);
    ///     passed in so that simulations can share one instance among many devices.
    ///   - identity: the device's long-term signing key; required in the active threat model.
    ///   - policy: what the device accepts; ``start(using:)`` refuses a configuration that breaks it.
    ///   - graphCache: simulations pass one cache to every session of a round, so the revealed
    ///     placement's graph is built once; a device leaves it nil.
    public init(
        configuration: RoundConfiguration, graph: NeighbourGraph, device: UInt32,
        identity: Ed25519.PrivateKey?, input: ModularVector, policy: DevicePolicy, graphCache: NeighbourGraphCache? = nil
    ) throws(ConfigurationError) {
        guard Int(device) < configuration.cohortSize else {
            throw .invalid(field: "device", reason: "index \(device) is outside the cohort of \(configuration.cohortSize)")
        }
        guard graph.cohortSize == configuration.cohortSize, graph.degree == configuration.degree else {
            throw .invalid(field: "graph", reason: "graph was built for another configuration")
        }
        guard input.count == configuration.dimension, input.bitWidth == configuration.bitWidth else {
            throw .invalid(field: "input", reason: "input has \(input.count) elements of \(input.bitWidth) bits, the round needs \(configuration.dimension) of \(configuration.bitWidth)")
        }
        if configuration.threatModel == .active && identity == nil {
            throw .invalid(field: "identity", reason: "the active threat model needs the device's identity key")
        }
        self.configuration = configuration
        self.graph = graph
        self.device = device
        self.identity = identity
        self.policy = policy
        self.graphCache = graphCache
        self.transcript = ProtocolEncoding.roundTranscript(configuration)
        self.state = .ready(input: PrivateInput(copying: input))
    }

    /// The phase whose server message the session waits for next; nil once finished or aborted.
    public var awaiting: Phase? {
        switch state {
        case .ready: return .advertiseKeys
        case .advertised: return .shareKeys
        case .sharedKeys: return .maskedInputCollection
        case .maskedInputSent: return configuration.threatModel == .active ? .consistencyCheck : .unmasking
        case .consistencySigned: return .unmasking
        case .finished, .aborted: return nil
        }
    }

    /// The device's identity verification key (active threat model), as the server must enrol it.
    public var identityPublicKey: Ed25519.PublicKey? { identity?.publicKey }

    /// Whether the device has answered the unmasking request (its part of the round is done).
    public var isFinished: Bool { if case .finished = state { return true } else { return false } }

    /// Why the session aborted, if it did.
    public var abortReason: ProtocolViolation? { if case let .aborted(v) = state { return v } else { return nil } }

    /// Round 0: checks the configuration against the device's ``policy``, then generates the
    /// round's key pairs and self-mask seed and returns AdvertiseKeys.
    ///
    /// A configuration that breaks the policy aborts the session with
    /// ``ProtocolViolation/Kind/policy(_:)`` before any key is drawn: the device sends nothing
    /// but its refusal.
    public mutating func start(using random: inout some RandomSource) throws(ProtocolViolation) -> DeviceMessage {
        guard case let .ready(input) = state else { throw violation(.advertiseKeys, .unexpectedMessage(received: .advertiseKeys)) }
        do {
            try policy.check(configuration)
        } catch {
            let refusal = violation(.advertiseKeys, .policy(error))
            state = .aborted(refusal)
            throw refusal
        }
        let secrets = RoundSecrets(
            encryption: X25519.PrivateKey(using: &random),
            masking: X25519.PrivateKey(using: &random),
            selfMaskSeed: SecretBytes(randomCount: 32, using: &random))
        let contribution = configuration.usesCommittedPlacement ? random.bytes(count: Placement.byteCount) : nil
        let signature = identity.map {
            $0.signature(for: ProtocolEncoding.advertiseStatement(
                transcript: transcript, device: device,
                encryptionKey: secrets.encryption.publicKey, maskingKey: secrets.masking.publicKey,
                placementContribution: contribution))
        }
        state = .advertised(input: input, secrets: secrets)
        advertisedKeys = (secrets.encryption.publicKey, secrets.masking.publicKey)
        placementContribution = contribution
        return .advertiseKeys(
            encryptionKey: secrets.encryption.publicKey, maskingKey: secrets.masking.publicKey, signature: signature,
            placementContribution: contribution)
    }

    /// Handles one server message and returns this device's answer.
    public mutating func handle(_ message: ServerMessage, using random: inout some RandomSource) throws(ProtocolViolation) -> DeviceMessage {
        do throws(ProtocolViolation) {
            switch (state, message) {
            case let (.advertised(input, secrets), .neighbourKeys(entries, placement)):
                try adoptPlacement(placement)
                return try shareKeys(input: input, secrets: secrets, entries: entries, using: &random)
            case let (.sharedKeys(input, secrets, neighbours), .sealedShares(sealed)):
                return try maskInput(input: input, secrets: secrets, neighbours: neighbours, sealed: sealed)
            case let (.maskedInputSent(held, sharers, neighbours), .consistencyCheck(survivors))
                where configuration.threatModel == .active:
                return try signConsistency(held: held, sharers: sharers, neighbours: neighbours, survivors: survivors)
            case let (.maskedInputSent(held, sharers, _), .unmaskingRequest(surviving, dropped, _))
                where configuration.threatModel == .honestButCurious:
                return try unmask(held: held, sharers: sharers, surviving: surviving, dropped: dropped, check: nil)
            case let (.consistencySigned(held, sharers, neighbours, survivors), .unmaskingRequest(surviving, dropped, signatures)):
                return try unmask(
                    held: held, sharers: sharers, surviving: surviving, dropped: dropped,
                    check: (neighbours, survivors, signatures))
            default:
                throw violation(message.phase, .unexpectedMessage(received: message.phase))
            }
        } catch {
            // A finished or aborted session stays as it is; any other state aborts.
            switch state {
            case .finished, .aborted: break
            default: state = .aborted(error)
            }
            throw error
        }
    }

    func violation(_ phase: Phase, _ kind: ProtocolViolation.Kind) -> ProtocolViolation {
        ProtocolViolation(round: configuration.roundID, device: device, phase: phase, kind: kind)
    }
}
