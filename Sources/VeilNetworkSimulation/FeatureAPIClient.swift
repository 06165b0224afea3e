import Foundation
import VeilAggregator
import VeilSimulation
import VeilStore

/// The HTTP API as a training job or service reads it: HTTPS with the operator's CA, bearer
/// token, JSON and CSV over loopback.
struct FeatureAPIClient: Sendable {
    let connection: APIConnection
    let token: String
    let featureSet: String

    private struct WindowsBody: Decodable {
        let windows: [ReleasedWindow]
    }

    /// `GET /v1/feature-sets/{name}/windows?from=&to=`.
    func windows(from: Int, to: Int) async throws -> [ReleasedWindow] {
        let body = try await get("/v1/feature-sets/\(featureSet)/windows?from=\(from)&to=\(to)")
        return try JSONDecoder().decode(WindowsBody.self, from: body).windows
    }

    /// `GET /v1/feature-sets/{name}/latest`; nil when there is no window yet.
    func latest() async throws -> ReleasedWindow? {
        let (status, body) = try await request("GET", "/v1/feature-sets/\(featureSet)/latest")
        if status == 404 { return nil }
        guard status == 200 else { throw Self.failure("GET latest", status, body) }
        return try JSONDecoder().decode(WindowsBody.self, from: body).windows.first
    }

    /// What `GET /v1/feature-sets/{name}/budget` says, in part.
    struct Budget: Decodable {
        struct Refusal: Decodable { let window: Int }
        let spentEpsilon: Double
        let exhausted: Bool
        let lastRefusal: Refusal?
    }

    /// `GET /v1/feature-sets/{name}/budget`; nil when the set has no differential privacy (404).
    func budget() async throws -> Budget? {
        let (status, body) = try await request("GET", "/v1/feature-sets/\(featureSet)/budget")
        if status == 404 { return nil }
        guard status == 200 else { throw Self.failure("GET budget", status, body) }
        return try JSONDecoder().decode(Budget.self, from: body)
    }

    /// `GET /v1/feature-sets/{name}/export?format=csv`.
    func exportCSV(from: Int, to: Int) async throws -> String {
        String(decoding: try await get("/v1/feature-sets/\(featureSet)/export?from=\(from)&to=\(to)&format=csv"), as: UTF8.self)
    }

    /// `POST /v1/rounds`: true when a round started (202), false when too few devices wait (409).
    func startRound() async throws -> Bool {
        let (status, body) = try await request("POST", "/v1/rounds")
        switch status {
        case 202: return true
        case 409: return false
        default: throw Self.failure("POST /v1/rounds", status, body)
        }
    }

    private func get(_ path: String) async throws -> Data {
        let (status, body) = try await request("GET", path)
        guard status == 200 else { throw Self.failure("GET \(path)", status, body) }
        return body
    }

    private func request(_ method: String, _ path: String) async throws -> (Int, Data) {
        let response = try await connection.request(method, path, token: token)
        return (response.status, response.body)
    }

    private static func failure(_ what: String, _ status: Int, _ body: Data) -> ScenarioError {
        ScenarioError(field: "network", reason: "\(what) answered \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
    }
}
