import Foundation
import Synchronization
import Testing
import VeilAggregator
import VeilDevice
import VeilProtocol
import VeilWire
#if canImport(Glibc)
import Glibc
#endif

/// Issue 13, L: a device whose connection goes silent (power lost, a NAT that dropped its
/// mapping: the TCP connection stays open but nothing crosses it) must not hold its place in the
/// waiting room for `maximumWaitSeconds`. The server's keepalive pings go unanswered and the
/// connection is closed within a ping interval and its timeout.
@Suite(.serialized) struct HalfOpenConnectionTests {
    /// A TCP relay on loopback that can be frozen: it stops moving bytes either way while both
    /// connections stay open, as a dead device or a broken middlebox does.
    final class FreezableRelay: Sendable {
        let port: Int
        private let listener: Int32
        private let frozen = Atomic<Bool>(false)
        private let closed = Atomic<Bool>(false)
        private let descriptors = Mutex<[Int32]>([])

        init(to target: Int) throws {
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: 0)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(server, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(server, $0, &length) }
            }
            listener = server
            port = Int(UInt16(bigEndian: address.sin_port))
            Thread.detachNewThread { [self] in
                while !closed.load(ordering: .relaxed) {
                    let client = accept(server, nil, nil)
                    guard client >= 0 else { return }
                    let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                    var destination = Self.loopback(port: target)
                    let connected = withUnsafePointer(to: &destination) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                    guard connected == 0 else { Glibc.close(client); Glibc.close(upstream); continue }
                    descriptors.withLock { $0 += [client, upstream] }
                    Thread.detachNewThread { self.pump(from: client, to: upstream) }
                    Thread.detachNewThread { self.pump(from: upstream, to: client) }
                }
            }
        }

        private func pump(from source: Int32, to destination: Int32) {
            var buffer = [UInt8](repeating: 0, count: 16_384)
            while !closed.load(ordering: .relaxed) {
                if frozen.load(ordering: .relaxed) {
                    usleep(20_000)
                    continue
                }
                var poller = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 20) > 0 else { continue }
                // Frozen between poll and read: leave the bytes unread, as a dead peer would.
                if frozen.load(ordering: .relaxed) { continue }
                let count = read(source, &buffer, buffer.count)
                guard count > 0 else { return }
                var sent = 0
                while sent < count {
                    let written = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + sent, count - sent) }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }

        /// From now on nothing crosses the relay; the sockets stay open.
        func freeze() { frozen.store(true, ordering: .relaxed) }

        /// Closes every socket.
        func close() {
            closed.store(true, ordering: .relaxed)
            shutdown(listener, Int32(SHUT_RDWR))
            Glibc.close(listener)
            for fd in descriptors.withLock({ $0 }) { Glibc.close(fd) }
        }

        private static func loopback(port: Int) -> sockaddr_in {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return address
        }
    }

    @Test func aDeviceWhoseConnectionGoesSilentLeavesTheWaitingRoom() async throws {
        let harness = try await NetworkHarness { c in
            c.keepaliveSeconds = 1
            c.keepaliveTimeoutSeconds = 1
            c.rounds.minimumCohort = 8
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
        }
        defer { Task { await harness.stop() } }
        let identities = try await withAggregatorConnection(to: harness.endpoint) { connection in
            try await harness.enrolledIdentities(1, connection: connection)
        }
        let relay = try FreezableRelay(to: harness.aggregator.grpcPort!)
        defer { relay.close() }
        let endpoint = AggregatorEndpoint(host: "localhost", port: relay.port, security: harness.endpoint.security)
        let device = Task {
            try await withAggregatorConnection(to: endpoint) { connection in
                _ = try await harness.device(identity: identities[0], connection: connection).participate { assignment in
                    ModularVector(zerosOfCount: assignment.configuration.dimension, bitWidth: assignment.configuration.bitWidth)
                }
            }
        }
        defer { device.cancel() }
        let arrived = ContinuousClock.now + .seconds(20)
        while await harness.aggregator.waitingDeviceCount() < 1 && ContinuousClock.now < arrived { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await harness.aggregator.waitingDeviceCount() == 1)
        relay.freeze()
        // A ping a second, answered within a second: gone in a few seconds, not the 300 s wait.
        let deadline = ContinuousClock.now + .seconds(15)
        while await harness.aggregator.waitingDeviceCount() > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(await harness.aggregator.waitingDeviceCount() == 0, "the silent device still holds its place")
    }
}
