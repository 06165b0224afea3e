import Foundation
import Logging
import Synchronization
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilFeatures
import VeilProtocol
public import VeilSimulation
#if canImport(FoundationNetworking)
import FoundationNetworking
import VeilStore
#endif

/// Runs a feature scenario over the network: a real aggregator in this process (gRPC over TLS on
/// loopback, its SQLite store in a temporary directory, `rounds.featureSet` set to the scenario's
/// set, its clock driven by the simulation), and every synthetic device a real ``VeilDevice``
/// with its own durable ``ObservationStore``. Per window the devices record their observations,
/// the clock moves past the window's end, devices with the window pending check in, and each
/// round starts on demand through the HTTP API (`POST /v1/rounds`). Dropouts really close the
/// stream. The window's values are then read over the API and checked against the plaintext
/// computation over exactly the devices the aggregator counted.
public struct FeatureNetworkSimulation: Sendable {
    /// The scenario (validated).
    public let scenario: FeatureScenario
    /// Devices sharing one HTTP/2 connection (each device still has its own stream).
    public let devicesPerConnection: Int
    /// The aggregator's store, kept after the run (an SQLite path or a `postgres://` URL, as the
    /// aggregator's `database` setting); nil for a temporary SQLite file. A kept store can be
    /// served afterwards with `veil-aggregator serve --database …` and read over its API.
    public let database: String?

    /// Creates a run.
    public init(scenario: FeatureScenario, devicesPerConnection: Int = 50, database: String? = nil) {
        self.scenario = scenario
        self.devicesPerConnection = max(1, devicesPerConnection)
        self.database = database
    }

    /// Runs every window; `progress` receives (label, done, total).
    public func run(progress: (@Sendable (String, Int, Int) -> Void)? = nil) async throws -> FeatureSimulationReport {
        let layout = try scenario.layout()
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        let n = scenario.devices
        let directory = NSTemporaryDirectory() + "veil-sim-features-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = SimulatedClock(Date(timeIntervalSince1970: Double(scenario.windowStart(0))))
        var random = SystemRandomSource()
        let token = Hex.encode(random.bytes(count: 24))
        let aggregator = try await startAggregator(directory: directory, token: token, clock: clock)
        let serving = Task { try await aggregator.run() }
        defer { serving.cancel() }
        await aggregator.waitUntilListening()
        let apiConnection = try APIConnection(port: aggregator.apiPort!, caCertificatePath: directory + "/tls/ca.pem")
        defer { Task { try? await apiConnection.close() } }
        let api = FeatureAPIClient(connection: apiConnection, token: token, featureSet: scenario.featureSet.name)
        let endpoint = AggregatorEndpoint(host: "localhost", port: aggregator.grpcPort!, security: .tls(caCertificatePath: directory + "/tls/ca.pem"))

        // The fleet: identities, enrolment, and one observation store per device.
        var stores: [ObservationStore] = []
        var tokens: [String] = []
        for d in 0..<n {
            stores.append(try ObservationStore(
                path: directory + "/device-\(d).sqlite", layout: layout, windowSeconds: scenario.windowSeconds,
                retention: Double(scenario.windows + 1) * Double(scenario.windowSeconds)))
            tokens.append(try await aggregator.store.createEnrolmentToken(lifetime: 86_400 * 365))
        }
        let identities = (0..<n).map { _ in DeviceIdentity.generate() }
        let connectionCount = (n + devicesPerConnection - 1) / devicesPerConnection
        let connections = try (0..<connectionCount).map { _ in try AggregatorConnection(to: endpoint) }
        let started = ContinuousClock.now
        let fleet = Fleet(
            stores: stores, identities: identities, connections: connections, devicesPerConnection: devicesPerConnection,
            policy: DevicePolicy(
                requiredThreatModel: scenario.threatModel, minimumCohort: 3, assumedDropout: min(scenario.dropout.total, 0.99),
                assumedCorruptFraction: scenario.graph.corruptFraction ?? 0),
            signedRounds: identities.map { _ in .inMemory() })
        let windows: [FeatureWindowReport]
        var apiReads = 0
        do {
            windows = try await withThrowingTaskGroup(of: Void.self) { runners in
                for c in connections { runners.addTask { try await c.run() } }
                defer {
                    for c in connections { c.close() }
                }
                let enrolmentTokens = tokens
                var deviceIndex: [String: Int] = [:]
                for d in 0..<n {
                    deviceIndex[try await fleet.device(d).enrol(token: enrolmentTokens[d])] = d
                }
                var reports: [FeatureWindowReport] = []
                for w in 0..<scenario.windows {
                    progress?("window \(w + 1)/\(scenario.windows)", w, scenario.windows)
                    reports.append(try await runWindow(
                        w, fleet: fleet, deviceIndex: deviceIndex, synthesis: synthesis, layout: layout,
                        aggregator: aggregator, api: api, clock: clock, apiReads: &apiReads))
                }
                apiReads += try await checkLatestAndExport(api: api, windows: reports)
                return reports
            }
        } catch {
            await aggregator.shutDown()
            await aggregator.store.close()
            throw error
        }
        let seconds = ContinuousClock.now - started
        await aggregator.shutDown()
        _ = try? await serving.value
        await aggregator.store.close()
        return FeatureSimulationReport(
            scenario: scenario, mode: "network", layout: layout, totalSeconds: seconds.seconds,
            connections: connectionCount, apiReads: apiReads, windows: windows)
    }

    /// The in-process aggregator: the scenario's feature set, rounds started on demand only.
    private func startAggregator(directory: String, token: String, clock: SimulatedClock) async throws -> Aggregator {
        var configuration = try NetworkSimulation.loopbackConfiguration(
            directory: directory, tls: true, devices: scenario.devices, prg: scenario.prg, threatModel: scenario.threatModel,
            dropout: scenario.dropout, corruptFraction: scenario.graph.corruptFraction)
        configuration.apiToken = token
        if let database { configuration.database = database }
        configuration.rounds.featureSet = scenario.featureSet
        configuration.rounds.windowSeconds = scenario.windowSeconds
        configuration.rounds.minimumReleaseCohort = scenario.minimumReleaseCohort
        // With differential privacy no round may finish below the survivors its noise is sized for.
        configuration.rounds.minimumCohort = max(3, scenario.featureSet.privacy?.minimumSurvivors ?? 3)
        configuration.rounds.maximumCohort = scenario.devices
        configuration.rounds.maximumConcurrentRounds = 1
        // Rounds start when the simulation asks over the API, with whoever waits then.
        configuration.rounds.gatherSeconds = 3600
        configuration.rounds.maximumWaitSeconds = 7200
        // Cohorts differ from round to round, so k and t are chosen per cohort.
        configuration.rounds.graph = scenario.graph.kind == "complete" ? "complete" : "auto"
        var logger = Logger(label: "veil.sim.aggregator")
        // Rounds that cannot start (too few devices left in a window) are reported, not logged.
        logger.logLevel = .critical
        return try await Aggregator(configuration: configuration, logger: logger, clock: { clock.now })
    }
}

/// The simulated devices: stores, identities and the connections they share.
struct Fleet: Sendable {
    let stores: [ObservationStore]
    let identities: [DeviceIdentity]
    let connections: [AggregatorConnection]
    let devicesPerConnection: Int
    /// The policy every device enforces (the scenario's planning assumptions).
    let policy: DevicePolicy
    /// Each device's ledger of rounds taken part in, kept across the windows of the run.
    let signedRounds: [SignedRoundLedger]

    func device(_ d: Int) -> VeilDevice {
        VeilDevice(identity: identities[d], policy: policy, signedRounds: signedRounds[d], connection: connections[d / devicesPerConnection])
    }
}

/// The aggregator's clock, moved by the simulation from window to window.
final class SimulatedClock: Sendable {
    private let time: Mutex<Date>

    init(_ start: Date) { time = Mutex(start) }

    var now: Date { time.withLock { $0 } }

    func set(_ date: Date) { time.withLock { $0 = date } }
}
