import Foundation
import Logging
import Testing
import VeilAggregator
import VeilDevice
import VeilDeviceAgent
import VeilStore

/// Issue 15, item 4: the agent's C ABI (`Sources/VeilDeviceC/veil_device.h`), called from a C
/// program built with the system C compiler and from Python through ctypes.
@Suite(.serialized) struct CABITests {
    static let products = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    static let headers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/VeilDeviceC").path

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    static let program = """
        #include <stdio.h>
        #include <string.h>
        #include "veil_device.h"
        int main(int argc, char **argv) {
            veil_device *d = NULL;
            if (veil_device_open("/nonexistent/veil", &d) != VEIL_ERROR_STATE) return 10;
            if (veil_device_open(argv[1], &d) != VEIL_OK) return 11;
            if (veil_device_record_value(d, "reading", 40.0, 1800000060.0) != VEIL_OK) return 12;
            if (veil_device_record_events(d, "events", 2, 1800000060.0) != VEIL_OK) return 13;
            if (veil_device_record_json(d, "{\\"feature\\": \\"reading\\", \\"value\\": 41, \\"at\\": 1800000061}\\n") != VEIL_OK) return 14;
            if (veil_device_record_value(d, "nope", 1.0, 0) != VEIL_ERROR_OBSERVATION) return 15;
            if (strstr(veil_device_last_error(d), "nope") == NULL) return 16;
            if (veil_device_record_category(d, "reading", "x", 0) != VEIL_ERROR_OBSERVATION) return 17;
            if (veil_device_stop(d) != VEIL_ERROR_RUNNING) return 18;
            if (veil_device_start(d) != VEIL_OK || veil_device_start(d) != VEIL_ERROR_RUNNING || veil_device_stop(d) != VEIL_OK) return 19;
            char *status = NULL;
            if (veil_device_status_json(d, &status) != VEIL_OK || strstr(status, "\\"observations\\":3") == NULL) return 20;
            printf("%s\\n", status);
            veil_device_free_string(status);
            veil_device_close(d);
            return 0;
        }
        """

    static let python = """
        import ctypes, json, sys
        lib = ctypes.CDLL(sys.argv[1])
        lib.veil_device_last_error.restype = ctypes.c_char_p
        handle = ctypes.c_void_p()
        assert lib.veil_device_open(sys.argv[2].encode(), ctypes.byref(handle)) == 0
        assert lib.veil_device_record_events(handle, b"events", ctypes.c_int64(3), ctypes.c_double(1800000062.0)) == 0
        assert lib.veil_device_record_value(handle, b"events", ctypes.c_double(1.0), ctypes.c_double(0)) == 3
        print(lib.veil_device_last_error(handle).decode())
        out = ctypes.c_void_p()
        assert lib.veil_device_status_json(handle, ctypes.byref(out)) == 0
        status = json.loads(ctypes.cast(out, ctypes.c_char_p).value)
        lib.veil_device_free_string(out)
        lib.veil_device_close(handle)
        print(status["featureSets"][0]["observations"])
        """

    @Test func aCProgramAndPythonRecordThroughTheLibrary() async throws {
        let library = Self.products.appendingPathComponent("libVeilDeviceC.so").path
        try #require(FileManager.default.fileExists(atPath: library), "libVeilDeviceC.so is built with the tests")
        let harness = try await NetworkHarness.featureRounds(of: CrashRecoveryTests.set, window: 1_800_000_000, now: Date())
        defer { Task { await harness.stop() } }
        guard case let .tls(caCertificatePath: caPath) = harness.endpoint.security else { Issue.record("TLS"); return }
        let state = harness.directory + "/agent"
        let agent = DeviceAgent(directory: state, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        _ = try await agent.enrol(host: "localhost", port: harness.aggregator.grpcPort!, caPath: caPath, token: try await harness.aggregator.store.createEnrolmentToken(lifetime: 600))

        let source = harness.directory + "/program.c", binary = harness.directory + "/program"
        try Self.program.write(toFile: source, atomically: true, encoding: .utf8)
        let compiled = try Self.run("cc", ["-Wall", "-Werror", "-I", Self.headers, source, "-o", binary, "-L", Self.products.path, "-lVeilDeviceC", "-Wl,-rpath,\(Self.products.path)"])
        #expect(compiled.status == 0, "\(compiled.output)")
        let ran = try Self.run(binary, [state])
        #expect(ran.status == 0, "the C program's checks (exit code names the failed one): \(ran.output)")

        let script = harness.directory + "/check.py"
        try Self.python.write(toFile: script, atomically: true, encoding: .utf8)
        let python = try Self.run("python3", [script, library, state])
        #expect(python.status == 0 && python.output.contains("takes a value") == false && python.output.hasSuffix("4\n"), "\(python.output)")
        #expect(try agent.status().featureSets.first?.observations == 4, "three from C, one from Python; the refused ones stored nothing")
    }
}
