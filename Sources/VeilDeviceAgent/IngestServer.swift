import Foundation
public import Hummingbird
import HTTPTypes
public import Logging
import NIOCore

/// The local ingest interface of a `veil-device` agent (`Protocols/device-ingest.md`): HTTP/1.1
/// with JSON on a Unix domain socket in the state directory, mode 0660, so the node's own
/// software (in the agent's group) records observations in any language. Version 1:
///
/// - `POST /v1/observations`: one observation object, or JSON Lines of them (at most 1 MiB, a
///   line at most ``ObservationLines/maximumLineBytes``).
///   200 `{"stored": n}` once every one is on disk; 400 `{"error": …, "line": k}` and nothing
///   stored when any line is malformed or refused; 413 when the body is too large.
/// - `GET /v1/status`: what `veil-device status --json` prints.
///
/// Every response carries `Veil-Ingest-Version: 1`.
public struct IngestServer: Sendable {
    /// The agent observations go to.
    public let agent: DeviceAgent
    /// The socket's path.
    public var socketPath: String { agent.state.directory + "/ingest.sock" }
    /// The largest request body.
    public static let maximumBodyBytes = 1 << 20

    /// A server for `agent`.
    public init(agent: DeviceAgent) { self.agent = agent }

    /// The HTTP application bound to the socket (a ServiceLifecycle service); `onRunning` is
    /// called once the socket accepts connections, after its mode is set to 0660.
    public func application(logger: Logger, onRunning: @escaping @Sendable () -> Void = {}) -> some ApplicationProtocol {
        let router = Router()
        router.middlewares.add(VersionHeader())
        router.post("/v1/observations") { request, _ in try await observations(request) }
        router.get("/v1/status") { _, _ in
            do { return try Self.json(.ok, try agent.status()) } catch let error as AgentError { return try Self.problem(.serviceUnavailable, error.description) }
        }
        let path = socketPath
        return Application(
            router: router, configuration: .init(address: .unixDomainSocket(path: path), serverName: "veil-device"),
            onServerRunning: { _ in
                chmod(path, 0o660)
                onRunning()
            },
            logger: logger)
    }

    /// `POST /v1/observations`.
    func observations(_ request: Request) async throws -> Response {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Self.maximumBodyBytes) } catch {
            return try Self.problem(.contentTooLarge, "the body must be at most \(Self.maximumBodyBytes) bytes")
        }
        let outcome: (stored: Int, problems: [ObservationLines.Problem])
        do {
            outcome = try agent.recordJSONLines(String(decoding: body.readableBytesView, as: UTF8.self), mode: .allOrNothing)
        } catch {
            return try Self.problem(.serviceUnavailable, error.description)
        }
        if let problem = outcome.problems.first { return try Self.problem(.badRequest, problem.description, line: problem.line) }
        guard outcome.stored > 0 else { return try Self.problem(.badRequest, "no observation in the body") }
        return try Self.json(.ok, ["stored": outcome.stored])
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    struct Problem: Encodable {
        let error: String
        let line: Int?
    }

    static func problem(_ status: HTTPResponse.Status, _ message: String, line: Int? = nil) throws -> Response {
        try json(status, Problem(error: message, line: line))
    }

    /// Adds `Veil-Ingest-Version: 1` to every response.
    struct VersionHeader: RouterMiddleware {
        typealias Context = BasicRequestContext
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            var response: Response
            do { response = try await next(request, context) } catch let error as HTTPError {
                response = try IngestServer.problem(error.status, error.body ?? "\(error.status.reasonPhrase)")
            }
            response.headers[HTTPField.Name("Veil-Ingest-Version")!] = "1"
            return response
        }
    }
}
