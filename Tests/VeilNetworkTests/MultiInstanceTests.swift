import Foundation
import Logging
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilProtocol
import VeilStore

/// Issue 13, item 4: several `veil-aggregator serve` processes on one PostgreSQL database, the
/// devices spread across them; one instance is killed with SIGKILL mid-round and never comes
/// back; its devices finish their window on the surviving instance once the dead round's lease
/// expires, and the crash harness's invariants hold over the whole fleet.
@Suite(.serialized) struct MultiInstanceTests {
    @Test func devicesOfAKilledInstanceFinishTheirWindowOnAnother() async throws {
        guard let scratch = try await ScratchStore.make(.postgres) else { return }
        defer { Task { await scratch.remove() } }
        let directory = NSTemporaryDirectory() + "veil-multi-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let set = CrashRecoveryTests.set
        let layout = try FeatureLayout(set)
        let tls = try DevelopmentCertificates.write(to: directory + "/tls")
        let names = ["instance-a", "instance-b", "instance-c"]
        var ports: [Int] = []
        var processes: [AggregatorProcess] = []
        for (i, name) in names.enumerated() {
            let port = try AggregatorProcess.freePort()
            let path = directory + "/\(name).json"
            try JSONEncoder().encode(CrashRecoveryTests.configuration(port: port, tls: tls, database: scratch.location, instance: name))
                .write(to: URL(fileURLWithPath: path))
            // Instance a dies once its round's masked inputs are summed, before unmasking.
            processes.append(try await AggregatorProcess(
                configPath: path, port: port, fault: i == 0 ? "after-masked-input-collection" : nil, logPath: directory + "/\(name).log"))
            ports.append(port)
        }
        defer { for process in processes { process.kill() } }
        let store = try await scratch.open()
        defer { Task { await store.close() } }
        let fleet = 3 * CrashRecoveryTests.cohortSize
        let stores = try (0..<fleet).map {
            try ObservationStore(path: directory + "/device-\($0).sqlite", layout: layout, windowSeconds: CrashRecoveryTests.windowSeconds, retention: 7 * 86_400)
        }
        let identities = (0..<fleet).map { _ in DeviceIdentity.generate() }
        let policy = DevicePolicy(requiredThreatModel: .active, minimumCohort: 3, assumedDropout: CrashRecoveryTests.assumedDropout)
        let endpoints = ports.map { AggregatorEndpoint(host: "localhost", port: $0, security: .tls(caCertificatePath: tls.caCertificate)) }

        // Each device first talks to instance d / 8 (a, b or c); after that the devices still
        // pending go to b, then c, in turn, as a load balancer would send them to a live instance.
        try await withAggregatorConnection(to: endpoints[0]) { toA in
            try await withAggregatorConnection(to: endpoints[1]) { toB in
                try await withAggregatorConnection(to: endpoints[2]) { toC in
                    let connections = [toA, toB, toC]
                    var deviceIDs: [String] = []
                    for d in 0..<fleet {
                        let device = VeilDevice(identity: identities[d], policy: policy, signedRounds: .inMemory(), connection: toB, logger: CrashRecoveryTests.quietDevice)
                        deviceIDs.append(try await device.enrol(token: try await store.createEnrolmentToken(lifetime: 3600)))
                    }
                    func attempt(_ d: Int, via instance: Int) async {
                        await CrashRecoveryTests.attempt(
                            d, identity: identities[d], store: stores[d], policy: policy, via: connections[instance], deadline: .seconds(40))
                    }
                    await withTaskGroup(of: Void.self) { group in
                        for d in 0..<fleet { group.addTask { await attempt(d, via: d / CrashRecoveryTests.cohortSize) } }
                    }
                    let exit = await processes[0].waitForExit(within: .seconds(60))
                    #expect(exit?.reason == .uncaughtSignal && exit?.status == SIGKILL, "instance a must die mid-round: \(processes[0].log(tail: 10))")
                    for round in 0..<8 {
                        let window = CrashRecoveryTests.latestClosedWindow()
                        if try stores.allSatisfy({ try $0.isCounted(window: window) }) { break }
                        await withTaskGroup(of: Void.self) { group in
                            for d in 0..<fleet { group.addTask { await attempt(d, via: 1 + round % 2) } }
                        }
                    }
                    // The dead instance's round holds its claims only until its lease expires;
                    // a surviving instance's sweep then ends it as aborted (within two leases).
                    let deadline = ContinuousClock.now + .seconds(30)
                    while try await store.recentRounds(limit: 100).contains(where: { $0.outcome == RoundRecord.running }), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                    try await CrashRecoveryTests.checkInvariants(
                        stores: stores, deviceIDs: deviceIDs, store: store, context: "three instances, a killed",
                        expectedRecovery: RoundRecord.leaseExpiredReason, log: processes[1])
                }
            }
        }
        for process in processes.dropFirst() {
            process.terminate()
            #expect(await process.waitForExit(within: .seconds(30))?.status == 0, "a surviving instance stops cleanly: \(process.log(tail: 10))")
        }
    }
}
