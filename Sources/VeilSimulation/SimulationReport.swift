public import Foundation
import VeilCrypto
import VeilProtocol

/// Figures of one phase in the report.
public struct PhaseReport: Codable, Sendable, Equatable {
    /// The phase name.
    public let phase: String
    /// Wall-clock seconds from the first request to the phase's close.
    public let wallSeconds: Double
    /// Seconds spent in server calls (building requests, decoding and receiving, closing).
    public let serverSeconds: Double
    /// Mean device compute seconds among devices asked in this phase.
    public let deviceSecondsMean: Double
    /// Devices whose answer the server accepted.
    public let answered: Int
    /// Devices that were silent (dropped out).
    public let dropped: Int
    /// Devices that refused the server's message.
    public let refusedByDevices: Int
    /// Answers the server rejected.
    public let rejectedByServer: Int
    /// Wire bytes up (devices to server) and down.
    public let bytesUp: Int
    public let bytesDown: Int
}

/// The result of one simulated round: what `--report-json` writes.
public struct SimulationReport: Codable, Sendable {
    public let scenario: String
    /// "in-process" (sessions driven directly) or "network" (a real aggregator and real clients
    /// over TLS on loopback).
    public let mode: String
    /// Network mode: HTTP/2 connections the devices used.
    public let connections: Int?
    /// Network mode: `Participate` streams opened (one per device per round).
    public let streams: Int?
    /// Whether the output equals the plaintext sum of the counted devices (false if aborted).
    public let correct: Bool
    /// "finished", or "aborted: <reason>".
    public let outcome: String
    public let devices: Int
    public let survivors: Int
    public let dimension: Int
    public let bitWidth: Int
    /// "secagg" (complete graph) or "secagg+" (Harary graph).
    public let `protocol`: String
    public let threatModel: String
    public let prg: String
    public let neighbors: Int
    public let threshold: Int
    public let securityBits: Double
    public let correctnessBits: Double
    public let totalSeconds: Double
    public let serverSeconds: Double
    public let deviceSecondsMean: Double
    public let deviceSecondsMax: Double
    public let bytesUpPerDevice: Double
    public let bytesDownPerDevice: Double
    /// The plaintext vector size, m * ceil(b / 8) bytes, for comparing upload against.
    public let plaintextBytes: Int
    public let peakRSSBytes: Int
    /// Measured server compute / the time its unavoidable work takes at this machine's measured
    /// speed: every agreement, signature, digest, seal, Shamir split and reconstruction, mask
    /// expansion and addition the protocol requires (``ProtocolWorkModel``), unmasking over all cores.
    public let serverLimitRatio: Double
    /// Mean device compute over the whole round / the same for the mean counted device.
    public let deviceLimitRatio: Double
    /// Mean device compute in the masking phase alone / that phase's limit.
    public let deviceMaskingLimitRatio: Double
    /// The server's limit, seconds.
    public let serverLimitSeconds: Double
    /// The mean counted device's limit, seconds.
    public let deviceLimitSeconds: Double
    /// The earlier, narrower ratios against mask expansion and addition alone (kept to compare
    /// with reports before the full model).
    public let serverMaskOnlyLimitRatio: Double
    /// The same for the mean device.
    public let deviceMaskOnlyLimitRatio: Double
    /// Each phase's unavoidable work and time beside what it took; empty in network mode.
    public let phaseLimits: [PhaseLimit]
    /// What each primitive cost here, measured in the same run; nil in network mode.
    public let primitiveCosts: PrimitiveCosts?
    public let keystreamGBps: Double
    public let addGBps: Double
    public let maskExpansions: Int
    public let reconstructions: Int
    /// The first mismatching element indices, when incorrect.
    public let mismatchedElements: [Int]
    public let mismatchCount: Int
    /// Why the server rejected answers, with counts (misbehaving devices show up here).
    public let rejections: [String: Int]
    /// Devices the server named as misbehaving in its result.
    public let misbehavingNamed: Int
    /// Per-device compute seconds, sorted, sampled to at most 200 points (for the histogram).
    public let deviceSecondsSample: [Double]
    public let phases: [PhaseReport]
    /// The round's phases in time, when the scenario has a network: predicted in simulated time
    /// (in-process mode), or measured on loopback with every device's link emulated (network mode).
    public let simulated: SimulatedTiming?

    init(scenario: Scenario, parameters: GraphParameters, run: RoundRun, cohort: Cohort, outcome: AggregationOutcome) {
        let configuration = run.configuration
        let m = configuration.dimension
        let width = MaskGenerator.elementBits(forBitWidth: configuration.bitWidth) / 8
        let vectorBytes = Double(m * width)
        self.scenario = scenario.name
        mode = "in-process"
        connections = nil
        streams = nil
        devices = configuration.cohortSize
        dimension = m
        bitWidth = configuration.bitWidth
        `protocol` = { if case .complete = configuration.graph { return "secagg" } else { return "secagg+" } }()
        threatModel = configuration.threatModel.rawValue
        prg = configuration.prg.rawValue
        neighbors = configuration.degree
        threshold = configuration.threshold
        securityBits = parameters.securityBits
        correctnessBits = parameters.correctnessBits
        totalSeconds = run.totalSeconds
        serverSeconds = run.serverSeconds
        plaintextBytes = m * ((configuration.bitWidth + 7) / 8)
        peakRSSBytes = ResourceUsage.peakResidentBytes()
        keystreamGBps = run.limits.keystreamBytesPerSecond / 1e9
        addGBps = run.limits.addBytesPerSecond / 1e9
        bytesUpPerDevice = Double(run.bytesUp) / Double(devices)
        bytesDownPerDevice = Double(run.bytesDown) / Double(devices)
        maskExpansions = run.server.statistics.maskExpansions
        reconstructions = run.server.statistics.reconstructions
        rejections = run.rejections.merging(run.deviceRefusals.mapKeys { "refused by device: \($0)" }) { $0 + $1 }

        var survivorList: [UInt32] = []
        switch outcome {
        case let .finished(result):
            survivorList = result.survivors
            let expected = cohort.plaintextSum(of: result.survivors, bitWidth: configuration.bitWidth, dimension: m)
            let bad = Oracle.mismatches(output: result.sum, expected: expected)
            correct = bad.isEmpty
            mismatchCount = bad.count
            mismatchedElements = Array(bad.prefix(20))
            self.outcome = "finished"
            misbehavingNamed = result.misbehaving.count
        case let .aborted(reason):
            correct = false
            mismatchCount = 0
            mismatchedElements = []
            self.outcome = "aborted: \(reason)"
            misbehavingNamed = 0
        }
        survivors = survivorList.count

        // Device compute: over the devices that sent a masked input.
        let counted = survivorList.isEmpty ? (0..<devices).map(UInt32.init) : survivorList
        let seconds = counted.map { run.deviceSeconds[Int($0)] }
        deviceSecondsMean = seconds.reduce(0, +) / Double(max(1, seconds.count))
        deviceSecondsMax = seconds.max() ?? 0
        deviceSecondsSample = SimulatedClock.chartSample(seconds.sorted())

        // Limits. A device must expand and add its self mask and one mask per neighbour that
        // shared keys; the server must add every masked input, then expand and add every mask it
        // removes, the latter spread over all cores.
        let graph = cohort.graph
        let perMask = run.limits.maskSeconds(bytes: vectorBytes)
        let expansionsPerDevice = counted.map { d in 1 + graph.neighbours(of: d).count { run.sharedKeys[Int($0)] } }
        let deviceMaskLimit = perMask * Double(expansionsPerDevice.reduce(0, +)) / Double(max(1, expansionsPerDevice.count))
        let serverMaskLimit = Double(survivorList.count) * vectorBytes / run.limits.addBytesPerSecond
            + Double(maskExpansions) * perMask / Double(run.limits.cores)
        serverMaskOnlyLimitRatio = serverMaskLimit > 0 ? serverSeconds / serverMaskLimit : 0
        deviceMaskOnlyLimitRatio = deviceMaskLimit > 0 ? deviceSecondsMean / deviceMaskLimit : 0

        let costs = PrimitiveCosts.measured
        primitiveCosts = costs
        phaseLimits = ProtocolWorkModel.phases(
            configuration: configuration, graph: graph,
            sets: .init(advertised: run.advertised, shared: run.sharedKeys, survivors: survivorList, signed: run.signed),
            figures: run.phases, costs: costs, limits: run.limits)
        deviceLimitSeconds = phaseLimits.reduce(0) { $0 + $1.deviceLimitSeconds }
        serverLimitSeconds = phaseLimits.reduce(0) { $0 + $1.serverLimitSeconds }
        serverLimitRatio = serverLimitSeconds > 0 ? serverSeconds / serverLimitSeconds : 0
        deviceLimitRatio = deviceLimitSeconds > 0 ? deviceSecondsMean / deviceLimitSeconds : 0
        deviceMaskingLimitRatio = phaseLimits.first { $0.phase == Phase.maskedInputCollection.rawValue }?.deviceRatio ?? 0

        simulated = run.clock?.timing
        let order = configuration.threatModel.phases
        phases = order.compactMap { phase in
            guard let f = run.phases[phase] else { return nil }
            let asked = f.answered + f.silent + f.refusedByDevices + f.rejectedByServer
            return PhaseReport(
                phase: phase.rawValue, wallSeconds: f.wallSeconds, serverSeconds: f.serverSeconds,
                deviceSecondsMean: f.deviceSeconds / Double(max(1, asked)), answered: f.answered, dropped: f.silent,
                refusedByDevices: f.refusedByDevices, rejectedByServer: f.rejectedByServer, bytesUp: f.bytesUp, bytesDown: f.bytesDown)
        }
    }

    /// The report as pretty-printed JSON with sorted keys.
    public func json() -> Data { Self.reportJSON(self) }
}

extension Encodable {
    /// `report` as the simulator writes every report: pretty-printed JSON with sorted keys.
    static func reportJSON(_ report: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // A probability of exactly zero has infinitely many bits of security: write it as "inf".
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try! encoder.encode(report)
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ transform: (Key) -> K) -> [K: Value] {
        Dictionary<K, Value>(map { (transform($0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
    }
}
