import Foundation
import GRPCCore
import Testing
import VeilAggregator
import VeilDevice
import VeilTransport
import VeilWire
#if canImport(Glibc)
import Glibc
#endif

/// Issue 13, H3: what an unauthenticated client can hold on the device listener is bounded:
/// connections per address, time to open a first stream, and one check-in-sized message per
/// stream until the server answers it.
@Suite(.serialized) struct ConnectionGuardTests {
    static func harness() async throws -> NetworkHarness {
        try await NetworkHarness { c in
            c.maximumConnectionsPerAddress = 3
            c.checkInTimeoutSeconds = 2
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
        }
    }

    /// A raw TCP connection to the device listener that sends nothing.
    final class RawConnection {
        let descriptor: Int32
        init(port: Int) throws {
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
        }
        deinit { close(descriptor) }

        /// Whether the server closed the connection within `seconds` (EOF or reset on read).
        func closedByServer(within seconds: Double) -> Bool {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(seconds * 1000)) > 0 else { return false }
            var byte: UInt8 = 0
            return recv(descriptor, &byte, 1, 0) <= 0
        }
    }

    @Test func connectionsBeyondThePerAddressLimitAreClosedAtOnce() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        let port = harness.aggregator.grpcPort!
        let held = try (0..<3).map { _ in try RawConnection(port: port) }
        try await Task.sleep(for: .milliseconds(200))
        let fourth = try RawConnection(port: port)
        #expect(fourth.closedByServer(within: 0.8), "a fourth connection from one address is closed before the deadline")
        #expect(!held[0].closedByServer(within: 0.1))
        #expect(try await harness.scrape().body.contains("veil_rejected_devices_total{reason=\"connections-per-address\"}"))
        _ = held
    }

    @Test func aConnectionThatOpensNoStreamIsClosedAfterTheDeadline() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        let silent = try RawConnection(port: harness.aggregator.grpcPort!)
        #expect(silent.closedByServer(within: 5), "a connection that never completes TLS is closed after the pre-authentication deadline")
        #expect(try await harness.scrape().body.contains("veil_rejected_devices_total{reason=\"pre-authentication-deadline\"}"))
        // A real client, which opens its stream at once, is unaffected.
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let enrolled = try await harness.enrolledIdentities(1, connection: connection)
            #expect(enrolled.count == 1)
        }
    }

    @Test func aFirstMessageLargerThanACheckInResetsTheStreamBeforeGRPCReadsIt() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        let result = try await ScriptedDevice(harness).run(as: .generate()) { frame, identity in
            guard case .challenge = frame.frame else { return [] }
            var padded = ScriptedDevice.checkIn(frame, identity)[0]
            padded.checkIn.signature = Data(repeating: 7, count: 64 * 1024)
            return [padded]
        }
        // Without the guard the service would have decoded it and answered INVALID_ARGUMENT.
        #expect(result.code != .invalidArgument && result.code != nil, "\(String(describing: result.error))")
        #expect(try await harness.scrape().body.contains("veil_rejected_devices_total{reason=\"first-message-too-large\"}"))
    }

    @Test func aSecondMessageBeforeTheCheckInIsAnsweredResetsTheStream() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identity = try #require(try await harness.enrolledIdentities(1, connection: connection).first)
            let result = try await ScriptedDevice(harness).run(as: identity) { frame, identity in
                guard case .challenge = frame.frame else { return [] }
                var early = Veil_V1_DeviceFrame()
                early.protocolMessage = Data(repeating: 1, count: 512)
                return ScriptedDevice.checkIn(frame, identity) + [early, early]
            }
            // Without the guard the device would wait in the room and then be refused by the
            // service (FAILED_PRECONDITION) only after gRPC had buffered what it sent.
            #expect(result.code != .failedPrecondition && result.code != nil, "\(String(describing: result.error))")
            #expect(try await harness.scrape().body.contains("veil_rejected_devices_total{reason=\"message-before-answer\"}"))
        }
    }
}
