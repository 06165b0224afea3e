import Foundation
import Logging
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilProtocol
public import VeilSimulation
import VeilWire
import VeilStore

/// Runs a scenario over the network: a real `veil-aggregator` in this process, serving gRPC with
/// TLS (fresh development certificates) on loopback with its SQLite store in a temporary
/// directory, and every synthetic device as a real ``VeilDevice`` client with its own stream,
/// enrolled with its own token. A device that drops out really closes its stream at that phase.
/// The result is checked against the plaintext sum of the devices the aggregator counted.
public struct NetworkSimulation: Sendable {
    /// The scenario to run (misbehaving devices are an in-process feature and are refused here).
    public let scenario: Scenario
    /// Devices sharing one HTTP/2 connection (each device still has its own stream).
    public let devicesPerConnection: Int
    /// Serve TLS (the default) or, for comparison, plaintext gRPC.
    public let tls: Bool
    /// An aggregator running elsewhere on this machine to use instead of an in-process one.
    public let external: ExternalAggregator?

    /// An aggregator started separately (`veil-aggregator serve`). The simulator creates the
    /// devices' enrolment tokens in its database, as `veil-aggregator enrolment-token` does, and
    /// reads the round's stored result from it to check the sum; so it must run on the same machine.
    public struct ExternalAggregator: Sendable {
        /// Host name the server certificate names.
        public var host: String
        /// gRPC port.
        public var port: Int
        /// The CA certificate to pin.
        public var caCertificatePath: String
        /// The aggregator's store, as its `database` setting names it: an SQLite path or a
        /// `postgres://` URL.
        public var database: String

        /// Describes an external aggregator.
        public init(host: String, port: Int, caCertificatePath: String, database: String) {
            self.host = host
            self.port = port
            self.caCertificatePath = caCertificatePath
            self.database = database
        }
    }

    /// Creates a run.
    public init(scenario: Scenario, devicesPerConnection: Int = 50, tls: Bool = true, external: ExternalAggregator? = nil) {
        self.scenario = scenario
        self.devicesPerConnection = max(1, devicesPerConnection)
        self.tls = tls
        self.external = external
    }

    /// Runs the round and reports; `progress` receives (phase name, devices done, total).
    public func run(progress: (@Sendable (String, Int, Int) -> Void)? = nil) async throws -> SimulationReport {
        guard scenario.misbehaving.isEmpty else {
            throw ScenarioError(field: "misbehaving", reason: "misbehaving devices are simulated in-process only; use --mode in-process")
        }
        let n = scenario.devices
        let engine = SimulationEngine(scenario: scenario)
        let parameters = try engine.graphParameters()
        // Every device enforces the policy an operator would set for this fleet: the scenario's
        // own planning assumptions (a separate aggregator planned otherwise is refused).
        let policy = engine.devicePolicy
        let limits = PhysicalLimits.measure(algorithm: scenario.prg, cores: ProcessInfo.processInfo.activeProcessorCount)
        let deadline = try phaseDeadline()
        // With a network, every device's link is emulated: the same draws as the in-process
        // round's simulated time, so the two can be compared (Simulations/README.md).
        let links = scenario.network?.links(devices: n, seed: scenario.seed)

        let directory = NSTemporaryDirectory() + "veil-sim-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store: any AggregatorStore
        var ownedStore: (any AggregatorStore)?
        let endpoint: AggregatorEndpoint
        var inProcess: Aggregator?
        var serving: Task<Void, any Error>?
        defer { serving?.cancel() }
        if let external {
            store = try await openAggregatorStore(external.database, logger: Logger(label: "veil-sim", factory: { _ in SwiftLogNoOpLogHandler() }))
            ownedStore = store
            endpoint = AggregatorEndpoint(host: external.host, port: external.port, security: .tls(caCertificatePath: external.caCertificatePath))
        } else {
            let aggregator = try await startAggregator(directory: directory, parameters: parameters, phaseDeadline: deadline)
            serving = Task { try await aggregator.run() }
            await aggregator.waitUntilListening()
            inProcess = aggregator
            store = aggregator.store
            endpoint = AggregatorEndpoint(
                host: "localhost", port: aggregator.grpcPort!,
                security: tls ? .tls(caCertificatePath: directory + "/tls/ca.pem") : .insecurePlaintext)
        }

        // Each device's identity, token, input and the phase it will drop before.
        let data = SyntheticData(scenario: scenario)
        var random = SeededRandomSource(seed: scenario.seed, label: "network-dropouts")
        let phases = scenario.threatModel.phases
        let dropPlan = (0..<n).map { _ in scenario.dropout.dropPhase(among: phases, drawing: { random.nextUnitDouble() }) }
        var tokens: [String] = []
        tokens.reserveCapacity(n)
        for _ in 0..<n { tokens.append(try await store.createEnrolmentToken(lifetime: 3600)) }
        let enrolmentTokens = tokens
        let connectionCount = (n + devicesPerConnection - 1) / devicesPerConnection
        let connections = try (0..<connectionCount).map { _ in try AggregatorConnection(to: endpoint) }
        let rounds = await inProcess?.completedRounds()
        let counter = ProgressCounter()

        let clock = ContinuousClock()
        let start = clock.now
        let outcomes: [(device: Int, participation: RoundParticipation?, error: String?)] = await withThrowingTaskGroup(of: Void.self) { runners in
            for c in connections { runners.addTask { try await c.run() } }
            defer { for c in connections { c.close() } }
            return await withTaskGroup(of: (Int, RoundParticipation?, String?).self) { group in
                for d in 0..<n {
                    group.addTask {
                        let identity = DeviceIdentity.generate()
                        let device = VeilDevice(
                            identity: identity, policy: policy, signedRounds: .inMemory(), connection: connections[d / devicesPerConnection])
                        do {
                            _ = try await device.enrol(token: enrolmentTokens[d])
                            // With a network, a device that drops goes silent, as simulated time assumes.
                            let options = links.map { links in
                                let link = links[d]
                                return ParticipationOptions(silentFrom: dropPlan[d], emulatedLink: EmulatedLink(
                                    latencySeconds: link.latencySeconds, uplinkBytesPerSecond: link.uplinkBytesPerSecond,
                                    downlinkBytesPerSecond: link.downlinkBytesPerSecond, computeFactor: link.computeFactor))
                            } ?? ParticipationOptions(disconnectBefore: dropPlan[d])
                            let p = try await device.participate(options: options) { _ in data.input(for: UInt32(d)) }
                            return (d, p, nil)
                        } catch {
                            return (d, nil, String(describing: error))
                        }
                    }
                }
                var all: [(Int, RoundParticipation?, String?)] = []
                for await result in group {
                    all.append(result)
                    progress?("devices finished", counter.increment(), n)
                }
                return all.map { (device: $0.0, participation: $0.1, error: $0.2) }
            }
        }
        let totalSeconds = (clock.now - start).seconds
        let round: RoundView
        if let rounds {
            var iterator = rounds.makeAsyncIterator()
            guard let completed = await iterator.next() else {
                throw ScenarioError(field: "network", reason: "the aggregator finished no round; device errors: \(Set(outcomes.compactMap(\.error)).prefix(3))")
            }
            round = RoundView(completed)
        } else {
            round = try await RoundView(stored: store, outcomes: outcomes.compactMap(\.participation))
            await ownedStore?.close()
        }
        return report(round: round, outcomes: outcomes, data: data, parameters: parameters, limits: limits,
                      totalSeconds: totalSeconds, connections: connectionCount, deadline: deadline)
    }

    /// The aggregator's phase deadline: with a network, the scenario's one deadline (an aggregator
    /// has one for every phase); otherwise long enough for a whole cohort sharing the cores.
    private func phaseDeadline() throws -> Double {
        guard scenario.network != nil else { return 120 }
        let deadlines = scenario.deadlines ?? .aggregatorDefault
        guard deadlines.phases.values.allSatisfy({ $0 == deadlines.default }) else {
            throw ScenarioError(field: "deadlines", reason: "network mode runs a real aggregator, which has one deadline for every phase; give only \"default\"")
        }
        return deadlines.default
    }

    /// The in-process aggregator, configured so that one round takes exactly the whole cohort.
    private func startAggregator(directory: String, parameters: GraphParameters, phaseDeadline: Double) async throws -> Aggregator {
        let n = scenario.devices
        var configuration = try Self.loopbackConfiguration(
            directory: directory, tls: tls, devices: n, prg: scenario.prg, threatModel: scenario.threatModel,
            dropout: scenario.dropout, corruptFraction: scenario.graph.corruptFraction)
        configuration.httpListen = nil
        configuration.apiListen = nil
        configuration.rounds.task = "simulation:\(scenario.name)"
        configuration.rounds.dimension = scenario.dimension
        configuration.rounds.bitWidth = scenario.bitWidth
        configuration.rounds.minimumCohort = n
        configuration.rounds.phaseTimeoutSeconds = phaseDeadline
        configuration.rounds.maximumCohort = n
        configuration.rounds.gatherSeconds = 600
        configuration.rounds.maximumWaitSeconds = 1200
        if case let .harary(k) = parameters.graph {
            configuration.rounds.graph = "harary"
            configuration.rounds.degree = k
        } else {
            configuration.rounds.graph = "complete"
        }
        configuration.rounds.threshold = parameters.threshold
        var logger = Logger(label: "veil.sim.aggregator")
        logger.logLevel = .error
        return try await Aggregator(configuration: configuration, logger: logger)
    }

    /// What every simulated aggregator starts from: gRPC, operations and API on free loopback ports, its
    /// SQLite store and, unless `tls` is false, fresh development certificates in `directory`;
    /// room for every device to wait; phases long enough for a whole cohort sharing the cores;
    /// and the scenario's protocol settings.
    static func loopbackConfiguration(
        directory: String, tls: Bool, devices: Int, prg: PRGAlgorithm, threatModel: ThreatModel,
        dropout: Scenario.DropoutSpec, corruptFraction: Double?
    ) throws -> AggregatorConfiguration {
        var configuration = AggregatorConfiguration()
        configuration.listen = .init(host: "127.0.0.1", port: 0)
        configuration.httpListen = .init(host: "127.0.0.1", port: 0)
        configuration.apiListen = .init(host: "127.0.0.1", port: 0)
        configuration.database = directory + "/aggregator.sqlite"
        if tls {
            let paths = try DevelopmentCertificates.write(to: directory + "/tls")
            configuration.tlsCertificatePath = paths.serverCertificate
            configuration.tlsPrivateKeyPath = paths.serverPrivateKey
        } else {
            configuration.insecurePlaintext = true
        }
        configuration.maximumWaitingDevices = devices + 16
        // A simulated fleet enrols all at once over loopback, from one address, many devices to
        // a connection; the production limits would pace or refuse it.
        configuration.enrolmentsPerSecond = 100_000
        configuration.maximumConnectionsPerAddress = 1_000_000
        configuration.maximumStreamsPerConnection = 1_000_000
        configuration.rounds.prg = prg
        configuration.rounds.threatModel = threatModel
        configuration.rounds.phaseTimeoutSeconds = 120
        configuration.rounds.expectedDropout = min(dropout.total, 0.99)
        configuration.rounds.corruptFraction = corruptFraction ?? 0
        return configuration
    }

    private func report(
        round: RoundView, outcomes: [(device: Int, participation: RoundParticipation?, error: String?)], data: SyntheticData,
        parameters: GraphParameters, limits: PhysicalLimits, totalSeconds: Double, connections: Int, deadline: Double
    ) -> SimulationReport {
        let configuration = round.configuration
        var deviceAt: [UInt32: Int] = [:]
        var participationAt: [UInt32: RoundParticipation] = [:]
        for o in outcomes {
            if let p = o.participation, let i = p.deviceIndex {
                deviceAt[i] = o.device
                participationAt[i] = p
            }
        }
        var expected: ModularVector?
        var counted: [UInt32] = []
        if case let .finished(result) = round.outcome {
            counted = result.survivors
            var sum = ModularVector(zerosOfCount: configuration.dimension, bitWidth: configuration.bitWidth)
            var complete = true
            for s in result.survivors {
                guard let d = deviceAt[s] else { complete = false; continue }
                sum.add(data.input(for: UInt32(d)))
            }
            expected = complete ? sum : nil
        }
        let graph = NeighbourGraph(configuration: configuration)
        let sharers = Set(participationAt.compactMap { (i, p) -> UInt32? in
            if case let .disconnected(before) = p.outcome, before <= .shareKeys { return nil }
            return i
        })
        let expansions = counted.map { 1 + graph.neighbours(of: $0).count { sharers.contains($0) } }
        var rejections: [String: Int] = [:]
        for o in outcomes { if let e = o.error { rejections[e, default: 0] += 1 } }
        let order = configuration.threatModel.phases
        // The aggregator's own count when the round finished (deadline cuts included); otherwise
        // the devices that left on purpose.
        var dropped = Dictionary(grouping: participationAt.values.compactMap { p -> Phase? in
            if case let .disconnected(before) = p.outcome { return before } else { return nil }
        }, by: { $0 }).mapValues(\.count)
        if case let .finished(result) = round.outcome, !result.droppedInPhase.isEmpty { dropped = result.droppedInPhase.mapValues(\.count) }
        var remaining = configuration.cohortSize
        let phases = order.compactMap { phase -> PhaseReport? in
            guard let wall = round.phaseSeconds[phase] else { return nil }
            remaining -= dropped[phase] ?? 0
            return PhaseReport(phase: phase, wallSeconds: wall, answered: remaining, dropped: dropped[phase] ?? 0,
                               bytesUp: round.bytesReceived[phase] ?? 0,
                               bytesDown: round.bytesSent[phase] ?? 0)
        }
        var figures = NetworkRoundFigures(
            scenario: scenario, parameters: parameters, configuration: configuration, outcome: round.outcome,
            expectedSum: expected, totalSeconds: totalSeconds, serverSeconds: round.serverComputeSeconds,
            deviceSeconds: counted.compactMap { participationAt[$0]?.computeSeconds },
            meanDeviceExpansions: Double(expansions.reduce(0, +)) / Double(max(1, expansions.count)),
            bytesUp: participationAt.values.reduce(0) { $0 + $1.bytesSent },
            bytesDown: participationAt.values.reduce(0) { $0 + $1.bytesReceived },
            limits: limits, statistics: round.statistics, phases: phases, connections: connections,
            streams: outcomes.count, rejections: rejections)
        if let network = scenario.network, !round.phaseClosedAt.isEmpty {
            figures.timing = Self.timing(round: round, network: network, deadline: deadline, participations: participationAt)
        }
        return SimulationReport(network: figures)
    }

    /// The round's phases as the aggregator timed them. A device the aggregator dropped in a
    /// phase without having chosen to go silent there was cut by the deadline.
    static func timing(round: RoundView, network: NetworkSpec, deadline: Double, participations: [UInt32: RoundParticipation]) -> SimulatedTiming {
        var droppedIn: [Phase: [UInt32]] = [:]
        if case let .finished(result) = round.outcome { droppedIn = result.droppedInPhase }
        var start = 0.0
        let phases = round.configuration.threatModel.phases.compactMap { phase -> SimulatedPhase? in
            guard let closed = round.phaseClosedAt[phase] else { return nil }
            defer { start = closed }
            let cut = (droppedIn[phase] ?? []).count { i in
                if case .disconnected? = participations[i]?.outcome { return false }
                return true
            }
            let arrivals = round.arrivals[phase] ?? []
            return SimulatedPhase(
                phase: phase, startSeconds: start, durationSeconds: closed - start, deadlineSeconds: deadline,
                waitedForDeadline: (round.phaseSeconds[phase] ?? 0) >= deadline, cutByDeadline: cut,
                inTime: arrivals.count { $0 <= deadline }, arrivals: arrivals)
        }
        return SimulatedTiming(network: network.profile ?? "custom", phases: phases)
    }
}

/// A thread-safe counter for progress reports.
final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    @discardableResult
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }

    var current: Int {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
