public import Foundation
import VeilCrypto
import VeilProtocol

/// One phase as `veil-sim plan` predicts it.
public struct PlannedPhase: Codable, Sendable, Equatable {
    /// The phase name.
    public let phase: String
    /// Devices expected to answer.
    public let answering: Double
    /// Bytes one device that takes part in the phase sends and receives.
    public let bytesUp: Double
    public let bytesDown: Double
    /// The device's unavoidable compute here (``ProtocolWorkModel``).
    public let deviceSeconds: Double
    /// The server's unavoidable compute (unmasking over all cores).
    public let serverSeconds: Double
    /// When answers reach the server on the network, seconds after the phase opens: median, 99th
    /// and 99.9th percentile.
    public let arrivalP50: Double
    public let arrivalP99: Double
    public let arrivalP999: Double
    /// The deadline suggested: 1.25 × the 99.9th percentile, rounded up to a round number.
    public let suggestedDeadlineSeconds: Double
    /// The fraction of devices that deadline is expected to cut.
    public let expectedCutFraction: Double
    /// Whether the server is expected to wait for the deadline (a device asked is expected to stay silent).
    public let waitsForDeadline: Bool
    /// The phase's predicted length.
    public let durationSeconds: Double
    /// Arrival times on the sample of links, sorted, at most 200 points (for the picture).
    public let arrivalSample: [Double]
}

/// What `veil-sim plan` predicts for a fleet without running a round (issue 16, item 2): the
/// parameters the aggregator would choose, bytes, device and server compute at the limit of this
/// machine's measured primitives, the round's length on a network and suggested phase deadlines.
public struct RoundPlan: Codable, Sendable, Equatable {
    /// The scenario planned (``scenario`` runs it for `--verify`).
    public let scenarioName: String
    public let devices: Int
    public let dimension: Int
    public let bitWidth: Int
    public let dropout: Double
    public let corruptFraction: Double
    public let threatModel: String
    public let network: String
    /// "secagg" (complete graph) or "secagg+".
    public let `protocol`: String
    public let neighbours: Int
    public let threshold: Int
    public let securityBits: Double
    public let correctnessBits: Double
    /// The largest value one element may carry on every device for the sum of n not to wrap.
    public let largestElementValue: Double
    public let phases: [PlannedPhase]
    /// Bytes up and down over the round per invited device (dropped devices included, as the
    /// simulator's reports count them).
    public let bytesUpPerDevice: Double
    public let bytesDownPerDevice: Double
    /// A device's compute over the round, and the server's, at the limit.
    public let deviceSeconds: Double
    public let serverSeconds: Double
    /// The round's predicted length with the suggested deadlines.
    public let roundSeconds: Double
    /// The aggregator has one deadline for every phase: the largest suggested.
    public let phaseTimeoutSeconds: Double

    /// Plans `scenario` (its devices, dimension, bit width, graph, dropout, threat model and
    /// network; `lan` when it has none). Costs are measured on this machine now.
    public static func make(for scenario: Scenario, workers: Int = ProcessInfo.processInfo.activeProcessorCount) throws(ScenarioError) -> RoundPlan {
        let engine = SimulationEngine(scenario: scenario, workers: workers)
        let parameters = try engine.graphParameters()
        let costs = PrimitiveCosts.measured
        let limits = PhysicalLimits.measure(algorithm: scenario.prg, cores: max(1, workers))
        let network = scenario.network ?? NetworkSpec.profiles["lan"]!
        let n = Double(scenario.devices), k = Double(parameters.degree), t = Double(parameters.threshold)
        let active = scenario.threatModel == .active
        let vectorBytes = Double(scenario.dimension * MaskGenerator.elementBits(forBitWidth: scenario.bitWidth) / 8)
        let sparse: Bool = { if case .harary = parameters.graph { return true } else { return false } }()
        let wire = WireSizeModel(devices: scenario.devices, dimension: scenario.dimension, bitWidth: scenario.bitWidth, active: active, committedPlacement: active && sparse)

        // Who is left after each phase, in expectation.
        let drop = scenario.dropout
        let u1 = n * (1 - drop.advertiseKeys), u2 = u1 * (1 - drop.shareKeys), u3 = u2 * (1 - drop.maskedInputCollection)
        let u4 = active ? u3 * (1 - drop.consistencyCheck) : u3
        let listed = k * u1 / n, senders = k * u2 / n, signers = k * u4 / n
        let answering: [Phase: Double] = [.advertiseKeys: u1, .shareKeys: u2, .maskedInputCollection: u3, .consistencyCheck: u4, .unmasking: active ? u4 * (1 - drop.unmasking) : u3 * (1 - drop.unmasking)]
        let asked: [Phase: Double] = [.advertiseKeys: n, .shareKeys: u1, .maskedInputCollection: u2, .consistencyCheck: u3, .unmasking: u4]

        // A sample of the fleet's links (at most 20,000 devices: the percentiles need no more).
        let clock = SimulatedClock(network: network, deadlines: .aggregatorDefault, devices: min(scenario.devices, 20_000), seed: scenario.seed)
        var phases: [PlannedPhase] = []
        for phase in scenario.threatModel.phases {
            let device = ProtocolWorkModel.device(phase, listed: listed, senders: senders, signers: signers, threshold: t, vectorBytes: vectorBytes, active: active)
            let bytes = wire.bytes(phase, listed: listed, senders: senders, signers: signers)
            let server: WorkCounts
            if phase == .unmasking {
                // Dropped devices that shared but sent no input almost always have a surviving
                // neighbour; each such neighbour holds a pairwise mask to remove.
                server = ProtocolWorkModel.serverUnmasking(
                    survivors: u3, droppedWithSurvivingNeighbours: u2 - u3, pairwiseMasks: (u2 - u3) * k * u3 / n, threshold: t, vectorBytes: vectorBytes)
            } else {
                server = ProtocolWorkModel.server(phase, answering: answering[phase]!, vectorBytes: vectorBytes, active: active)
            }
            let serverSeconds = ProtocolWorkModel.serverSeconds(
                phase, work: server, bytesUp: (answering[phase] ?? 0) * bytes.up, bytesDown: (asked[phase] ?? 0) * bytes.down, costs: costs, limits: limits)
            let deviceSeconds = device.seconds(costs, limits)
            let arrivals = clock.links.indices.map { i in
                clock.arrival(of: UInt32(i), requestReady: 0, downBytes: Int(bytes.down), deviceSeconds: deviceSeconds, upBytes: Int(bytes.up))
            }.sorted()
            func percentile(_ p: Double) -> Double { SimulatedClock.percentile(p, of: arrivals) }
            let deadline = roundUp(1.25 * percentile(0.999))
            let cut = Double(arrivals.count { $0 > deadline }) / Double(arrivals.count)
            // Anyone expected to go silent makes the server wait for its deadline.
            let silent = (asked[phase] ?? 0) * drop.probability(phase)
            let waits = silent >= 0.5
            let duration = (waits ? deadline : min(deadline, arrivals.last ?? 0)) + serverSeconds
            phases.append(PlannedPhase(
                phase: phase.rawValue, answering: answering[phase] ?? 0, bytesUp: bytes.up, bytesDown: bytes.down,
                deviceSeconds: deviceSeconds, serverSeconds: serverSeconds, arrivalP50: percentile(0.5), arrivalP99: percentile(0.99),
                arrivalP999: percentile(0.999), suggestedDeadlineSeconds: deadline, expectedCutFraction: cut, waitsForDeadline: waits,
                durationSeconds: duration, arrivalSample: SimulatedClock.chartSample(arrivals)))
        }
        return RoundPlan(
            scenarioName: scenario.name, devices: scenario.devices, dimension: scenario.dimension, bitWidth: scenario.bitWidth,
            dropout: drop.total, corruptFraction: engine.assumptions.corruptFraction, threatModel: scenario.threatModel.rawValue,
            network: network.profile ?? "custom", protocol: sparse ? "secagg+" : "secagg", neighbours: parameters.degree,
            threshold: parameters.threshold, securityBits: parameters.securityBits, correctnessBits: parameters.correctnessBits,
            largestElementValue: (Foundation.pow(2, Double(scenario.bitWidth)) - 1) / n,
            // Per invited device, as the simulator counts: a device that dropped sends and receives no more.
            phases: phases, bytesUpPerDevice: phases.reduce(0) { $0 + $1.bytesUp * $1.answering } / n,
            bytesDownPerDevice: zip(phases, scenario.threatModel.phases).reduce(0) { $0 + $1.0.bytesDown * (asked[$1.1] ?? 0) } / n,
            deviceSeconds: phases.reduce(0) { $0 + $1.deviceSeconds }, serverSeconds: phases.reduce(0) { $0 + $1.serverSeconds },
            roundSeconds: phases.reduce(0) { $0 + $1.durationSeconds },
            phaseTimeoutSeconds: phases.map(\.suggestedDeadlineSeconds).max() ?? DeadlineSpec.aggregatorDefault.default)
    }

    /// The plan as a round in time, for pictures: each phase after the one before, with its
    /// suggested deadline and the arrivals predicted on the sample of links.
    public var timing: SimulatedTiming {
        var start = 0.0
        let planned = phases.map { p -> SimulatedPhase in
            defer { start += p.durationSeconds }
            let cut = Int((p.expectedCutFraction * p.answering).rounded())
            return SimulatedPhase(
                phase: p.phase, startSeconds: start, durationSeconds: p.durationSeconds, deadlineSeconds: p.suggestedDeadlineSeconds,
                waitedForDeadline: p.waitsForDeadline, cutByDeadline: cut, inTime: Int(p.answering.rounded()) - cut,
                arrivalSample: p.arrivalSample, arrivalP50: p.arrivalP50, arrivalP90: SimulatedClock.percentile(0.9, of: p.arrivalSample),
                arrivalP99: p.arrivalP99)
        }
        return SimulatedTiming(network: network, phases: planned)
    }

    /// The scenario with the suggested deadlines, for `--verify`.
    public func deadlines() -> DeadlineSpec {
        var byPhase: [String: Double] = [:]
        for p in phases { if let phase = Phase(rawValue: p.phase) { byPhase[DeadlineSpec.key(phase)] = p.suggestedDeadlineSeconds } }
        return DeadlineSpec(default: phaseTimeoutSeconds, phases: byPhase)
    }

    /// `x` rounded up to 1, 2 or 5 times a power of ten (at least 0.1 s).
    static func roundUp(_ x: Double) -> Double { roundNumber(atLeast: max(x, 0.1)) }

    /// The smallest of 1, 2 or 5 times a power of ten that is at least `x` (> 0): deadlines and
    /// chart axes both fall on these.
    static func roundNumber(atLeast x: Double) -> Double {
        let power = Foundation.pow(10, Foundation.log10(x).rounded(.down))
        return [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= x * (1 - 1e-12) } ?? 10 * power
    }
}
