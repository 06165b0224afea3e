import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import VeilCrypto
import VeilFeatures
import VeilProtocol
import VeilStore

/// The HTTP API (Hummingbird, documented in `Protocols/openapi.yaml`), on two listeners:
/// `/healthz` and `/metrics` for operations (``operationsRouter()``, plain HTTP, no secrets), and
/// under `/v1` (``apiRouter()``, TLS, a bearer token required) the feature-set registry (define,
/// list, retire), released windows as JSON, the latest window from memory, exports as CSV or JSON
/// Lines for offline training, starting a round now and a round's status. The read token opens
/// the GET routes; the admin token opens every route, and each request that may change state is
/// written to the audit log. Errors are RFC 9457 problem documents that name the field at fault.
struct ServingAPI: Sendable {
    let aggregator: Aggregator
    /// The admin token (every route).
    let adminToken: String?
    /// The read-only token (GET routes).
    let readToken: String?
    let audit: AuditLog

    func operationsRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ in
            guard aggregator.isServing else { return text(.serviceUnavailable, "shutting down\n") }
            // Healthy means able to run rounds, which needs the store.
            do { try await aggregator.store.ping() } catch {
                aggregator.metrics.storeError(operation: "health-check")
                return text(.serviceUnavailable, "the store is unavailable: \(error)\n")
            }
            return text(.ok, "ok\n")
        }
        router.get("/metrics") { _, _ in
            text(.ok, aggregator.metrics.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        return router
    }

    func apiRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let v1 = router.group("/v1").add(middleware: BearerTokenMiddleware(adminToken: adminToken, readToken: readToken, audit: audit))
        v1.get("/feature-sets") { request, _ in try await listFeatureSets(request) }
        v1.post("/feature-sets") { request, context in try await define(request, context) }
        v1.delete("/feature-sets/:name/versions/:version") { _, context in try await retire(context) }
        v1.get("/feature-sets/:name/windows") { request, context in try await windows(request, context) }
        v1.get("/feature-sets/:name/latest") { request, context in try latest(request, context) }
        v1.get("/feature-sets/:name/export") { request, context in try await export(request, context) }
        v1.get("/feature-sets/:name/budget") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard let status = try await aggregator.budgetStatus(of: name) else {
                return problem(.notFound, "No privacy budget", "no version of feature set \"\(name)\" has differential privacy", field: "name")
            }
            return try json(.ok, status)
        }
        v1.post("/rounds") { _, _ in
            await aggregator.startRoundNow()
                ? try json(.accepted, ["started": true])
                : problem(.conflict, "Too few devices waiting", "a round needs at least rounds.minimumCohort checked-in devices, and a free concurrency slot")
        }
        v1.get("/rounds/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let round = try await aggregator.store.round(id: id) else {
                return problem(.notFound, "Unknown round", "no round \(id) in the history", field: "id")
            }
            return try json(.ok, try await roundStatus(round))
        }
        return router
    }

    /// A round's status with its sum when the release rules allow it (SPEC.md §12.1): a plain
    /// round that finished with at least `minimumReleaseCohort` survivors. A feature round's sum is
    /// never served on its own, only inside its window's release.
    private func roundStatus(_ round: RoundRecord) async throws -> RoundStatus {
        var status = RoundStatus(round)
        guard round.outcome == RoundRecord.finished else { return status }
        let minimum = aggregator.configuration.rounds.minimumReleaseCohort
        if FeatureWindowTask(parsing: round.task) != nil {
            status.withheld = "a feature round's sum is served only inside its window's release"
        } else if round.survivors < minimum {
            status.withheld = "\(round.survivors) devices are in the sum, fewer than rounds.minimumReleaseCohort (\(minimum))"
        } else if let result = try await aggregator.store.result(roundID: round.roundID) {
            let sum = try ModularVector(packed: result.packedSum, count: result.dimension, bitWidth: result.bitWidth)
            status.result = RoundSum(dimension: result.dimension, bitWidth: result.bitWidth, sum: sum.elements)
        } else {
            status.withheld = "the round's result is no longer kept (retentionDays)"
        }
        return status
    }

    // MARK: Feature sets

    struct FeatureSetEntry: Codable {
        let name: String
        let version: Int
        let windowSeconds: Int
        let minimumReleaseCohort: Int
        /// Whether this aggregator's rounds aggregate this set (the configured `rounds.featureSet`).
        let rounds: Bool
        let definedAt: Double
        let retiredAt: Double?
        let definition: FeatureSet
    }

    private func entry(_ registered: RegisteredFeatureSet) -> FeatureSetEntry {
        let policy = aggregator.configuration.rounds
        let set = registered.featureSet
        return FeatureSetEntry(
            name: set.name, version: set.version, windowSeconds: policy.windowSeconds, minimumReleaseCohort: policy.minimumReleaseCohort,
            rounds: policy.featureSet == set && registered.retiredAt == nil,
            definedAt: registered.definedAt.timeIntervalSince1970, retiredAt: registered.retiredAt?.timeIntervalSince1970,
            definition: set)
    }

    private func listFeatureSets(_ request: Request) async throws -> Response {
        let includeRetired: Bool
        switch request.uri.queryParameters["includeRetired"].map(String.init) {
        case nil, "false": includeRetired = false
        case "true": includeRetired = true
        case let other?: return problem(.badRequest, "Invalid query", "includeRetired must be true or false, got \"\(other)\"", field: "includeRetired")
        }
        let entries = try await aggregator.store.featureSets(includingRetired: includeRetired).map(entry)
        return try json(.ok, ["featureSets": entries])
    }

    /// `POST /v1/feature-sets`: registers a definition (201), accepts the same one again (200),
    /// refuses a different one under a defined name and version (409).
    private func define(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: 1 << 20) } catch {
            return problem(.contentTooLarge, "Definition too large", "a feature-set definition must be at most 1 MiB")
        }
        let set: FeatureSet
        do {
            set = try JSONDecoder().decode(FeatureSet.self, from: Data(body.readableBytesView))
        } catch let error as DecodingError {
            let (field, reason) = Self.explain(error)
            return problem(.badRequest, "Invalid feature set", reason, field: field)
        }
        do { _ = try FeatureLayout(set) } catch {
            return problem(.unprocessableContent, "Invalid feature set", error.reason, field: error.field)
        }
        do {
            let created = try await aggregator.store.define(set)
            guard let registered = try await aggregator.store.featureSets(includingRetired: true)
                .first(where: { $0.featureSet.name == set.name && $0.featureSet.version == set.version }) else {
                return problem(.internalServerError, "Not stored", "the definition was accepted but cannot be read back")
            }
            return try json(created ? .created : .ok, entry(registered))
        } catch let error as FeatureSetRegistryError {
            return problem(.conflict, "Version already defined", error.description, field: "version")
        }
    }

    /// `DELETE /v1/feature-sets/{name}/versions/{version}`: no new rounds for it; windows stay readable.
    private func retire(_ context: BasicRequestContext) async throws -> Response {
        let name = context.parameters.get("name") ?? ""
        guard let version = context.parameters.get("version").flatMap({ Int($0) }) else {
            return problem(.badRequest, "Invalid path", "version must be an integer", field: "version")
        }
        guard try await aggregator.store.retire(name: name, version: version) else {
            return problem(.notFound, "Unknown feature set", "no active feature set \(name) v\(version)", field: "name")
        }
        return Response(status: .noContent)
    }

    /// The field path and a sentence for a JSON decoding failure.
    static func explain(_ error: DecodingError) -> (field: String?, reason: String) {
        func path(_ keys: [any CodingKey]) -> String? {
            let parts = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }
            let joined = parts.joined()
            return joined.isEmpty ? nil : String(joined.drop { $0 == "." })
        }
        switch error {
        case let .keyNotFound(key, c): return (path(c.codingPath + [key]), "missing required field")
        case let .typeMismatch(_, c): return (path(c.codingPath), c.debugDescription)
        case let .valueNotFound(_, c): return (path(c.codingPath), "must not be null")
        case let .dataCorrupted(c): return (path(c.codingPath), c.debugDescription)
        @unknown default: return (nil, "the body is not a valid feature-set definition")
        }
    }

    struct WindowsBody: Codable {
        let featureSet: String
        let version: Int
        let windows: [ReleasedWindow]
    }

    /// The `version` query parameter, when present.
    private func requestedVersion(_ request: Request) -> Result<Int?, ProblemResponse> {
        guard let text = request.uri.queryParameters["version"] else { return .success(nil) }
        guard let v = Int(text), v >= 1 else {
            return .failure(ProblemResponse(problem(.badRequest, "Invalid query", "version must be a positive integer", field: "version")))
        }
        return .success(v)
    }

    /// The feature set named in the path (the `version` query parameter, else its highest
    /// registered version, retired ones included) and the window range in the query (`from`,
    /// `to`: Unix seconds, `to` exclusive; by default the last 24 windows), or the problem to answer with.
    private func selection(_ request: Request, _ context: BasicRequestContext) async throws -> Result<(FeatureSet, Int, Int), ProblemResponse> {
        let policy = aggregator.configuration.rounds
        let name = context.parameters.get("name") ?? ""
        let version: Int?
        switch requestedVersion(request) {
        case let .failure(p): return .failure(p)
        case let .success(v): version = v
        }
        let candidates = try await aggregator.store.featureSets(includingRetired: true)
            .map(\.featureSet).filter { $0.name == name && (version == nil || $0.version == version) }
        guard let set = candidates.max(by: { $0.version < $1.version }) else {
            let what = version.map { "\(name) v\($0)" } ?? "\"\(name)\""
            return .failure(ProblemResponse(problem(.notFound, "Unknown feature set", "no feature set \(what) is defined", field: version == nil ? "name" : "version")))
        }
        let query = request.uri.queryParameters
        let now = Int(Date().timeIntervalSince1970)
        let defaultTo = FeatureSet.windowStart(of: now, windowSeconds: policy.windowSeconds) + policy.windowSeconds
        var bounds: [String: Int] = ["to": defaultTo, "from": defaultTo - 24 * policy.windowSeconds]
        for key in ["from", "to"] {
            guard let text = query[Substring(key)] else { continue }
            // Bounded, so that no arithmetic on a bound can overflow (one request with
            // from=Int.min used to trap and end the process).
            guard let value = Int(text), Self.timeRange.contains(value) else {
                return .failure(ProblemResponse(problem(.badRequest, "Invalid query", "\(key) must be an integer number of seconds since the Unix epoch, within ±2^40", field: key)))
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

    /// The accepted values of `from` and `to`: ±2^40 seconds (about 35,000 years) around the epoch.
    static let timeRange = -(1 << 40)...(1 << 40)

    private func windows(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        switch try await selection(request, context) {
        case let .failure(p): return p.response
        case let .success((set, from, to)):
            let windows = try await aggregator.featureWindows(of: set, from: from, to: to)
            return try json(.ok, WindowsBody(featureSet: set.name, version: set.version, windows: windows))
        }
    }

    /// `GET /v1/feature-sets/{name}/latest`: the newest window, from memory.
    private func latest(_ request: Request, _ context: BasicRequestContext) throws -> Response {
        let name = context.parameters.get("name") ?? ""
        switch requestedVersion(request) {
        case let .failure(p): return p.response
        case let .success(version):
            guard let (v, window) = aggregator.latestWindow(name: name, version: version) else {
                return problem(.notFound, "No window yet", "feature set \"\(name)\"\(version.map { " v\($0)" } ?? "") has no stored window", field: "name")
            }
            return try json(.ok, WindowsBody(featureSet: name, version: v, windows: [window]))
        }
    }

    private func export(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        switch try await selection(request, context) {
        case let .failure(p): return p.response
        case let .success((set, from, to)):
            let format = request.uri.queryParameters["format"].map(String.init) ?? "jsonl"
            guard format == "jsonl" || format == "csv" else {
                return problem(.badRequest, "Invalid query", "format must be csv or jsonl, got \"\(format)\"", field: "format")
            }
            let windows = try await aggregator.featureWindows(of: set, from: from, to: to).filter { $0.values != nil || $0.estimates != nil }
            if format == "csv" {
                return text(.ok, FeatureCSV.render(windows, featureSet: set), contentType: "text/csv; charset=utf-8")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let lines = try windows.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
            return text(.ok, lines.map { $0 + "\n" }.joined(), contentType: "application/x-ndjson")
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
    /// The sum, when released: a plain round that finished with at least the minimum release
    /// cohort of survivors.
    var result: RoundSum?
    /// Why a finished round's sum is not served, when it is not.
    var withheld: String?

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

/// A released plain round's sum: `dimension` integers modulo 2^`bitWidth`.
struct RoundSum: Codable {
    let dimension: Int
    let bitWidth: Int
    let sum: [UInt64]
}

/// Refuses `/v1` requests without `Authorization: Bearer <token>` (compared in constant time):
/// the admin token opens every route, the read token only GET and HEAD. Every other request
/// (one that may change state), allowed or refused, is written to the audit log with its outcome.
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let adminToken: String?
    let readToken: String?
    let audit: AuditLog

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let reads = request.method == .get || request.method == .head
        let action = "\(request.method) \(request.uri.path)"
        guard adminToken != nil || readToken != nil else {
            if !reads { audit.record(action: action, actor: "none", outcome: 401) }
            return problem(.unauthorized, "API closed", "no apiToken is configured, so the /v1 API refuses every request")
        }
        let presented = SecretBytes(copying: Array((request.headers[.authorization] ?? "").utf8))
        let actor: String
        if let adminToken, presented.constantTimeEquals(Array(("Bearer " + adminToken).utf8)) {
            actor = "admin"
        } else if let readToken, presented.constantTimeEquals(Array(("Bearer " + readToken).utf8)) {
            actor = "read"
        } else {
            if !reads { audit.record(action: action, actor: "unauthenticated", outcome: 401) }
            var response = problem(.unauthorized, "Unauthorized", "send Authorization: Bearer <apiToken or apiReadToken>")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        if reads { return try await next(request, context) }
        guard actor == "admin" else {
            audit.record(action: action, actor: actor, outcome: 403)
            return problem(.forbidden, "Read-only token", "\(request.method) needs the admin token (apiToken); the read token opens GET routes only")
        }
        let response: Response
        do { response = try await next(request, context) } catch {
            audit.record(action: action, actor: actor, outcome: 500)
            throw error
        }
        audit.record(action: action, actor: actor, outcome: Int(response.status.code))
        return response
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
