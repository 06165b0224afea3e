import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VeilCrypto
import VeilFeatures

/// The HTTP API (Hummingbird, documented in `Protocols/openapi.yaml`): `/healthz` and `/metrics`
/// for operations, and under `/v1` (bearer token required) the configured feature set, its
/// released windows as JSON, exports as CSV or JSON Lines for offline training, starting a round
/// now and a round's status. Errors are RFC 9457 problem documents that name the field at fault.
struct ServingAPI: Sendable {
    let aggregator: Aggregator
    let token: String?

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ in
            aggregator.isServing ? text(.ok, "ok\n") : text(.serviceUnavailable, "shutting down\n")
        }
        router.get("/metrics") { _, _ in
            text(.ok, aggregator.metrics.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        let v1 = router.group("/v1").add(middleware: BearerTokenMiddleware(token: token))
        v1.get("/feature-sets") { _, _ in try listFeatureSets() }
        v1.get("/feature-sets/:name/windows") { request, context in try windows(request, context) }
        v1.get("/feature-sets/:name/export") { request, context in try export(request, context) }
        v1.post("/rounds") { _, _ in
            await aggregator.startRoundNow()
                ? try json(.accepted, ["started": true])
                : problem(.conflict, "Too few devices waiting", "a round needs at least rounds.minimumCohort checked-in devices, and a free concurrency slot")
        }
        v1.get("/rounds/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let round = try aggregator.store.recentRounds(limit: 10_000).first(where: { $0.roundID == id }) else {
                return problem(.notFound, "Unknown round", "no round \(id) in the history", field: "id")
            }
            return try json(.ok, RoundStatus(round))
        }
        return router
    }

    // MARK: Feature sets

    struct FeatureSetEntry: Codable {
        let name: String
        let version: Int
        let windowSeconds: Int
        let minimumReleaseCohort: Int
        let definition: FeatureSet
    }

    private func listFeatureSets() throws -> Response {
        let policy = aggregator.configuration.rounds
        let entries = policy.featureSet.map {
            [FeatureSetEntry(name: $0.name, version: $0.version, windowSeconds: policy.windowSeconds,
                             minimumReleaseCohort: policy.minimumReleaseCohort, definition: $0)]
        } ?? []
        return try json(.ok, ["featureSets": entries])
    }

    struct WindowsBody: Codable {
        let featureSet: String
        let version: Int
        let windows: [ReleasedWindow]
    }

    /// The feature set named in the path and the window range in the query (`from`, `to`: Unix
    /// seconds, `to` exclusive; by default the last 24 windows), or the problem to answer with.
    private func selection(_ request: Request, _ context: BasicRequestContext) -> Result<(FeatureSet, Int, Int), ProblemResponse> {
        let policy = aggregator.configuration.rounds
        let name = context.parameters.get("name") ?? ""
        guard let set = policy.featureSet, set.name == name else {
            return .failure(ProblemResponse(problem(.notFound, "Unknown feature set", "no feature set \"\(name)\" is configured", field: "name")))
        }
        let query = request.uri.queryParameters
        let now = Int(Date().timeIntervalSince1970)
        let defaultTo = FeatureSet.windowStart(of: now, windowSeconds: policy.windowSeconds) + policy.windowSeconds
        var bounds: [String: Int] = ["to": defaultTo, "from": defaultTo - 24 * policy.windowSeconds]
        for key in ["from", "to"] {
            guard let text = query[Substring(key)] else { continue }
            guard let value = Int(text) else {
                return .failure(ProblemResponse(problem(.badRequest, "Invalid query", "\(key) must be an integer number of seconds since the Unix epoch", field: key)))
            }
            bounds[key] = value
        }
        guard bounds["from"]! < bounds["to"]! else {
            return .failure(ProblemResponse(problem(.badRequest, "Invalid query", "from must be before to", field: "from")))
        }
        guard (bounds["to"]! - bounds["from"]!) / policy.windowSeconds <= 100_000 else {
            return .failure(ProblemResponse(problem(.badRequest, "Invalid query", "at most 100,000 windows per request", field: "to")))
        }
        return .success((set, bounds["from"]!, bounds["to"]!))
    }

    private func windows(_ request: Request, _ context: BasicRequestContext) throws -> Response {
        switch selection(request, context) {
        case let .failure(p): return p.response
        case let .success((set, from, to)):
            let windows = try aggregator.featureWindows(from: from, to: to)
            return try json(.ok, WindowsBody(featureSet: set.name, version: set.version, windows: windows))
        }
    }

    private func export(_ request: Request, _ context: BasicRequestContext) throws -> Response {
        switch selection(request, context) {
        case let .failure(p): return p.response
        case let .success((set, from, to)):
            let format = request.uri.queryParameters["format"].map(String.init) ?? "jsonl"
            let windows = try aggregator.featureWindows(from: from, to: to).filter { $0.values != nil }
            switch format {
            case "jsonl":
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                let lines = try windows.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
                return text(.ok, lines.map { $0 + "\n" }.joined(), contentType: "application/x-ndjson")
            case "csv":
                return text(.ok, FeatureCSV.render(windows, featureSet: set), contentType: "text/csv; charset=utf-8")
            default:
                return problem(.badRequest, "Invalid query", "format must be csv or jsonl, got \"\(format)\"", field: "format")
            }
        }
    }
}

/// A round as `GET /v1/rounds/{id}` reports it.
struct RoundStatus: Codable {
    let roundID: String
    let task: String
    let startedAt: Double
    let endedAt: Double
    let cohortSize: Int
    let survivors: Int
    let outcome: String
    let reason: String

    init(_ r: RoundRecord) {
        roundID = r.roundID
        task = r.task
        startedAt = r.startedAt.timeIntervalSince1970
        endedAt = r.endedAt.timeIntervalSince1970
        cohortSize = r.cohortSize
        survivors = r.survivors
        outcome = r.outcome
        reason = r.reason
    }
}

/// Refuses `/v1` requests without `Authorization: Bearer <token>` (compared in constant time).
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else {
            return problem(.unauthorized, "API closed", "no apiToken is configured, so the /v1 API refuses every request")
        }
        let presented = request.headers[.authorization] ?? ""
        let expected = "Bearer " + token
        guard SecretBytes(copying: Array(presented.utf8)).constantTimeEquals(Array(expected.utf8)) else {
            var response = problem(.unauthorized, "Unauthorized", "send Authorization: Bearer <apiToken>")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }
}

/// A problem response carried through a `Result`.
struct ProblemResponse: Error {
    let response: Response
    init(_ response: Response) { self.response = response }
}

/// An RFC 9457 problem document.
func problem(_ status: HTTPResponse.Status, _ title: String, _ detail: String, field: String? = nil) -> Response {
    var body: [String: String] = ["type": "about:blank", "title": title, "detail": detail, "status": "\(status.code)"]
    if let field { body["field"] = field }
    var object = "{"
    object += body.sorted { $0.key < $1.key }.map { key, value in
        key == "status" ? "\"status\":\(value)" : "\"\(key)\":\(jsonString(value))"
    }.joined(separator: ",")
    object += "}"
    return text(status, object, contentType: "application/problem+json")
}

func jsonString(_ s: String) -> String {
    String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
}

func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return text(status, String(decoding: try encoder.encode(value), as: UTF8.self), contentType: "application/json")
}

func text(_ status: HTTPResponse.Status, _ body: String, contentType: String = "text/plain; charset=utf-8") -> Response {
    Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: body)))
}
