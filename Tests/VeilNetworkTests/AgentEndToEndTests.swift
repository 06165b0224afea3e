import Foundation
import Testing
import VeilAggregator
import VeilFeatures
import VeilProtocol
import VeilStore
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15's end-to-end test: a real `veil-aggregator serve` and four agents in their own
/// processes, fed through the three interfaces a node's software uses (the CLI, the ingest socket
/// from Python, the C ABI from a C program that also runs the round loop), one of them killed
/// with SIGKILL in the middle of a round and restarted. Four, not three: at n = 3 and t = 2 a
/// dropout after ShareKeys leaves a survivor with one answering neighbour, and the round aborts
/// (SPEC.md §7), which would hide what the kill does to the count.
@Suite(.serialized) struct AgentEndToEndTests {
    /// The C program of agent 2: records through the C ABI (including a batch refused as a
    /// whole), runs the round loop on the library's thread until standard input closes, then
    /// prints its status.
    static let cProgram = """
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include "veil_device.h"
        int main(int argc, char **argv) {
            veil_device *d = NULL;
            char line[512];
            if (argc != 4 || veil_device_open(argv[1], &d) != VEIL_OK) return 10;
            double w1 = atof(argv[2]);
            if (veil_device_record_value(d, "reading", 80.0, w1) != VEIL_OK) { fprintf(stderr, "%s\\n", veil_device_last_error(d)); return 11; }
            if (veil_device_record_events(d, "events", 1, w1) != VEIL_OK) return 12;
            if (veil_device_record_value(d, "reading", 1.0 / 0.0, w1) != VEIL_ERROR_OBSERVATION) return 13;
            snprintf(line, sizeof line, "{\\"feature\\": \\"reading\\", \\"value\\": 30, \\"at\\": %s}\\n{\\"feature\\": \\"reading\\", \\"value\\": \\"x\\"}\\n", argv[3]);
            if (veil_device_record_json(d, line) != VEIL_ERROR_OBSERVATION || strstr(veil_device_last_error(d), "line 2") == NULL) return 14;
            snprintf(line, sizeof line, "{\\"feature\\": \\"reading\\", \\"value\\": 30, \\"at\\": %s}\\n", argv[3]);
            if (veil_device_record_json(d, line) != VEIL_OK) return 15;
            if (veil_device_start(d) != VEIL_OK) { fprintf(stderr, "%s\\n", veil_device_last_error(d)); return 16; }
            printf("running\\n");
            fflush(stdout);
            while (fgets(line, sizeof line, stdin) != NULL) {}
            if (veil_device_stop(d) != VEIL_OK) return 17;
            char *status = NULL;
            if (veil_device_status_json(d, &status) != VEIL_OK) return 18;
            printf("%s\\n", status);
            veil_device_free_string(status);
            veil_device_close(d);
            return 0;
        }
        """

    /// The Python client of `Protocols/device-ingest.md`, taken from the document itself (its
    /// example call dropped), pointed at `sys.argv[1]`, then agent 1's observations.
    static func pythonClient() throws -> String {
        let document = try String(contentsOfFile: CABITests.headers + "/../../Protocols/device-ingest.md", encoding: .utf8)
        guard let start = document.range(of: "```python\n"), let end = document.range(of: "```", range: start.upperBound..<document.endIndex) else {
            throw ProcessError("device-ingest.md has no Python example")
        }
        let client = document[start.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("record(") }.joined(separator: "\n")
            .replacingOccurrences(of: "\"/var/lib/veil-device/ingest.sock\"", with: "sys.argv[1]")
        return "import sys\n" + client + """

            w1, w2 = int(sys.argv[2]), int(sys.argv[3])
            try:
                record({"feature": "reading", "value": 20, "at": w2}, {"feature": "unknown", "value": 1, "at": w2})
                sys.exit("a batch naming an unknown feature was accepted")
            except ValueError as refusal:
                print("refused:", refusal)
            print(record({"feature": "reading", "value": 60, "at": w1}, {"feature": "events", "events": 3, "at": w1}, {"feature": "reading", "value": 20, "at": w2}))
            """
    }

    /// A started `veil-device run` over `state`, its standard error into `log`.
    static func daemon(_ state: String, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DeviceAgentProcessTests.binary!)
        process.arguments = ["run", "--state", state, "--refresh-seconds", "5", "--log-level", "info"]
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardError = handle
        process.standardOutput = handle
        try process.run()
        return process
    }

    static func status(_ state: String) throws -> DeviceAgentProcessTests.Status {
        try JSONDecoder().decode(DeviceAgentProcessTests.Status.self, from: Data(DeviceAgentProcessTests.device(["status", "--state", state, "--json"]).output.utf8))
    }

    @Test func socketCABIAndCLIFeedOneWindowAndAnAgentKilledMidRoundIsCountedOnce() async throws {
        guard DeviceAgentProcessTests.binary != nil else { return }
        let files = try HarnessFiles(label: "e2e", instance: "e2e-test") { $0 + "/aggregator.sqlite" }
        defer { files.remove() }
        // The first round stalls 4 s once every masked input is in: agent 0 is killed then.
        let (aggregator, store) = try await DeviceAgentProcessTests.aggregator(files, cohort: 4, pause: "after-masked-input-collection")
        defer { aggregator.kill() }

        // The two latest closed windows, so that the rounds are theirs (a device offers every closed
        // window from its first observation on). Not within a minute of the hour turning, which
        // would close a third, empty window during the test.
        let untilTheHour = 3600 - Int(Date().timeIntervalSince1970) % 3600
        if untilTheHour < 60 { try await Task.sleep(for: .seconds(untilTheHour + 1)) }
        let w2 = FeatureSet.windowStart(of: Int(Date().timeIntervalSince1970), windowSeconds: 3600) - 3600, w1 = w2 - 3600
        let states = (0..<4).map { files.directory + "/agent-\($0)" }
        for state in states {
            let enrol = try DeviceAgentProcessTests.enrol(state, at: files, token: try await store.createEnrolmentToken(lifetime: 600))
            try #require(enrol.status == 0, "\(enrol.error)")
        }
        var processes: [Process] = []
        defer { for p in processes where p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL) } }

        // Agent 0: the command line.
        for arguments in [["reading", "40", "--at", "\(w1 + 60)"], ["events", "--events", "2", "--at", "\(w1 + 60)"], ["reading", "10", "--at", "\(w2 + 60)"]] {
            let recorded = try DeviceAgentProcessTests.device(["record", "--state", states[0]] + arguments)
            #expect(recorded.status == 0, "\(recorded.error)")
        }
        #expect(try DeviceAgentProcessTests.device(["record", "--state", states[0], "events", "--events", "-1"]).status != 0, "events below 0")
        // Agent 3: JSON Lines on the command line's standard input; the bad line alone is refused.
        let lines = ["{\"feature\": \"reading\", \"value\": 100, \"at\": \(w1 + 240)}", "{\"feature\": \"reading\", \"value\": 1e999}",
                     "{\"feature\": \"events\", \"events\": 4, \"at\": \(w1 + 240)}", "{\"feature\": \"reading\", \"value\": 50, \"at\": \(w2 + 240)}"]
        let jsonl = try DeviceAgentProcessTests.device(["record", "--state", states[3], "--jsonl"], input: lines.joined(separator: "\n"))
        #expect(jsonl.status == 1 && jsonl.output.contains("stored 3 observations") && jsonl.error.contains("line 2:"), "\(jsonl.output) \(jsonl.error)")
        let agent3 = try Self.daemon(states[3], log: files.directory + "/agent-3.log")
        processes.append(agent3)

        // Agent 1: its daemon's ingest socket, from Python with the documented client.
        let agent1 = try Self.daemon(states[1], log: files.directory + "/agent-1.log")
        processes.append(agent1)
        let socket = states[1] + "/ingest.sock"
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(50)) }
        let script = files.directory + "/ingest.py"
        try Self.pythonClient().write(toFile: script, atomically: true, encoding: .utf8)
        let python = try CABITests.run("python3", [script, socket, "\(w1 + 120)", "\(w2 + 120)"])
        #expect(python.status == 0 && python.output.hasSuffix("\n3\n"), "\(python.output)")
        #expect(python.output.contains("refused: line 2: no followed feature set has a feature \"unknown\""), "\(python.output)")
        let second = try DeviceAgentProcessTests.device(["run", "--state", states[1]])
        #expect(second.status != 0 && second.error.contains("already running"), "a second daemon on one state directory is refused: \(second.error)")

        // Agent 2: a C program through the library, which also runs the round loop.
        let source = files.directory + "/agent.c", binary = files.directory + "/agent"
        try Self.cProgram.write(toFile: source, atomically: true, encoding: .utf8)
        let compiled = try CABITests.run("cc", [
            "-Wall", "-Werror", "-I", CABITests.headers, source, "-o", binary, "-L", CABITests.products.path, "-lVeilDeviceC", "-Wl,-rpath,\(CABITests.products.path)",
        ])
        try #require(compiled.status == 0, "\(compiled.output)")
        let agent2 = Process()
        agent2.executableURL = URL(fileURLWithPath: binary)
        agent2.arguments = [states[2], "\(w1 + 180)", "\(w2 + 180)"]
        let agent2Input = Pipe(), agent2Output = Pipe()
        agent2.standardInput = agent2Input
        agent2.standardOutput = agent2Output
        agent2.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try agent2.run()
        processes.append(agent2)

        // Agent 0's daemon completes the cohort; SIGKILL it while the first round is stalled
        // with its masked input already summed.
        var agent0 = try Self.daemon(states[0], log: files.directory + "/agent-0.log")
        processes.append(agent0)
        var paused = false
        for _ in 0..<1200 where !paused {
            try await Task.sleep(for: .milliseconds(25))
            paused = aggregator.log(tail: 400).contains("after-masked-input-collection reached; pausing")
        }
        try #require(paused, "the first round reached its masked inputs: \(aggregator.log(tail: 30))")
        Glibc.kill(agent0.processIdentifier, SIGKILL)
        agent0.waitUntilExit()
        #expect(agent0.terminationReason == .uncaughtSignal)
        #expect(try Self.status(states[0]).featureSets.first?.observations == 3, "nothing agent 0 recorded is lost")
        agent0 = try Self.daemon(states[0], log: files.directory + "/agent-0.log")
        processes.append(agent0)

        // Both windows counted, each device once in each.
        var windows: [StoredWindow] = []
        for _ in 0..<600 {
            windows = try await store.storedWindows(of: CrashRecoveryTests.set, from: w1, to: w2 + 1)
            if windows.count == 2 && windows.allSatisfy({ $0.contributors >= 4 }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        // Long enough for a second round of a window to show, if one were wrongly run.
        try await Task.sleep(for: .seconds(3))
        windows = try await store.storedWindows(of: CrashRecoveryTests.set, from: w1, to: w2 + 1)
        let layout = try FeatureLayout(CrashRecoveryTests.set)
        let first = try #require(windows.first { $0.windowStart == w1 }, "window 1 counted: \(aggregator.log(tail: 30))")
        let second2 = try #require(windows.first { $0.windowStart == w2 }, "window 2 counted: \(aggregator.log(tail: 30))")
        #expect(first.contributors == 4 && second2.contributors == 4, "each agent counted once in each window, the killed one included")
        // One round a window: the killed agent's input was counted in the round it was killed in,
        // not again in a later one.
        let log = aggregator.log(tail: 2000)
        #expect(log.components(separatedBy: "round finished").count - 1 == 2 && !log.contains("round aborted"), "\(log)")
        let values1 = try layout.decode(first.sum), values2 = try layout.decode(second2.sum)
        #expect(values1.values["events"] == .eventCount(count: 10, clipped: 0))
        if case let .numeric(count, sum, _, _, _) = values1.values["reading"] { #expect(count == 4 && sum == 280) } else { Issue.record("reading in window 1") }
        if case let .numeric(count, sum, _, _, _) = values2.values["reading"] { #expect(count == 4 && sum == 110) } else { Issue.record("reading in window 2") }

        // Everyone stops cleanly; the agents' own view agrees.
        try agent2Input.fileHandleForWriting.close()
        let cStatus = String(decoding: agent2Output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        agent2.waitUntilExit()
        #expect(agent2.terminationStatus == 0 && cStatus.hasPrefix("running\n") && cStatus.contains("\"observations\":3"), "the C program: \(agent2.terminationStatus) \(cStatus)")
        for daemon in [agent0, agent1, agent3] {
            daemon.terminate()
            daemon.waitUntilExit()
            #expect(daemon.terminationReason == .exit && daemon.terminationStatus == 0, "SIGTERM stops the agent cleanly")
        }
        for state in states {
            let followed = try #require(try Self.status(state).featureSets.first)
            #expect(followed.observations == 3, "\(state): every observation is still held")
        }
        aggregator.terminate()
        _ = await aggregator.waitForExit(within: .seconds(30))
    }
}
