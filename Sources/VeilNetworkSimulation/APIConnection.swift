public import Foundation
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL

/// An HTTPS client for the aggregator's `/v1` API, as a training job or service would use it:
/// TLS with the operator's CA pinned (plain HTTP only for an aggregator started with
/// `insecurePlaintext`) and a bearer token.
public final class APIConnection: Sendable {
    /// A response: status, content type, headers and body.
    public struct Response: Sendable {
        /// The HTTP status code.
        public let status: Int
        /// The `Content-Type` header, or "".
        public let contentType: String
        /// Every header, names lowercased.
        public let headers: [String: String]
        /// The body.
        public let body: Data
        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    private let client: HTTPClient
    private let base: String

    /// A connection to `https://localhost:port` trusting only the CA at `caCertificatePath`, or
    /// to `http://127.0.0.1:port` when it is nil; `host` replaces the host name or address.
    public init(host: String? = nil, port: Int, caCertificatePath: String?) throws {
        let authority = host.map { $0.contains(":") ? "[\($0)]" : $0 }
        var configuration = HTTPClient.Configuration()
        if let caCertificatePath {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caCertificatePath))
            tls.minimumTLSVersion = .tlsv12
            configuration.tlsConfiguration = tls
            base = "https://\(authority ?? "localhost"):\(port)"
        } else {
            base = "http://\(authority ?? "127.0.0.1"):\(port)"
        }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends `method path` with `token` as bearer (none when nil) and `body` as JSON.
    public func request(_ method: String, _ path: String, token: String?, body: String? = nil) async throws -> Response {
        var request = HTTPClientRequest(url: base + path)
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Response(
            status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type") ?? "",
            headers: headers, body: Data(bytes.readableBytesView))
    }

    /// Closes the connection pool; call once, when done.
    public func close() async throws { try await client.shutdown() }
}
