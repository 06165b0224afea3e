import Foundation
import Logging
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilStore

/// Issue 13, M4 and M6: whether a cohort may run is read from the store when it forms, so a
/// retirement or a revocation made anywhere (another instance, the store itself, before a
/// restart) is honoured, and a revocation during a round keeps its sum out of the window.
@Suite(.serialized) struct AdmissionTests {
    static let set = FeatureSet(name: "fleet", version: 7, bitWidth: 48, maximumCohort: 1000, features: [
        Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
    ])
    static let window = 1_800_000_000

    static func harness() async throws -> NetworkHarness {
        try await NetworkHarness.featureRounds(of: set, window: window)
    }

    static func stores(_ harness: NetworkHarness, _ count: Int) throws -> [ObservationStore] {
        try harness.eventStores(count, of: set, window: window)
    }

    /// A device revoked while it waits in the room never takes part; the round forms without it.
    @Test func aDeviceRevokedWhileWaitingIsRefusedWhenTheCohortForms() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        let stores = try Self.stores(harness, 9)
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(9, connection: connection)
            let revokedID = try #require(try await harness.aggregator.store.status(of: identities[0].publicKey).activeID)
            let first = Task { try await harness.device(identity: identities[0], connection: connection).participateInFeatureRound(store: stores[0]) }
            while await harness.aggregator.waitingDeviceCount() < 1 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(try await harness.aggregator.store.revoke(deviceID: revokedID))
            let others = try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                for d in 1..<9 { group.addTask { try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d]) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(others.allSatisfy { $0.outcome == .counted }, "\(others.map(\.outcome))")
            await #expect(throws: DeviceError.self) { _ = try await first.value }
            if case let .failure(error as DeviceError) = await first.result, case let .rejected(code, _) = error {
                #expect(code.contains("permission"), "\(code)")
            }
            #expect(try !stores[0].isCounted(window: Self.window))
            #expect(try await harness.countedWindow(of: Self.set, window: Self.window)?.contributors == 8)
        }
    }

    /// A feature set retired in the store by another instance stops this instance's rounds.
    @Test func aFeatureSetRetiredInTheStoreStopsRoundsHere() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        let stores = try Self.stores(harness, 8)
        // Another instance sharing the store retires it (here: the store itself, not this API).
        #expect(try await harness.aggregator.store.retire(name: Self.set.name, version: Self.set.version))
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            let results = try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                for d in 0..<8 { group.addTask { try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d]) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for result in results {
                guard case .noRound = result.outcome else { Issue.record("a retired set ran a round: \(result.outcome)"); continue }
                #expect(result.reason.contains("retired"))
            }
            #expect(try await harness.aggregator.featureWindows(of: Self.set, from: Self.window, to: Self.window + 1).isEmpty)
        }
    }
}

extension DeviceStatus {
    /// The device id of an active device.
    var activeID: String? {
        if case let .active(id) = self { return id }
        return nil
    }
}

/// Issue 13, L1: a listener that cannot bind stops the start with an error naming it; before,
/// start-up waited forever for the HTTP port.
@Suite struct StartupTests {
    @Test(arguments: ["operations", "api"])
    func anHTTPListenerThatCannotBindFailsTheStart(_ listener: String) async throws {
        let (fd, port) = try AggregatorProcess.occupiedPort()
        defer { close(fd) }
        let directory = NSTemporaryDirectory() + "veil-bind-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = AggregatorConfiguration()
        configuration.insecurePlaintext = true
        configuration.listen = .init(host: "127.0.0.1", port: 0)
        configuration.httpListen = .init(host: "127.0.0.1", port: listener == "operations" ? port : 0)
        configuration.apiListen = .init(host: "127.0.0.1", port: listener == "api" ? port : 0)
        configuration.database = directory + "/aggregator.sqlite"
        let aggregator = try await Aggregator(configuration: configuration, logger: .init(label: "veil.test.bind", factory: { _ in SwiftLogNoOpLogHandler() }))
        let ended = Outcome()
        let serving = Task {
            do { try await aggregator.run(); await ended.set("returned") } catch { await ended.set("\(error)") }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        var result: String?
        while result == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            result = await ended.value
        }
        #expect(result?.contains("cannot serve the HTTP") == true && result?.contains("on 127.0.0.1:\(port):") == true, "\(result ?? "still starting after 20 s")")
        serving.cancel()
        await aggregator.store.close()
    }
}

/// How a task ended, readable without waiting for it.
actor Outcome {
    private(set) var value: String?
    func set(_ text: String) { value = text }
}

/// Issue 13, M5: unauthenticated enrolment is rate-limited before it reaches the store.
@Suite(.serialized) struct EnrolmentLimitTests {
    @Test func aFloodOfEnrolmentsIsRefusedBeforeTheStore() async throws {
        let harness = try await NetworkHarness { c in
            // One request now, then one every 100 s: the test cannot outrun it however slow the machine.
            c.enrolmentsPerSecond = 0.01
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
        }
        defer { Task { await harness.stop() } }
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            var codes: [String] = []
            for _ in 0..<6 {
                do {
                    _ = try await harness.device(identity: .generate(), connection: connection).enrol(token: "veil-enrol-not-a-token")
                } catch let DeviceError.rejected(code, _) {
                    codes.append(code)
                }
            }
            #expect(codes.count == 6)
            #expect(codes.first?.lowercased().contains("unauthenticated") == true, "the first reaches the store: \(codes)")
            #expect(codes.dropFirst().allSatisfy { $0.lowercased().contains("resource") }, "the rest are refused first: \(codes)")
            #expect(try await harness.scrape().body.contains("veil_rejected_devices_total{reason=\"enrolment-rate\"}"))
        }
    }
}
