import Foundation
import Logging
import Synchronization
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilNetworkSimulation
import VeilFeatures
import VeilProtocol
import VeilWire
import VeilStore

/// A real aggregator on loopback (TLS with fresh development certificates, SQLite in a temporary
/// directory, ports chosen by the system) and helpers to enrol and run devices against it.
final class NetworkHarness: Sendable {
    let directory: String
    let aggregator: Aggregator
    let endpoint: AggregatorEndpoint
    let serving: Task<Void, any Error>
    /// The policy the harness's devices enforce: the aggregator's own planning assumptions, as an
    /// operator would set them fleet-wide, with cohorts of 3 allowed.
    let devicePolicy: DevicePolicy
    /// The aggregator's fixed clock reading, which the harness's devices share.
    let fixedTime: Date?

    /// Starts an aggregator with `configure` applied to a test configuration.
    /// Starts an aggregator whose clock reads `fixedTime` when given.
    /// With `failingCommits` above zero or a `commitDelay`, the aggregator's SQLite store is
    /// wrapped in a ``FaultyStore`` whose first that many round commits fail and whose every
    /// commit is held that long.
    init(tls: Bool = true, fixedTime: Date? = nil, failingCommits: Int = 0, commitDelay: Duration = .zero, audit: AuditLog = AuditLog(),
         configure: (inout AggregatorConfiguration) -> Void = { _ in }) async throws {
        directory = NSTemporaryDirectory() + "veil-net-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.fixedTime = fixedTime
        var configuration = AggregatorConfiguration()
        configuration.listen = .init(host: "127.0.0.1", port: 0)
        configuration.httpListen = .init(host: "127.0.0.1", port: 0)
        configuration.apiListen = .init(host: "127.0.0.1", port: 0)
        configuration.database = directory + "/aggregator.sqlite"
        var caPath = ""
        if tls {
            let paths = try DevelopmentCertificates.write(to: directory + "/tls")
            configuration.tlsCertificatePath = paths.serverCertificate
            configuration.tlsPrivateKeyPath = paths.serverPrivateKey
            caPath = paths.caCertificate
        } else {
            configuration.insecurePlaintext = true
        }
        configuration.rounds.dimension = 16
        configuration.rounds.bitWidth = 32
        configuration.rounds.minimumCohort = 3
        configuration.rounds.maximumCohort = 8
        configuration.rounds.gatherSeconds = 0.5
        configuration.rounds.phaseTimeoutSeconds = 10
        configuration.rounds.graph = "complete"
        configure(&configuration)
        devicePolicy = DevicePolicy(
            requiredThreatModel: configuration.rounds.threatModel, minimumCohort: 3,
            assumedDropout: configuration.rounds.expectedDropout, assumedCorruptFraction: configuration.rounds.corruptFraction)
        var logger = Logger(label: "veil.test.aggregator")
        logger.logLevel = ProcessInfo.processInfo.environment["VEIL_TEST_LOG"] == nil ? .critical : .debug
        let aggregator: Aggregator
        if failingCommits > 0 || commitDelay > .zero {
            let store = FaultyStore(try SQLiteAggregatorStore(path: configuration.database), failingCommits: failingCommits, commitDelay: commitDelay)
            aggregator = try await Aggregator(configuration: configuration, store: store, logger: logger, audit: audit, clock: { fixedTime ?? Date() })
        } else {
            aggregator = try await Aggregator(configuration: configuration, logger: logger, audit: audit, clock: { fixedTime ?? Date() })
        }
        self.aggregator = aggregator
        serving = Task { try await aggregator.run() }
        await aggregator.waitUntilListening()
        endpoint = AggregatorEndpoint(
            host: "localhost", port: aggregator.grpcPort!,
            security: tls ? .tls(caCertificatePath: caPath) : .insecurePlaintext)
    }

    /// A device with the harness's policy and an in-memory round ledger.
    func device(identity: DeviceIdentity, connection: AggregatorConnection) -> VeilDevice {
        let fixedTime = fixedTime
        return VeilDevice(identity: identity, policy: devicePolicy, signedRounds: .inMemory(), connection: connection, clock: { fixedTime ?? Date() })
    }

    /// Stops the aggregator and removes its files.
    func stop() async {
        await aggregator.shutDown()
        _ = try? await serving.value
        await aggregator.store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Shuts down and reports whether serving ended within `limit` (without waiting longer).
    func stopsWithin(_ limit: Duration) async -> Bool {
        let stopped = Flag()
        let serving = self.serving
        Task {
            await aggregator.shutDown()
            _ = try? await serving.value
            stopped.set()
        }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if stopped.isSet { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return stopped.isSet
    }

    /// `count` fresh identities, each enrolled with its own token.
    func enrolledIdentities(_ count: Int, connection: AggregatorConnection) async throws -> [DeviceIdentity] {
        var identities: [DeviceIdentity] = []
        for _ in 0..<count {
            let identity = DeviceIdentity.generate()
            let token = try await aggregator.store.createEnrolmentToken(lifetime: 600)
            _ = try await device(identity: identity, connection: connection).enrol(token: token)
            identities.append(identity)
        }
        return identities
    }

    /// Device `d`'s test input: element j is (d + 1) * 1000 + j.
    static func input(device d: Int, _ assignment: RoundAssignmentContent) throws -> ModularVector {
        try ModularVector(
            values: (0..<assignment.configuration.dimension).map { UInt64((d + 1) * 1000 + $0) },
            bitWidth: assignment.configuration.bitWidth)
    }

    /// The sum the round must output: the inputs of the devices in `survivors` (round indices),
    /// mapped back to test devices through each participation's index.
    static func expectedSum(survivors: [UInt32], participations: [Int: RoundParticipation], configuration: RoundConfiguration) throws -> [UInt64] {
        var deviceAt: [UInt32: Int] = [:]
        for (d, p) in participations { if let i = p.deviceIndex { deviceAt[i] = d } }
        let mask: UInt64 = configuration.bitWidth == 64 ? .max : (1 << UInt64(configuration.bitWidth)) - 1
        var sum = [UInt64](repeating: 0, count: configuration.dimension)
        for s in survivors {
            let d = deviceAt[s]!
            for j in 0..<configuration.dimension { sum[j] = (sum[j] &+ UInt64((d + 1) * 1000 + j)) & mask }
        }
        return sum
    }

    /// Fetches `path` from the metrics endpoint over plain HTTP.
    /// Calls the `/v1` API over HTTPS (the harness's CA pinned; plain HTTP without TLS).
    func api(_ method: String = "GET", _ path: String, token: String?, body: String? = nil) async throws -> APIConnection.Response {
        var caPath: String?
        if case let .tls(path) = endpoint.security { caPath = path }
        let connection = try APIConnection(port: aggregator.apiPort!, caCertificatePath: caPath)
        do {
            let response = try await connection.request(method, path, token: token, body: body)
            try await connection.close()
            return response
        } catch {
            try? await connection.close()
            throw error
        }
    }

    func scrape(_ path: String = "/metrics") async throws -> (status: Int, body: String) {
        let url = URL(string: "http://127.0.0.1:\(aggregator.httpPort!)\(path)")!
        let (data, response) = try await URLSession.shared.data(from: url)
        return ((response as! HTTPURLResponse).statusCode, String(decoding: data, as: UTF8.self))
    }
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

extension NetworkHarness {
    /// An aggregator running feature rounds of `set` in cohorts of exactly 8 with threshold 5,
    /// releasing every window, its clock 90 minutes after `window` starts, so that `window` (an
    /// hour) is the latest closed one.
    /// `now`, when given, replaces that clock reading.
    static func featureRounds(
        of set: FeatureSet, window: Int, now: Date? = nil, failingCommits: Int = 0, commitDelay: Duration = .zero,
        configure: @escaping (inout AggregatorConfiguration) -> Void = { _ in }
    ) async throws -> NetworkHarness {
        try await NetworkHarness(
            fixedTime: now ?? Date(timeIntervalSince1970: Double(window + 5400)), failingCommits: failingCommits, commitDelay: commitDelay
        ) { c in
            c.rounds.featureSet = set
            c.rounds.minimumReleaseCohort = 10
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
            configure(&c)
        }
    }

    /// Window `window` of `set` as counted so far: the store's running sum, decoded, which the API
    /// never serves (only releases), with its contributor and round counts.
    func countedWindow(of set: FeatureSet, window: Int) async throws -> (contributors: Int, rounds: Int, values: FeatureSetValues)? {
        guard let stored = try await aggregator.store.storedWindows(of: set, from: window, to: window + 1).first else { return nil }
        return (stored.contributors, stored.roundIDs.count, try FeatureLayout(set).decode(stored.sum))
    }

    /// `count` device observation stores in the harness's directory (named `prefix-d`), each
    /// holding one event of `feature` in the hour starting at `window`.
    func eventStores(_ count: Int, of set: FeatureSet, window: Int, feature: String = "crashes", prefix: String = "device") throws -> [ObservationStore] {
        try eventStores(count, of: set, windows: [window], feature: feature, prefix: prefix)
    }

    /// `count` device observation stores, each holding one event in each of `windows` (hours).
    func eventStores(_ count: Int, of set: FeatureSet, windows: [Int], feature: String = "crashes", prefix: String = "device") throws -> [ObservationStore] {
        let layout = try FeatureLayout(set)
        return try (0..<count).map { d in
            let store = try ObservationStore(path: directory + "/\(prefix)-\(d).sqlite", layout: layout, windowSeconds: 3600, retention: 86_400)
            for window in windows { try store.recordEvents(feature: feature, count: 1, at: Date(timeIntervalSince1970: Double(window + 60))) }
            return store
        }
    }
}
