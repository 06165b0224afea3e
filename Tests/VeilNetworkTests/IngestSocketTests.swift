import Foundation
import Logging
import ServiceLifecycle
import Testing
import VeilAggregator
import VeilDevice
import VeilDeviceAgent
import VeilFeatures
import VeilStore
#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, item 3: the agent's local ingest socket, over a real Unix domain socket.
@Suite(.serialized) struct IngestSocketTests {
    /// Sends one HTTP/1.1 request on the Unix socket at `path` and returns the status, the
    /// headers (lower-cased names) and the body.
    static func request(_ path: String, _ method: String, _ target: String, body: String = "") throws -> (status: Int, headers: [String: String], body: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProcessError("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes + [0])
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw ProcessError("connect \(path): \(errno)") }
        let request = "\(method) \(target) HTTP/1.1\r\nHost: veil-device\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        var bytes = Array(request.utf8)
        while !bytes.isEmpty {
            let sent = send(fd, bytes, bytes.count, 0)
            guard sent > 0 else { break }   // the server may answer (413) before reading everything
            bytes.removeFirst(sent)
        }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw ProcessError("no HTTP response: \(text)") }
        let head = text[..<split.lowerBound].split(separator: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var payload = String(text[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" {
            // One chunk and the terminator: the server's answers are small.
            let parts = payload.components(separatedBy: "\r\n")
            payload = parts.count > 1 ? parts[1] : ""
        }
        return (status, headers, payload)
    }

    @Test func observationsArriveDurablyOverTheSocketAndBadInputChangesNothing() async throws {
        let set = CrashRecoveryTests.set
        let window = 1_800_000_000
        // The aggregator on the real clock: the agent signs its feature-set requests with it.
        let harness = try await NetworkHarness.featureRounds(of: set, window: window, now: Date())
        defer { Task { await harness.stop() } }
        guard case let .tls(caCertificatePath: caPath) = harness.endpoint.security else { Issue.record("TLS"); return }
        let agent = DeviceAgent(directory: harness.directory + "/agent", logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let token = try await harness.aggregator.store.createEnrolmentToken(lifetime: 600)
        _ = try await agent.enrol(host: "localhost", port: harness.aggregator.grpcPort!, caPath: caPath, token: token)
        let server = IngestServer(agent: agent)
        let running = Flag()
        let app = server.application(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) { running.set() }
        let task = Task { try await app.run() }
        defer { task.cancel() }
        for _ in 0..<200 where !running.isSet { try await Task.sleep(for: .milliseconds(10)) }
        let path = server.socketPath
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o660, "the socket is for the agent's owner and group only")
        func observations() throws -> Int { try agent.status().featureSets.first { $0.name == "crash" }?.observations ?? -1 }

        let good = try Self.request(path, "POST", "/v1/observations", body: """
            {"feature": "reading", "value": 40, "at": \(window + 60)}
            {"feature": "events", "events": 2, "at": \(window + 60)}
            """)
        #expect(good.status == 200 && good.body.contains("\"stored\":2") && good.headers["veil-ingest-version"] == "1", "\(good)")
        #expect(try observations() == 2, "acknowledged means stored")

        // Each bad request is refused whole, naming the line; nothing of it is stored.
        for (body, expected) in [
            ("{\"feature\": \"reading\", \"value\": 1}\n{\"feature\": \"reading\", \"value\": ", "line 2: not an observation object"),
            ("{\"feature\": \"reading\", \"value\": 1}\n{\"feature\": \"nope\", \"value\": 1}", "line 2: no followed feature set has a feature"),
            ("{\"feature\": \"events\", \"value\": 3}", "of crash takes events, not what was given"),
            ("{\"feature\": \"reading\", \"value\": 1, \"events\": 2}", "line 1: give exactly one of value, category and events"),
            ("{\"feature\": \"events\", \"events\": 2000000}", "line 1: events must be in 0...1000000"),
            ("{\"feature\": \"events\", \"events\": 1, \"at\": 1e12}", "line 1: at must be within a year of now"),
        ] {
            let refused = try Self.request(path, "POST", "/v1/observations", body: body)
            #expect(refused.status == 400 && refused.body.contains(expected), "\(refused.body)")
        }
        let huge = try Self.request(path, "POST", "/v1/observations", body: String(repeating: " ", count: IngestServer.maximumBodyBytes + 10))
        #expect(huge.status == 413)
        #expect(try observations() == 2, "refused requests stored nothing")

        let status = try Self.request(path, "GET", "/v1/status")
        #expect(status.status == 200 && status.body.contains("\"deviceID\":\"dev-"))
        #expect(try Self.request(path, "GET", "/v1/nothing").status == 404)

        let long = try Self.request(path, "POST", "/v1/observations", body: "{\"feature\": \"reading\", \"value\": 1, \"featureSet\": \"\(String(repeating: "x", count: 5000))\"}")
        #expect(long.status == 400 && long.body.contains("line 1: longer than 4096 bytes"), "\(long.body)")
        #expect(try observations() == 2)

        // Access is by file permissions and group (Protocols/device-ingest.md): with the state
        // directory at 0710, a user outside the agent's group cannot connect, and the same user
        // in the group can. Switching users needs root, which is how the tests run in CI.
        if getuid() == 0 {
            #expect(chmod(agent.state.directory, 0o710) == 0)
            let client = """
                import socket, sys
                body = sys.argv[2].encode()
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(sys.argv[1])
                except PermissionError:
                    print("permission denied")
                    sys.exit(3)
                s.sendall(b"POST /v1/observations HTTP/1.1\\r\\nHost: veil-device\\r\\nConnection: close\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
                print(s.makefile("rb").readline().decode().strip())
                """
            let body = "{\"feature\": \"reading\", \"value\": 7, \"at\": \(window + 60)}"
            let outsider = try CABITests.run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", client, path, body])
            #expect(outsider.status == 3 && outsider.output.contains("permission denied"), "a user outside the group: \(outsider.output)")
            #expect(try observations() == 2, "the refused client stored nothing")
            let member = try CABITests.run("setpriv", ["--reuid=65534", "--regid=65534", "--groups=\(getgid())", "/usr/bin/python3", "-c", client, path, body])
            #expect(member.status == 0 && member.output.hasPrefix("HTTP/1.1 200"), "the same user in the agent's group: \(member.output)")
            #expect(try observations() == 3)
        }
    }
}
