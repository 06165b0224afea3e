import Dispatch
import VeilCrypto
import VeilProtocol

/// What a device will do wrong, if anything.
enum DeviceBehaviour: Sendable, Equatable {
    case honest
    /// Goes silent before this phase.
    case drops(before: Phase)
    /// Reveals corrupted shares in Unmasking.
    case wrongShare
    /// Signs its round keys with a corrupted signature.
    case forgedSignature
    /// Sends undecodable bytes instead of its masked input.
    case garbageMessage
}

/// The simulated devices: real sessions, their inputs' plaintext sum, behaviours and randomness.
struct Cohort: @unchecked Sendable {
    var sessions: [DeviceSession]
    var randomness: [SeededRandomSource]
    let behaviours: [DeviceBehaviour]
    /// Plaintext inputs are summed on the side per device, kept only as a running total per
    /// device subset at the end: we keep each input until the oracle has run (m·n words).
    let inputs: [ModularVector]
    /// The round's neighbour graph, shared by every session (with committed placement, a
    /// placeholder until the reveal; the sessions then share ``graphCache``).
    let graph: NeighbourGraph
    /// The revealed placement's graph, built once for the whole simulated cohort.
    let graphCache: NeighbourGraphCache

    init(scenario: Scenario, configuration: RoundConfiguration, policy: DevicePolicy, workers: Int, random: inout SeededRandomSource,
         inputs provided: (@Sendable (UInt32) -> ModularVector)? = nil) {
        let n = scenario.devices
        let graph = NeighbourGraph(configuration: configuration)
        self.graph = graph
        let graphCache = NeighbourGraphCache()
        self.graphCache = graphCache
        let data = SyntheticData(scenario: scenario)
        // Behaviours: misbehaving devices first (a random distinct set), then dropouts.
        var behaviours = [DeviceBehaviour](repeating: .honest, count: n)
        var order = Array(0..<n)
        for i in order.indices.reversed() { order.swapAt(i, Int(random.nextUInt64(below: UInt64(i + 1)))) }
        var next = 0
        for m in scenario.misbehaving {
            for _ in 0..<m.count {
                behaviours[order[next]] = m.kind == "wrong-share" ? .wrongShare : m.kind == "forged-signature" ? .forgedSignature : .garbageMessage
                next += 1
            }
        }
        let phases = configuration.threatModel.phases
        for d in 0..<n where behaviours[d] == .honest {
            if let phase = scenario.dropout.dropPhase(among: phases, drawing: { random.nextUnitDouble() }) {
                behaviours[d] = .drops(before: phase)
            }
        }
        self.behaviours = behaviours

        let active = configuration.threatModel == .active
        let slots = Slots<(DeviceSession, SeededRandomSource, ModularVector)>(count: n)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var d = worker
            while d < n {
                var deviceRandom = SeededRandomSource(seed: scenario.seed, label: "device-\(d)")
                let identity = active ? Ed25519.PrivateKey(using: &deviceRandom) : nil
                let input = provided?(UInt32(d)) ?? data.input(for: UInt32(d))
                let session = try! DeviceSession(configuration: configuration, graph: graph, device: UInt32(d), identity: identity, input: input, policy: policy,
                                                 graphCache: graphCache)
                slots.store((session, deviceRandom, input), at: d)
                d += workers
            }
        }
        let built = slots.collect()
        sessions = built.map(\.0)
        randomness = built.map(\.1)
        inputs = built.map(\.2)
    }

    /// The enrolled identity keys (active model).
    var identities: [UInt32: Ed25519.PublicKey] {
        var result: [UInt32: Ed25519.PublicKey] = [:]
        for (d, s) in sessions.enumerated() {
            if let key = s.identityPublicKey { result[UInt32(d)] = key }
        }
        return result
    }

    /// Whether device `d` is silent when asked for the message of `phase`.
    func isSilent(_ d: Int, in phase: Phase) -> Bool {
        if case let .drops(before) = behaviours[d] { return phase >= before }
        return false
    }

    /// The plaintext sum of the given devices' inputs.
    func plaintextSum(of devices: [UInt32], bitWidth: Int, dimension: Int) -> ModularVector {
        var sum = ModularVector(zerosOfCount: dimension, bitWidth: bitWidth)
        for d in devices { sum.add(inputs[Int(d)]) }
        return sum
    }
}

/// Fixed result slots written by distinct threads at distinct indices, read after the writers finish.
final class Slots<T>: @unchecked Sendable {
    private let buffer: UnsafeMutablePointer<T?>
    private let count: Int

    init(count: Int) {
        self.count = count
        buffer = .allocate(capacity: max(count, 1))
        buffer.initialize(repeating: nil, count: max(count, 1))
    }

    deinit {
        buffer.deinitialize(count: max(count, 1))
        buffer.deallocate()
    }

    /// Stores `value` at `index`; each index is written by one thread only.
    func store(_ value: T, at index: Int) { buffer[index] = value }

    /// All values, in index order.
    func collect() -> [T] { (0..<count).map { buffer[$0]! } }
}
