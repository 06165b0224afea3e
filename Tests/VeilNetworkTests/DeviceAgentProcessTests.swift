import Foundation
import Testing
import VeilAggregator
import VeilFeatures
import VeilProtocol
import VeilStore
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15: `veil-device` as its own process against `veil-aggregator serve` in its own process.
@Suite(.serialized) struct DeviceAgentProcessTests {
    /// The `veil-device` binary built with the tests.
    static var binary: String? {
        let path = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("veil-device").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            Issue.record("no veil-device binary at \(path): `swift build --build-tests` builds it with the tests")
            return nil
        }
        return path
    }

    /// Runs `veil-device arguments` to its end, feeding `input` on standard input.
    static func device(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String, error: String) {
        guard let binary else { throw ProcessError("no binary") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inPipe
        try process.run()
        if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try inPipe.fileHandleForWriting.close()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let error = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, error)
    }

    /// `veil-aggregator serve` over `files` for agents: rounds of exactly `cohort` devices at
    /// threshold 2, honest-but-curious, on the complete graph; stalled once at `pause` if named.
    static func aggregator(_ files: HarnessFiles, cohort: Int, pause: String? = nil) async throws -> (AggregatorProcess, SQLiteAggregatorStore) {
        var configuration = files.configuration
        configuration.rounds.minimumCohort = cohort
        configuration.rounds.maximumCohort = cohort
        configuration.rounds.threshold = 2
        configuration.rounds.threatModel = .honestButCurious
        configuration.rounds.expectedDropout = 1e-7
        try JSONEncoder().encode(configuration).write(to: URL(fileURLWithPath: files.configPath))
        let aggregator = try await AggregatorProcess(configPath: files.configPath, port: files.port, fault: nil, pause: pause, logPath: files.directory + "/aggregator.log")
        return (aggregator, try SQLiteAggregatorStore(path: configuration.database))
    }

    /// `veil-device enrol` over `state` at the aggregator of `files`, with the device policy the
    /// aggregator of ``aggregator(_:cohort:pause:)`` satisfies.
    static func enrol(_ state: String, at files: HarnessFiles, token: String) throws -> (status: Int32, output: String, error: String) {
        try device([
            "enrol", "--state", state, "--aggregator", "localhost:\(files.port)", "--ca", files.directory + "/tls/ca.pem", "--token", token,
            "--minimum-cohort", "3", "--assumed-dropout", "1e-7", "--threat-model", "honest-but-curious",
        ])
    }

    struct Status: Decodable {
        struct FollowedSet: Decodable { let name: String; let version: Int; let countedWindows: Int; let lastCountedWindow: Int?; let observations: Int }
        let deviceID: String
        let featureSets: [FollowedSet]
    }

    @Test func threeAgentsEnrolRecordAndAreCountedThroughARealAggregator() async throws {
        let files = try HarnessFiles(label: "agents", instance: "agents-test") { $0 + "/aggregator.sqlite" }
        defer { files.remove() }
        let (aggregator, store) = try await Self.aggregator(files, cohort: 3)
        defer { aggregator.kill() }

        // A closed window inside the aggregator's horizon: two hours ago.
        let now = Int(Date().timeIntervalSince1970)
        let window = FeatureSet.windowStart(of: now - 7200, windowSeconds: 3600)
        let at = "\(window + 60)"
        let states = (0..<3).map { files.directory + "/agent-\($0)" }
        for state in states {
            let enrol = try Self.enrol(state, at: files, token: try await store.createEnrolmentToken(lifetime: 600))
            #expect(enrol.status == 0 && enrol.output.hasPrefix("enrolled as dev-"), "\(enrol.error)")
            let again = try Self.device([
                "enrol", "--state", state, "--aggregator", "localhost:\(files.port)", "--ca", files.directory + "/tls/ca.pem", "--token", "used-or-not",
            ])
            #expect(again.status == 0 && again.output == enrol.output, "enrolling again at the same aggregator is a no-op")
            #expect((try FileManager.default.attributesOfItem(atPath: state)[.posixPermissions] as? Int) == 0o700)
        }
        // Observations: from the command line, and as JSON Lines with one bad line among them.
        #expect(try Self.device(["record", "--state", states[0], "reading", "40", "--at", at]).status == 0)
        #expect(try Self.device(["record", "--state", states[0], "events", "--events", "2", "--at", at]).status == 0)
        let lines = """
            {"feature": "reading", "value": 60, "at": \(at)}
            {"feature": "nope", "value": 1, "at": \(at)}
            {"feature": "events", "events": 3, "at": \(at)}
            """
        let jsonl = try Self.device(["record", "--state", states[1], "--jsonl"], input: lines)
        #expect(jsonl.status == 1 && jsonl.output.contains("stored 2 observations") && jsonl.error.contains("line 2: no followed feature set has a feature \"nope\""))
        #expect(try Self.device(["record", "--state", states[2], "reading", "80", "--at", at]).status == 0)
        let bad = try Self.device(["record", "--state", states[2], "reading", "--category", "x"])
        #expect(bad.status != 0 && bad.error.contains("observation refused"), "a category for a numeric feature: \(bad.error)")

        // Three daemons: one round counts all three in the window.
        let daemons = try states.map { state -> Process in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary!)
            process.arguments = ["run", "--state", state, "--refresh-seconds", "5", "--log-level", "warning"]
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            return process
        }
        defer { for d in daemons where d.isRunning { Glibc.kill(d.processIdentifier, SIGKILL) } }
        var counted = false
        for _ in 0..<300 where !counted {
            try await Task.sleep(for: .milliseconds(200))
            let statuses = try states.map { try JSONDecoder().decode(Status.self, from: Data(Self.device(["status", "--state", $0, "--json"]).output.utf8)) }
            counted = statuses.allSatisfy { $0.featureSets.first?.lastCountedWindow.map { $0 >= window } ?? false }
        }
        #expect(counted, "every agent heard its window counted: \(aggregator.log(tail: 20))")
        for d in daemons { d.terminate() }
        for d in daemons {
            d.waitUntilExit()
            #expect(d.terminationReason == .exit && d.terminationStatus == 0, "SIGTERM stops the agent cleanly")
        }
        let stored = try #require(try await store.storedWindows(of: CrashRecoveryTests.set, from: window, to: window + 1).first)
        let values = try FeatureLayout(CrashRecoveryTests.set).decode(stored.sum)
        #expect(stored.contributors == 3)
        #expect(values.values["events"] == .eventCount(count: 5, clipped: 0))
        guard case let .numeric(count, sum, _, _, _) = values.values["reading"] else { Issue.record("reading"); return }
        #expect(count == 3 && sum == 180)
        aggregator.terminate()
        _ = await aggregator.waitForExit(within: .seconds(30))
    }
}
