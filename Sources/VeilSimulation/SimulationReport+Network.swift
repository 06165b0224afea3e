import Foundation
import VeilCrypto
public import VeilProtocol

/// What a network-mode run measured, for ``SimulationReport/init(network:)``.
public struct NetworkRoundFigures: Sendable {
    /// The scenario as run.
    public var scenario: Scenario
    /// The graph parameters the aggregator was configured with.
    public var parameters: GraphParameters
    /// The round's configuration as the aggregator chose it.
    public var configuration: RoundConfiguration
    /// How the round ended.
    public var outcome: AggregationOutcome
    /// The plaintext sum of the inputs of the devices in the result's survivor set (nil if aborted).
    public var expectedSum: ModularVector?
    /// Wall seconds from the first check-in to the last device's final frame.
    public var totalSeconds: Double
    /// The aggregator's protocol compute for the round.
    public var serverSeconds: Double
    /// Compute seconds of each device counted in the sum.
    public var deviceSeconds: [Double]
    /// Mean number of masks a counted device expanded (its self mask plus one per neighbour that shared keys).
    public var meanDeviceExpansions: Double
    /// Protocol bytes from devices to the aggregator and back, over all devices.
    public var bytesUp: Int
    /// Protocol bytes from the aggregator to devices.
    public var bytesDown: Int
    /// This machine's keystream and add throughput, measured in the same run.
    public var limits: PhysicalLimits
    /// The aggregator's unmasking work.
    public var statistics: UnmaskingStatistics
    /// Per-phase figures.
    public var phases: [PhaseReport]
    /// HTTP/2 connections used.
    public var connections: Int
    /// Streams opened.
    public var streams: Int
    /// Device-side errors by description, with counts.
    public var rejections: [String: Int]
    /// The round's phases as measured on loopback with every device's link emulated, when the
    /// scenario has a network.
    public var timing: SimulatedTiming?

    /// Creates the figures.
    public init(
        scenario: Scenario, parameters: GraphParameters, configuration: RoundConfiguration, outcome: AggregationOutcome,
        expectedSum: ModularVector?, totalSeconds: Double, serverSeconds: Double, deviceSeconds: [Double],
        meanDeviceExpansions: Double, bytesUp: Int, bytesDown: Int, limits: PhysicalLimits, statistics: UnmaskingStatistics,
        phases: [PhaseReport], connections: Int, streams: Int, rejections: [String: Int]
    ) {
        self.scenario = scenario
        self.parameters = parameters
        self.configuration = configuration
        self.outcome = outcome
        self.expectedSum = expectedSum
        self.totalSeconds = totalSeconds
        self.serverSeconds = serverSeconds
        self.deviceSeconds = deviceSeconds
        self.meanDeviceExpansions = meanDeviceExpansions
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.limits = limits
        self.statistics = statistics
        self.phases = phases
        self.connections = connections
        self.streams = streams
        self.rejections = rejections
    }
}

extension PhaseReport {
    /// A phase's figures as the network mode sees them (server-side compute is not split per phase).
    public init(phase: Phase, wallSeconds: Double, answered: Int, dropped: Int, bytesUp: Int, bytesDown: Int) {
        self.init(phase: phase.rawValue, wallSeconds: wallSeconds, serverSeconds: 0, deviceSecondsMean: 0, answered: answered,
                  dropped: dropped, refusedByDevices: 0, rejectedByServer: 0, bytesUp: bytesUp, bytesDown: bytesDown)
    }
}

extension SimulationReport {
    /// The report of a network-mode run, with the same keys as the in-process report.
    public init(network f: NetworkRoundFigures) {
        let configuration = f.configuration
        let m = configuration.dimension
        let vectorBytes = Double(m * MaskGenerator.elementBits(forBitWidth: configuration.bitWidth) / 8)
        scenario = f.scenario.name
        mode = "network"
        connections = f.connections
        streams = f.streams
        devices = configuration.cohortSize
        dimension = m
        bitWidth = configuration.bitWidth
        `protocol` = { if case .complete = configuration.graph { return "secagg" } else { return "secagg+" } }()
        threatModel = configuration.threatModel.rawValue
        prg = configuration.prg.rawValue
        neighbors = configuration.degree
        threshold = configuration.threshold
        securityBits = f.parameters.securityBits
        correctnessBits = f.parameters.correctnessBits
        totalSeconds = f.totalSeconds
        serverSeconds = f.serverSeconds
        plaintextBytes = m * ((configuration.bitWidth + 7) / 8)
        peakRSSBytes = ResourceUsage.peakResidentBytes()
        keystreamGBps = f.limits.keystreamBytesPerSecond / 1e9
        addGBps = f.limits.addBytesPerSecond / 1e9
        bytesUpPerDevice = Double(f.bytesUp) / Double(devices)
        bytesDownPerDevice = Double(f.bytesDown) / Double(devices)
        maskExpansions = f.statistics.maskExpansions
        reconstructions = f.statistics.reconstructions
        rejections = f.rejections
        var survivorCount = 0
        switch f.outcome {
        case let .finished(result):
            survivorCount = result.survivors.count
            let bad = f.expectedSum.map { Oracle.mismatches(output: result.sum, expected: $0) } ?? [0]
            correct = bad.isEmpty
            mismatchCount = bad.count
            mismatchedElements = Array(bad.prefix(20))
            outcome = "finished"
            misbehavingNamed = result.misbehaving.count
        case let .aborted(reason):
            correct = false
            mismatchCount = 0
            mismatchedElements = []
            outcome = "aborted: \(reason)"
            misbehavingNamed = 0
        }
        survivors = survivorCount
        deviceSecondsMean = f.deviceSeconds.reduce(0, +) / Double(max(1, f.deviceSeconds.count))
        deviceSecondsMax = f.deviceSeconds.max() ?? 0
        deviceSecondsSample = SimulatedClock.chartSample(f.deviceSeconds.sorted())
        let perMask = f.limits.maskSeconds(bytes: vectorBytes)
        deviceLimitSeconds = perMask * f.meanDeviceExpansions
        serverLimitSeconds = Double(survivorCount) * vectorBytes / f.limits.addBytesPerSecond
            + Double(maskExpansions) * perMask / Double(f.limits.cores)
        serverLimitRatio = serverLimitSeconds > 0 ? serverSeconds / serverLimitSeconds : 0
        deviceLimitRatio = deviceLimitSeconds > 0 ? deviceSecondsMean / deviceLimitSeconds : 0
        deviceMaskingLimitRatio = 0
        // Network mode counts mask expansion and addition only: the sets per phase live in the
        // aggregator, not here.
        serverMaskOnlyLimitRatio = serverLimitRatio
        deviceMaskOnlyLimitRatio = deviceLimitRatio
        phaseLimits = []
        primitiveCosts = nil
        phases = f.phases
        simulated = f.timing
    }
}
