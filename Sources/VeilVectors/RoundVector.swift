import VeilCrypto
import VeilProtocol

/// round.json: one complete round of six devices, every message in both directions.
///
/// Complete graph, n = 6, m = 8, b = 32, t = 3, honest-but-curious, AES-128-CTR. Device 4 sends
/// ShareKeys and then goes silent. Each device and the server draw from a `SeededRandomSource`
/// whose 32-byte key the file lists, so the whole round is a function of the file's inputs.
enum RoundVector {
    struct File: Encodable {
        let description: String
        let configuration: Configuration
        let devices: [Device]
        let serverRandomKey: String
        let silentFrom: [Silence]
        let messages: [MessageRecord]
        let phases: [PhaseRecord]
        let result: Result
    }

    struct Configuration: Encodable {
        let roundID, roundSeed: String
        let cohortSize, dimension, bitWidth, degree, threshold: Int
        let prg, graph, threatModel: String
    }

    struct Device: Encodable {
        let device: UInt32
        let randomKey: String
        let input: [UInt64]
        /// The first three 32-byte draws of the device's random source (SPEC.md §6.1).
        let encryptionPrivateKey, maskingPrivateKey, selfMaskSeed: String
    }

    struct Silence: Encodable { let device: UInt32; let phase: String }

    struct PhaseRecord: Encodable { let phase: String; let recipients: [UInt32] }

    struct Result: Encodable {
        let survivors: [UInt32]
        let sum: [UInt64]
        let droppedInPhase: [String: [UInt32]]
        let misbehaving: [UInt32]
    }

    static let cohortSize = 6
    static let dropped: UInt32 = 4
    static let droppedFrom = Phase.maskedInputCollection

    static func round() -> File {
        let configuration = try! RoundConfiguration(
            roundID: RoundID(bytes: pattern(16, from: 0x01)), roundSeed: pattern(32, from: 0x44), cohortSize: cohortSize,
            dimension: 8, bitWidth: 32, prg: .aes128CTR, graph: .complete, threshold: 3, threatModel: .honestButCurious)
        let graph = NeighbourGraph(configuration: configuration)
        let n = UInt32(cohortSize)
        // Inputs with a top element near 2^32, so the sum wraps modulo 2^b.
        let inputs: [[UInt64]] = (0..<UInt64(n)).map { d in
            (0..<UInt64(7)).map { 1_000 * (d + 1) + $0 } + [0xFFFF_FF00 + d]
        }
        let keys = (0..<Int(n)).map { pattern(32, from: UInt8(0x11 * ($0 + 1))) }
        let serverKey = pattern(32, from: 0xE0)

        var randoms = keys.map { try! SeededRandomSource(seed: SecretBytes(copying: $0)) }
        var serverRandom = try! SeededRandomSource(seed: SecretBytes(copying: serverKey))
        let devices = (0..<n).map { d -> Device in
            var replay = randoms[Int(d)]
            return Device(
                device: d, randomKey: hex(keys[Int(d)]), input: inputs[Int(d)],
                encryptionPrivateKey: hex(replay.bytes(count: 32)), maskingPrivateKey: hex(replay.bytes(count: 32)),
                selfMaskSeed: hex(replay.bytes(count: 32)))
        }
        var sessions = (0..<n).map { d in
            try! DeviceSession(
                configuration: configuration, graph: graph, device: d, identity: nil,
                input: ModularVector(values: inputs[Int(d)], bitWidth: configuration.bitWidth),
                policy: DevicePolicy(requiredThreatModel: .honestButCurious, minimumCohort: 3, assumedDropout: 0))
        }
        var server = try! AggregationSession(configuration: configuration, graph: graph, workers: 1)
        var messages = [MessageRecord]()
        var phases = [PhaseRecord]()

        func deliver(_ message: DeviceMessage, from d: UInt32) {
            messages.append(MessageRecord(message, from: d))
            try! server.receive(message, from: d)
        }
        for d in 0..<n { deliver(try! sessions[Int(d)].start(using: &randoms[Int(d)]), from: d) }
        while server.closePhase(using: &serverRandom) == nil {
            let phase = server.phase!
            phases.append(PhaseRecord(phase: phase.rawValue, recipients: server.recipients))
            for d in server.recipients {
                let message = server.outgoingMessage(for: d)!
                messages.append(MessageRecord(message, to: d))
                if d == dropped && phase >= droppedFrom {
                    server.deviceLeft(d)
                    continue
                }
                deliver(try! sessions[Int(d)].handle(message, using: &randoms[Int(d)]), from: d)
            }
        }
        guard case let .finished(result) = server.outcome! else { preconditionFailure("the vector round must finish") }
        return File(
            description: "One honest-but-curious round (SPEC.md §6, §7): each device draws from the SPEC.md Appendix A source keyed with its randomKey, in this order: encryptionPrivateKey, maskingPrivateKey and selfMaskSeed (one 32-byte draw each, at AdvertiseKeys), then at ShareKeys the Shamir coefficients of the split of its masking private key and then of its self-mask seed (each split drawn as in shamir.json), and nothing else; the server draws from the source keyed with serverRandomKey only once, 32 bytes when the unmasking phase closes, seeding the robust reconstruction path of §7, which this round does not take, so no recorded byte depends on it; device \(dropped) sends ShareKeys and is silent from \(droppedFrom.rawValue) on; messages are in the order the driver produced them; phases lists each phase the server opened with its recipients",
            configuration: Configuration(
                roundID: hex(configuration.roundID.bytes), roundSeed: hex(configuration.roundSeed), cohortSize: cohortSize,
                dimension: configuration.dimension, bitWidth: configuration.bitWidth, degree: configuration.degree,
                threshold: configuration.threshold, prg: configuration.prg.rawValue, graph: "complete",
                threatModel: configuration.threatModel.rawValue),
            devices: devices, serverRandomKey: hex(serverKey),
            silentFrom: [Silence(device: dropped, phase: droppedFrom.rawValue)],
            messages: messages, phases: phases,
            result: Result(
                survivors: result.survivors, sum: result.sum.elements,
                droppedInPhase: Dictionary(uniqueKeysWithValues: result.droppedInPhase.filter { !$0.value.isEmpty }.map { ($0.key.rawValue, $0.value) }),
                misbehaving: result.misbehaving.keys.sorted()))
    }
}

/// One protocol message in either direction, with its fields in hex (SPEC.md §6). Fields that do
/// not belong to the message's `type` are absent.
struct MessageRecord: Encodable {
    /// "device" (device to server) or "server" (server to device).
    let from: String
    /// The sender (from device) or the recipient (from server).
    let device: UInt32
    /// The phase the message belongs to (`Phase` raw value).
    let phase: String
    let type: String
    var encryptionKey, maskingKey, signature: String?
    var maskingKeyCommitment, selfMaskCommitment: String?
    var shares: [Sealed]?
    var elements: [UInt64]?
    var packed: String?
    var selfMaskShares, maskingKeyShares: [Revealed]?
    var neighbours: [Keys]?
    var survivors, survivingNeighbours, droppedNeighbours: [UInt32]?
    var signatures: [NeighbourSignature]?

    struct Sealed: Encodable { let sender, recipient: UInt32; let ciphertext, maskingKeyShareDigest, selfMaskShareDigest: String }
    struct Revealed: Encodable { let owner: UInt32; let values: String }
    struct Keys: Encodable {
        let device: UInt32
        let encryptionKey, maskingKey: String
        let signature, identityKey: String?
    }
    struct NeighbourSignature: Encodable { let device: UInt32; let signature: String }

    init(from: String, device: UInt32, phase: Phase, type: String) {
        self.from = from
        self.device = device
        self.phase = phase.rawValue
        self.type = type
    }

    init(_ message: DeviceMessage, from device: UInt32) {
        switch message {
        case let .advertiseKeys(encryptionKey, maskingKey, signature, _):
            self.init(from: "device", device: device, phase: message.phase, type: "advertise-keys")
            self.encryptionKey = hex(encryptionKey.rawRepresentation)
            self.maskingKey = hex(maskingKey.rawRepresentation)
            self.signature = signature.map { hex($0.rawRepresentation) }
        case let .shareKeys(maskingKeyCommitment, selfMaskCommitment, shares):
            self.init(from: "device", device: device, phase: message.phase, type: "share-keys")
            self.maskingKeyCommitment = hex(maskingKeyCommitment.bytes)
            self.selfMaskCommitment = hex(selfMaskCommitment.bytes)
            self.shares = shares.map {
                Sealed(sender: $0.sender, recipient: $0.recipient, ciphertext: hex($0.ciphertext.bytes),
                       maskingKeyShareDigest: hex($0.maskingKeyShareDigest.bytes), selfMaskShareDigest: hex($0.selfMaskShareDigest.bytes))
            }
        case let .maskedInput(vector):
            self.init(from: "device", device: device, phase: message.phase, type: "masked-input")
            elements = vector.elements
            packed = hex(vector.packed())
        case let .consistencySignature(signature):
            self.init(from: "device", device: device, phase: message.phase, type: "consistency-signature")
            self.signature = hex(signature.rawRepresentation)
        case let .unmaskingShares(selfMaskShares, maskingKeyShares):
            self.init(from: "device", device: device, phase: message.phase, type: "unmasking-shares")
            self.selfMaskShares = selfMaskShares.map { Revealed(owner: $0.owner, values: hex($0.values)) }
            self.maskingKeyShares = maskingKeyShares.map { Revealed(owner: $0.owner, values: hex($0.values)) }
        }
    }

    init(_ message: ServerMessage, to device: UInt32) {
        switch message {
        case let .neighbourKeys(entries, _):
            self.init(from: "server", device: device, phase: message.phase, type: "neighbour-keys")
            neighbours = entries.map {
                Keys(device: $0.device, encryptionKey: hex($0.encryptionKey.rawRepresentation), maskingKey: hex($0.maskingKey.rawRepresentation),
                     signature: $0.signature.map { hex($0.rawRepresentation) }, identityKey: $0.identityKey.map { hex($0.rawRepresentation) })
            }
        case let .sealedShares(sealed):
            self.init(from: "server", device: device, phase: message.phase, type: "sealed-shares")
            shares = sealed.map {
                Sealed(sender: $0.sender, recipient: $0.recipient, ciphertext: hex($0.ciphertext.bytes),
                       maskingKeyShareDigest: hex($0.maskingKeyShareDigest.bytes), selfMaskShareDigest: hex($0.selfMaskShareDigest.bytes))
            }
        case let .consistencyCheck(survivors):
            self.init(from: "server", device: device, phase: message.phase, type: "consistency-check")
            self.survivors = survivors
        case let .unmaskingRequest(surviving, dropped, signatures):
            self.init(from: "server", device: device, phase: message.phase, type: "unmasking-request")
            survivingNeighbours = surviving
            droppedNeighbours = dropped
            self.signatures = signatures.sorted { $0.key < $1.key }.map { NeighbourSignature(device: $0.key, signature: hex($0.value.rawRepresentation)) }
        }
    }
}
