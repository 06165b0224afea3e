import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// Where the aggregator is and how to trust it.
public struct AggregatorEndpoint: Sendable, Equatable {
    /// How the connection is secured.
    public enum Security: Sendable, Equatable {
        /// TLS, trusting only the CA certificate in this PEM file (the operator's CA, pinned) and
        /// checking that the server certificate names `host`.
        case tls(caCertificatePath: String)
        /// No TLS. Only for tests against an aggregator started with `--insecure-plaintext`.
        case insecurePlaintext
    }

    /// Host name (checked against the server certificate) or address.
    public var host: String
    /// TCP port.
    public var port: Int
    /// TLS with a pinned CA, or plaintext.
    public var security: Security

    /// Creates an endpoint.
    public init(host: String, port: Int, security: Security) {
        self.host = host
        self.port = port
        self.security = security
    }
}

/// One HTTP/2 connection (re-established with backoff when it breaks) to the aggregator, shared by
/// any number of ``VeilDevice`` values: each device round is its own stream on it.
///
/// Call ``run()`` in a task for as long as devices use the connection, and ``close()`` to finish;
/// or use ``withAggregatorConnection(to:_:)``.
public final class AggregatorConnection: Sendable {
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    /// The endpoint this connection reaches.
    public let endpoint: AggregatorEndpoint

    /// Prepares the connection; nothing is dialled until ``run()``.
    public init(to endpoint: AggregatorEndpoint) throws {
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        switch endpoint.security {
        case let .tls(caPath):
            security = .tls(.defaults {
                $0.trustRoots = .certificates([.file(path: caPath, format: .pem)])
                $0.serverCertificateVerification = .fullVerification
            })
        case .insecurePlaintext:
            security = .plaintext
        }
        let transport = try HTTP2ClientTransport.Posix(
            target: .dns(host: endpoint.host, port: endpoint.port),
            transportSecurity: security,
            config: .defaults {
                $0.backoff = .init(initial: .milliseconds(200), max: .seconds(10), multiplier: 1.6, jitter: 0.2)
                // Pings every 30 s, with or without a round in flight: a connection whose other
                // end vanished (half-open) is closed within 40 s instead of holding a round.
                $0.connection.keepalive = .init(time: .seconds(30), timeout: .seconds(10), allowWithoutCalls: true)
            })
        client = GRPCClient(transport: transport)
        self.endpoint = endpoint
    }

    /// Maintains the connection until ``close()`` or cancellation.
    public func run() async throws {
        try await client.runConnections()
    }

    /// Lets open streams finish, then stops ``run()``.
    public func close() {
        client.beginGracefulShutdown()
    }
}

/// Runs `body` with a connection to `endpoint`, closing it afterwards.
public func withAggregatorConnection<Result: Sendable>(
    to endpoint: AggregatorEndpoint, _ body: (AggregatorConnection) async throws -> Result
) async throws -> Result {
    let connection = try AggregatorConnection(to: endpoint)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await connection.run() }
        defer { connection.close() }
        return try await body(connection)
    }
}
