import Foundation
import Logging
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilProtocol
import VeilStore

/// Issue 13, item 3: `veil-aggregator serve` killed with SIGKILL at every fault point of a feature
/// round, restarted on the same store; real devices with their own observation stores; then the
/// invariants over both sides: every window a device believes counted is counted by the server,
/// no device is counted twice, the window's sum is the oracle's over exactly the devices the
/// server counted, and every device is eventually counted.
@Suite(.serialized) struct CrashRecoveryTests {
    static let set = FeatureSet(name: "crash", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
        Feature(name: "events", kind: .eventCount, maximumValuesPerDevice: 10),
        Feature(name: "reading", kind: .numeric(minimum: 0, maximum: 1000, precision: 1), maximumValuesPerDevice: 4),
    ])
    static let cohortSize = 8
    static let assumedDropout = 0.01
    static let windowSeconds = 3600

    /// What device `d` observed in `window`.
    static func events(_ d: Int) -> Int { d % 5 + 1 }
    static func reading(_ d: Int, _ window: Int) -> Double { Double(10 * (d + 1) + (window / windowSeconds) % 7) }

    /// The faults of one scenario: where the aggregator dies, and which devices vanish mid-round.
    struct Scenario: CustomTestStringConvertible, Sendable {
        let fault: String?
        let devicesLost: [Int: Phase]
        /// The fleet; devices 0..<8 take part first, the rest join the retries (so that the
        /// devices still waiting after the first round make whole cohorts of 8).
        var fleetSize = CrashRecoveryTests.cohortSize
        var testDescription: String {
            (fault.map { "kill -9 \($0)" } ?? "no aggregator crash") + (devicesLost.isEmpty ? "" : ", \(devicesLost.count) devices lost mid-round")
        }
    }

    static let scenarios: [Scenario] = [
        "after-round-start", "after-claim", "after-advertise-keys", "after-share-keys", "after-masked-input-collection",
        "before-round-commit", "after-round-commit", "after-round-ended",
    ].map { Scenario(fault: $0, devicesLost: [:]) } + [
        // Devices killed mid-round (their streams cut), once with the aggregator also killed.
        // Device 6's masked input is in the sum although it never hears so (it learns
        // ALREADY_COUNTED later); 4's is not, and it finishes its window with seven newcomers.
        Scenario(fault: nil, devicesLost: [4: .maskedInputCollection, 6: .unmasking], fleetSize: 15),
        Scenario(fault: "before-round-commit", devicesLost: [2: .maskedInputCollection]),
    ]

    @Test(arguments: scenarios)
    func onSQLite(_ scenario: Scenario) async throws {
        try await Self.run(scenario, backend: .sqlite)
    }

    @Test(arguments: scenarios)
    func onPostgreSQL(_ scenario: Scenario) async throws {
        try await Self.run(scenario, backend: .postgres)
    }

    /// The database itself restarted mid-round: the aggregator stalls at the end of
    /// MaskedInputCollection (a debug-build pause) while PostgreSQL restarts under it, then goes
    /// on with whatever its connections and lease allow. Devices never count twice and are all
    /// counted in the end.
    @Test func onPostgreSQLRestartedMidRound() async throws {
        try await Self.restartDatabaseMidRound()
    }

    static func restartDatabaseMidRound() async throws {
        guard let scratch = try await ScratchStore.make(.postgres) else { return }
        defer { Task { await scratch.remove() } }
        guard let restart = ProcessInfo.processInfo.environment["VEIL_TEST_POSTGRES_RESTART"] else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("VEIL_TEST_POSTGRES_RESTART is not set under CI") }
            return
        }
        let files = try HarnessFiles(label: "pgrestart", instance: "pg-restart") { _ in scratch.location }
        defer { files.remove() }
        let (directory, configPath, port, endpoint) = (files.directory, files.configPath, files.port, files.endpoint)
        let layout = try FeatureLayout(set)
        let policy = DevicePolicy(requiredThreatModel: .active, minimumCohort: 3, assumedDropout: assumedDropout)
        let process = try await AggregatorProcess(
            configPath: configPath, port: port, fault: nil, pause: "after-masked-input-collection", logPath: directory + "/aggregator.log")
        defer { process.kill() }
        let store = try await scratch.open()
        defer { Task { await store.close() } }
        let stores = try (0..<cohortSize).map {
            try ObservationStore(path: directory + "/device-\($0).sqlite", layout: layout, windowSeconds: windowSeconds, retention: 7 * 86_400)
        }
        let identities = (0..<cohortSize).map { _ in DeviceIdentity.generate() }
        try await withAggregatorConnection(to: endpoint) { connection in
            var deviceIDs: [String] = []
            for identity in identities {
                let device = VeilDevice(identity: identity, policy: policy, signedRounds: .inMemory(), connection: connection, logger: quietDevice)
                deviceIDs.append(try await device.enrol(token: try await store.createEnrolmentToken(lifetime: 3600)))
            }
            func attempts() async {
                await withTaskGroup(of: Void.self) { group in
                    for d in 0..<cohortSize {
                        group.addTask {
                            await attempt(d, identity: identities[d], store: stores[d], policy: policy, via: connection, deadline: .seconds(40))
                        }
                    }
                }
            }
            let first = Task { await attempts() }
            // Restart PostgreSQL while the aggregator is stalled mid-round.
            let deadline = ContinuousClock.now + .seconds(60)
            while !process.log(tail: 50).contains("pausing 4 s"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(process.log(tail: 50).contains("pausing 4 s"), "the round must reach its pause: \(process.log(tail: 10))")
            // system(3), not Foundation's Process: the server it starts outlives the command and
            // kept Process from ever reporting the command's exit here.
            let status = system(restart + " >/dev/null 2>&1")
            #expect(status == 0, "\(restart) failed: \(status)")
            await first.value
            for _ in 0..<6 {
                let window = latestClosedWindow()
                // Devices that sent their input in a round they never heard the end of have spent
                // the window; the others keep taking part while they can still form a cohort.
                let open = try stores.filter { try !$0.isCounted(window: window) && !$0.isSpent(window: window) }
                if open.count < cohortSize { break }
                try await Task.sleep(for: .seconds(1))
                await attempts()
            }
            let reopened = try await scratch.open()
            defer { Task { await reopened.close() } }
            try await checkInvariants(stores: stores, deviceIDs: deviceIDs, store: reopened, context: "PostgreSQL restarted mid-round",
                                      expectedRecovery: nil, log: process)
        }
        process.terminate()
        #expect(await process.waitForExit(within: .seconds(30))?.status == 0, "the aggregator outlives its database's restart: \(process.log(tail: 10))")
    }

    static func run(_ scenario: Scenario, backend: StoreBackend) async throws {
        guard let scratch = try await ScratchStore.make(backend) else { return }
        defer { Task { await scratch.remove() } }
        let files = try HarnessFiles(label: "crash", instance: "crash-harness") { directory in
            backend == .sqlite ? directory + "/aggregator.sqlite" : scratch.location
        }
        defer { files.remove() }
        let (directory, configPath, port, endpoint) = (files.directory, files.configPath, files.port, files.endpoint)
        let layout = try FeatureLayout(set)
        let policy = DevicePolicy(requiredThreatModel: files.configuration.rounds.threatModel, minimumCohort: 3, assumedDropout: assumedDropout)

        // The first process, armed to die at the scenario's fault point.
        let first = try await AggregatorProcess(configPath: configPath, port: port, fault: scenario.fault, logPath: directory + "/first.log")
        defer { first.kill() }
        let store = backend == .sqlite ? try SQLiteAggregatorStore(path: files.configuration.database) : try await scratch.open()
        defer { Task { await store.close() } }
        let fleetSize = scenario.fleetSize
        let stores = try (0..<fleetSize).map {
            try ObservationStore(path: directory + "/device-\($0).sqlite", layout: layout, windowSeconds: windowSeconds, retention: 7 * 86_400)
        }
        let identities = (0..<fleetSize).map { _ in DeviceIdentity.generate() }

        /// Every device of `participants` makes one ``attempt(_:identity:store:policy:via:losing:deadline:)``.
        @Sendable func roundOfAttempts(of participants: Range<Int>, losing lost: [Int: Phase], via connection: AggregatorConnection) async {
            await withTaskGroup(of: Void.self) { group in
                for d in participants {
                    group.addTask {
                        await attempt(d, identity: identities[d], store: stores[d], policy: policy, via: connection, losing: lost[d], deadline: .seconds(30))
                    }
                }
            }
        }

        let deviceIDs = try await withAggregatorConnection(to: endpoint) { connection in
            var ids: [String] = []
            for identity in identities {
                let device = VeilDevice(identity: identity, policy: policy, signedRounds: .inMemory(), connection: connection, logger: quietDevice)
                ids.append(try await device.enrol(token: try await store.createEnrolmentToken(lifetime: 3600)))
            }
            await roundOfAttempts(of: 0..<cohortSize, losing: scenario.devicesLost, via: connection)
            return ids
        }
        if let fault = scenario.fault {
            let exit = await first.waitForExit(within: .seconds(60))
            #expect(exit?.reason == .uncaughtSignal && exit?.status == SIGKILL, "the aggregator must die at \(fault): \(first.log(tail: 10))")
        } else {
            first.terminate()
            #expect(await first.waitForExit(within: .seconds(30))?.status == 0, "a graceful shutdown exits cleanly")
        }

        // The same store, a new process, the devices' agents reconnecting: they keep taking part
        // until each window is counted.
        let second = try await AggregatorProcess(configPath: configPath, port: port, fault: nil, logPath: directory + "/second.log")
        defer { second.kill() }
        try await withAggregatorConnection(to: endpoint) { connection in
            for _ in 0..<6 {
                let window = latestClosedWindow()
                // Devices that sent their input in a round they never heard the end of have spent
                // the window; the others keep taking part while they can still form a cohort.
                let open = try stores.filter { try !$0.isCounted(window: window) && !$0.isSpent(window: window) }
                if open.count < cohortSize { break }
                await roundOfAttempts(of: 0..<fleetSize, losing: [:], via: connection)
            }
        }
        let recovery = scenario.fault.map { ["after-round-commit", "after-round-ended"].contains($0) ? nil : RoundRecord.instanceStoppedReason } ?? nil
        try await checkInvariants(stores: stores, deviceIDs: deviceIDs, store: store, context: scenario.testDescription,
                                  expectedRecovery: recovery, log: second)
        second.terminate()
        #expect(await second.waitForExit(within: .seconds(30))?.status == 0, "SIGTERM stops the restarted aggregator cleanly: \(second.log(tail: 10))")
    }

    /// The configuration every harness process runs: feature rounds of `set` in hour windows,
    /// cohorts of 3...8, 5-second phases (so 5-second leases).
    static func configuration(port: Int, tls: DevelopmentCertificates.Paths, database: String, instance: String) -> AggregatorConfiguration {
        var configuration = AggregatorConfiguration()
        configuration.listen = .init(host: "127.0.0.1", port: port)
        // Ports of their own (a config file cannot say "off" by omission: an absent key is the default port).
        configuration.httpListen = .init(host: "127.0.0.1", port: (try? AggregatorProcess.freePort()) ?? 0)
        configuration.apiListen = .init(host: "127.0.0.1", port: (try? AggregatorProcess.freePort()) ?? 0)
        configuration.tlsCertificatePath = tls.serverCertificate
        configuration.tlsPrivateKeyPath = tls.serverPrivateKey
        configuration.database = database
        configuration.instance = instance
        configuration.rounds.featureSet = set
        configuration.rounds.windowSeconds = windowSeconds
        configuration.rounds.minimumReleaseCohort = 10
        configuration.rounds.maximumCohort = cohortSize
        configuration.rounds.graph = "complete"
        // Every round has exactly 8 devices and threshold 5 (the parameter finder has no safe
        // threshold for the smallest cohorts), so scenarios keep the waiting devices a multiple of 8.
        configuration.rounds.minimumCohort = cohortSize
        configuration.rounds.threshold = 5
        configuration.rounds.expectedDropout = assumedDropout
        configuration.rounds.gatherSeconds = 0.5
        configuration.rounds.phaseTimeoutSeconds = 5
        return configuration
    }

    /// The four invariants, over the device stores and the aggregator's store.
    static func checkInvariants(
        stores: [ObservationStore], deviceIDs: [String], store: any AggregatorStore, context: String, expectedRecovery: String?, log: AggregatorProcess
    ) async throws {
        let latest = latestClosedWindow()
        // The test may have crossed a window boundary: check the window before too.
        for window in [latest - windowSeconds, latest] {
            var serverCounted: [Int] = []
            for d in stores.indices {
                let round = try await store.countingRound(of: deviceIDs[d], in: set, windowStart: window)
                if try stores[d].isCounted(window: window) {
                    #expect(round != nil, "device \(d) believes window \(window) counted; the server does not (\(context))")
                }
                if round != nil { serverCounted.append(d) }
            }
            let stored = try await store.storedWindows(of: set, from: window, to: window + 1).first
            #expect((stored?.contributors ?? 0) == serverCounted.count, "each counted device is in the window's sum exactly once (\(context))")
            if let stored {
                let values = try FeatureLayout(set).decode(stored.sum)
                let expectedEvents = UInt64(serverCounted.map { events($0) }.reduce(0, +))
                #expect(values.values["events"] == .eventCount(count: expectedEvents, clipped: 0))
                guard case let .numeric(count, sum, _, _, _) = values.values["reading"] else { Issue.record("reading"); continue }
                #expect(count == UInt64(serverCounted.count) && sum == serverCounted.map { reading($0, window) }.reduce(0, +),
                        "the window's sum is the oracle's over the devices the server counted (\(context))")
            }
        }
        // Every device is eventually counted in the window that is open for it now, unless it
        // sent its masked input in a round whose end it never heard: then the window is spent on
        // the device (SPEC.md §12.1), counted or not by the aggregator, and never offered again.
        // Devices neither counted nor spent keep the window pending; they are left only when too
        // few of them remain to form a cohort.
        let open = try stores.indices.filter { try !stores[$0].isCounted(window: latest) && !stores[$0].isSpent(window: latest) }
        #expect(open.count < cohortSize, "devices \(open) could still form a cohort but were not counted (\(context)): \(log.log(tail: 15))")
        for d in open {
            #expect(try stores[d].pendingWindows(now: Date()).contains(latest), "device \(d) lost its window (\(context))")
        }
        // Nothing is left running: the dead process's round was recovered, not forgotten.
        let history = try await store.recentRounds(limit: 100)
        #expect(!history.contains { $0.outcome == RoundRecord.running }, "a round left running: \(history)")
        if let expectedRecovery {
            #expect(history.contains { $0.reason == expectedRecovery }, "the killed round must be ended (\(context)): \(history)")
        }
    }

    /// Device `d` takes part in one round for the latest closed window (the aggregator's real
    /// clock decides it), unless its store already counts that window; it first records its
    /// observations of the window if it has none. Failures (the aggregator died under the
    /// stream, the deadline passed) leave the window pending, which is what the invariants check.
    static func attempt(
        _ d: Int, identity: DeviceIdentity, store: ObservationStore, policy: DevicePolicy, via connection: AggregatorConnection,
        losing phase: Phase? = nil, deadline: Duration
    ) async {
        let device = VeilDevice(identity: identity, policy: policy, signedRounds: .inMemory(), connection: connection, logger: quietDevice)
        do {
            let window = latestClosedWindow()
            guard try !store.isCounted(window: window), try !store.isSpent(window: window) else { return }
            if try !store.pendingWindows(now: Date()).contains(window) { try record(d, window, into: store) }
            try await withDeadline(deadline) {
                _ = try await device.participateInFeatureRound(store: store, options: ParticipationOptions(disconnectBefore: phase))
            }
        } catch {}
    }

    /// The harness devices' logger: silent.
    static let quietDevice = Logger(label: "veil.test.device", factory: { _ in SwiftLogNoOpLogHandler() })

    static func latestClosedWindow() -> Int {
        let now = Int(Date().timeIntervalSince1970)
        return FeatureSet.windowStart(of: now, windowSeconds: windowSeconds) - windowSeconds
    }

    static func record(_ d: Int, _ window: Int, into store: ObservationStore) throws {
        let at = Date(timeIntervalSince1970: Double(window + 60 + d))
        try store.recordEvents(feature: "events", count: events(d), at: at)
        try store.record(feature: "reading", value: reading(d, window), at: at)
    }
}

/// Runs `body`, cancelling it after `limit` (a device left waiting for a cohort that cannot form
/// gives up, as an edge agent's own deadline would make it).
func withDeadline(_ limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: limit) }
        try await group.next()
        group.cancelAll()
    }
}

/// The files one harness aggregator runs from: a scratch directory with development
/// certificates, a free port, and ``CrashRecoveryTests/configuration(port:tls:database:instance:)``
/// written as JSON for `veil-aggregator serve --config`.
struct HarnessFiles {
    let directory: String
    let configPath: String
    let port: Int
    let endpoint: AggregatorEndpoint
    let configuration: AggregatorConfiguration

    /// `database` gives the store's location from the directory.
    init(label: String, instance: String, database: (String) -> String) throws {
        directory = NSTemporaryDirectory() + "veil-\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tls = try DevelopmentCertificates.write(to: directory + "/tls")
        port = try AggregatorProcess.freePort()
        configuration = CrashRecoveryTests.configuration(port: port, tls: tls, database: database(directory), instance: instance)
        configPath = directory + "/aggregator.json"
        try JSONEncoder().encode(configuration).write(to: URL(fileURLWithPath: configPath))
        endpoint = AggregatorEndpoint(host: "localhost", port: port, security: .tls(caCertificatePath: tls.caCertificate))
    }

    /// Deletes the directory.
    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
