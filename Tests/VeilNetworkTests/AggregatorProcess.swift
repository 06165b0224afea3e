import Foundation
import Synchronization
import Testing
import VeilAggregator
import VeilDevice
#if canImport(Glibc)
import Glibc
#endif

/// `veil-aggregator serve` in its own process (the debug build next to the test runner, which
/// carries the FaultPoint crash points), on a fixed loopback port, killable with SIGKILL.
final class AggregatorProcess: @unchecked Sendable {
    let process = Process()
    let logPath: String

    /// The `veil-aggregator` binary built with the tests, or nil (recorded as an issue) if absent.
    static var binary: String? {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let path = directory.appendingPathComponent("veil-aggregator").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            Issue.record("no veil-aggregator binary at \(path): `swift build --build-tests` builds it with the tests")
            return nil
        }
        return path
    }

    /// Starts `serve --config configPath` with `VEIL_FAULT=fault` when given, and waits until it
    /// accepts TCP connections on `port` (or fails if it exits first).
    init(configPath: String, port: Int, fault: String?, pause: String? = nil, logPath: String) async throws {
        guard let binary = Self.binary else { throw ProcessError("no binary") }
        self.logPath = logPath
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--config", configPath, "--log-level", "info"]
        var environment = ProcessInfo.processInfo.environment
        environment["VEIL_FAULT"] = fault
        environment["VEIL_FAULT_PAUSE"] = pause
        process.environment = environment
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        logFile.seekToEndOfFile()
        process.standardError = logFile
        process.standardOutput = logFile
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while !Self.accepts(port: port) {
            guard process.isRunning else { throw ProcessError("veil-aggregator exited at start: \(log(tail: 20))") }
            guard ContinuousClock.now < deadline else { throw ProcessError("veil-aggregator did not listen within 60 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits up to `limit` for the process to end; returns how it ended, or nil if it still runs.
    func waitForExit(within limit: Duration) async -> (reason: Process.TerminationReason, status: Int32)? {
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(25)) }
        return process.isRunning ? nil : (process.terminationReason, process.terminationStatus)
    }

    /// SIGKILL, no cleanup.
    func kill() { if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) } }

    /// SIGTERM: a graceful shutdown.
    func terminate() { if process.isRunning { process.terminate() } }

    /// The last `lines` lines of the process's log.
    func log(tail lines: Int) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A socket listening on a fresh loopback port, to make a bind elsewhere fail; close `fd` when done.
    static func occupiedPort() throws -> (fd: Int32, port: Int) {
        let fd = try boundSocket()
        guard listen(fd, 1) == 0 else {
            close(fd)
            throw ProcessError("listen failed")
        }
        return (fd, try port(of: fd))
    }

    /// A TCP port on loopback that nothing uses now, that no other call in this test process
    /// returns, and that the kernel never picks by itself.
    ///
    /// A port the kernel picks (bind to port 0) is free only until the socket closes: a harness
    /// aggregator killed and restarted on the same ports leaves them free for seconds, and another
    /// test's port-0 bind or outgoing connection could take one in between (it happened in CI:
    /// "Address already in use" at a restart). So ports come from a counter below the kernel's
    /// ephemeral range, each checked free by binding it once.
    static func freePort() throws -> Int {
        let (low, high) = PortCounter.range
        for _ in 0..<(high - low) {
            let candidate = PortCounter.next()
            guard let fd = try? boundSocket(port: candidate) else { continue }
            close(fd)
            return candidate
        }
        throw ProcessError("no free port in \(low)..<\(high)")
    }

    /// A TCP socket bound on 127.0.0.1 to `port`, or to one the system picks when it is 0.
    private static func boundSocket(port requested: Int = 0) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProcessError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(requested).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw ProcessError("bind failed")
        }
        return fd
    }

    /// The local port `fd` is bound to.
    private static func port(of fd: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let found = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard found == 0 else { throw ProcessError("getsockname failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Hands out the ports ``AggregatorProcess/freePort()`` tries: a range of 8,000 ports just below
/// the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), walked from a random
/// start so that two test runs on one machine are unlikely to walk in step.
private enum PortCounter {
    /// The ports handed out, `low..<high`.
    static let range: (low: Int, high: Int) = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let ephemeralLow = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
        let high = max(ephemeralLow, 10_000)
        return (high - 8_000, high)
    }()
    private static let state = Mutex(Int.random(in: 0..<8_000))

    /// The next port to try.
    static func next() -> Int {
        let (low, high) = range
        return state.withLock { offset in
            defer { offset = (offset + 1) % (high - low) }
            return low + offset
        }
    }
}

/// A failure of the harness itself.
struct ProcessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
