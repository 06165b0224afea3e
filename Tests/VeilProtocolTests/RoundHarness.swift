import VeilCrypto
@testable import VeilProtocol

/// Drives one round in memory with real DeviceSession and AggregationSession values, dropping
/// devices at chosen phases and letting a test tamper with messages in either direction.
struct RoundHarness {
    var configuration: RoundConfiguration
    var graph: NeighbourGraph
    var devices: [DeviceSession]
    var server: AggregationSession
    var inputs: [ModularVector]
    var random: SeededRandomSource
    /// The server's placement secret (active rounds on a Harary graph).
    let placementSecret: [UInt8]?
    /// The phase before whose message each device goes silent (nil: never drops).
    var dropBefore: [UInt32: Phase] = [:]
    /// Rewrites a device's message before the server sees it.
    var tamperUp: ((UInt32, DeviceMessage) -> DeviceMessage)?
    /// Rewrites a server message before the device sees it.
    var tamperDown: ((UInt32, ServerMessage) -> ServerMessage)?
    /// Violations the devices raised.
    var deviceViolations: [UInt32: ProtocolViolation] = [:]
    /// Violations the server raised.
    var serverViolations: [UInt32: ProtocolViolation] = [:]

    init(
        cohortSize n: Int, dimension m: Int = 8, bitWidth b: Int = 32, graph kind: GraphKind = .complete,
        threshold t: Int, threatModel: ThreatModel = .honestButCurious, prg: PRGAlgorithm = .aes128CTR, seed: UInt64 = 1,
        policy: DevicePolicy = .permissiveForTests
    ) throws {
        var random = SeededRandomSource(seed: seed, label: "harness")
        let placementSecret = RoundConfiguration.requiresPlacementCommitment(threatModel: threatModel, graph: kind)
            ? random.bytes(count: Placement.byteCount) : nil
        self.placementSecret = placementSecret
        configuration = try RoundConfiguration(
            roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: n, dimension: m,
            bitWidth: b, prg: prg, graph: kind, threshold: t, threatModel: threatModel,
            placementCommitment: placementSecret.map(Placement.commitment(to:)))
        graph = NeighbourGraph(configuration: configuration)
        var identities: [UInt32: Ed25519.PublicKey] = [:]
        var keys: [Ed25519.PrivateKey?] = []
        for d in 0..<n {
            let key = threatModel == .active ? Ed25519.PrivateKey(using: &random) : nil
            keys.append(key)
            if let key { identities[UInt32(d)] = key.publicKey }
        }
        let mask = ModularVector.modulusMask(b)
        inputs = (0..<n).map { _ in try! ModularVector(values: (0..<m).map { _ in random.nextUInt64() & mask }, bitWidth: b) }
        let (configuration, graph, inputs) = (configuration, graph, inputs)
        devices = try (0..<n).map { d in
            try DeviceSession(configuration: configuration, graph: graph, device: UInt32(d), identity: keys[d], input: inputs[d], policy: policy)
        }
        server = try AggregationSession(
            configuration: configuration, graph: graph, identities: identities, placementSecret: placementSecret, workers: 2)
        self.random = random
    }

    func silent(_ device: UInt32, in phase: Phase) -> Bool {
        guard let p = dropBefore[device] else { return false }
        return phase >= p
    }

    mutating func deliver(_ message: DeviceMessage, from d: UInt32) {
        let message = tamperUp?(d, message) ?? message
        do { try server.receive(message, from: d) } catch { serverViolations[d] = error }
    }

    /// Runs the round to its outcome.
    mutating func run() -> AggregationOutcome {
        for d in 0..<UInt32(devices.count) where !silent(d, in: .advertiseKeys) {
            guard let message = try? devices[Int(d)].start(using: &random) else { continue }
            deliver(message, from: d)
        }
        while true {
            if let outcome = server.closePhase(using: &random) { return outcome }
            let phase = server.phase!
            for d in server.recipients {
                guard var message = server.outgoingMessage(for: d) else { continue }
                if silent(d, in: phase) { server.deviceLeft(d); continue }
                message = tamperDown?(d, message) ?? message
                do {
                    let answer = try devices[Int(d)].handle(message, using: &random)
                    deliver(answer, from: d)
                } catch {
                    deviceViolations[d] = error
                    server.deviceLeft(d)
                }
            }
        }
    }

    /// The plaintext sum of the given devices' inputs.
    func plaintextSum(of survivors: [UInt32]) -> ModularVector {
        var sum = ModularVector(zerosOfCount: configuration.dimension, bitWidth: configuration.bitWidth)
        for d in survivors { sum.add(inputs[Int(d)]) }
        return sum
    }
}

extension DevicePolicy {
    /// Accepts either threat model and any cohort of 3 or more, assuming no dropout and no
    /// corruption: only the rules that hold for every policy (t ≥ 2, 2t > k) remain, so small
    /// test cohorts run.
    static let permissiveForTests = DevicePolicy(requiredThreatModel: .honestButCurious, minimumCohort: 3, assumedDropout: 0)
}
