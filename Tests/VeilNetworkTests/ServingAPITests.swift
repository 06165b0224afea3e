import Foundation
import Testing
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilFeatures
import VeilNetworkSimulation
import VeilProtocol

/// The HTTP API over a real socket, after a real feature round: auth, reads, exports, problems.
@Suite(.serialized) struct ServingAPITests {
    static let token = "test-token-0123456789abcdef"
    static let window = 1_800_000_000

    static func request(_ harness: NetworkHarness, _ path: String, method: String = "GET", body: String? = nil, token: String? = ServingAPITests.token) async throws -> (status: Int, contentType: String, body: String, headers: [String: String]) {
        if !path.hasPrefix("/v1") {
            let (status, text) = try await harness.scrape(path)
            return (status, "", text, [:])
        }
        let response = try await harness.api(method, path, token: token, body: body)
        return (response.status, response.contentType, response.text, response.headers)
    }

    static func problemField(_ body: String) throws -> String? {
        let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [String: Any]
        return object["field"] as? String
    }

    /// From definition to values read over HTTP, on the embedded store and, by changing only the
    /// `database` setting, on PostgreSQL.
    @Test(arguments: StoreBackend.allCases)
    func featureValuesAreServedExportedAndGuarded(_ backend: StoreBackend) async throws {
        guard let scratch = try await ScratchStore.make(backend) else { return }
        defer { Task { await scratch.remove() } }
        let set = FeatureSet(name: "fleet", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "session_seconds", kind: .numeric(minimum: 0, maximum: 600, precision: 1), maximumValuesPerDevice: 10),
            Feature(name: "app_category", kind: .categorical(vocabulary: ["maps", "music"]), maximumValuesPerDevice: 10),
        ])
        let layout = try FeatureLayout(set)
        let harness = try await NetworkHarness(fixedTime: Date(timeIntervalSince1970: Double(Self.window + 4000))) { c in
            c.apiToken = Self.token
            if backend == .postgres { c.database = scratch.location }
            c.rounds.featureSet = set
            c.rounds.minimumReleaseCohort = 10
            c.rounds.minimumCohort = 10
            c.rounds.maximumCohort = 10
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 6
        }
        defer { Task { await harness.stop() } }
        var opened: [ObservationStore] = []
        for d in 0..<10 {
            let store = try ObservationStore(path: harness.directory + "/d\(d).sqlite", layout: layout, windowSeconds: 3600, retention: 86_400)
            try store.record(feature: "session_seconds", value: 100, at: Date(timeIntervalSince1970: Double(Self.window + 60)))
            try store.record(feature: "app_category", category: d < 7 ? "maps" : "music", at: Date(timeIntervalSince1970: Double(Self.window + 60)))
            opened.append(store)
        }
        let stores = opened
        let roundID = try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(10, connection: connection)
            let results = try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                for d in 0..<10 {
                    group.addTask { try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d]) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.outcome == .counted })
            return "\(results[0].configuration!.roundID)"
        }
        for _ in 0..<100 where try await harness.aggregator.featureWindows(of: set, from: Self.window, to: Self.window + 1).isEmpty {
            try await Task.sleep(for: .milliseconds(20))
        }
        let range = "from=\(Self.window)&to=\(Self.window + 3600)"

        // Authentication.
        let anonymous = try await Self.request(harness, "/v1/feature-sets", token: nil)
        #expect(anonymous.status == 401 && anonymous.contentType.hasPrefix("application/problem+json"))
        #expect(try await Self.request(harness, "/v1/feature-sets", token: "wrong-token-0123456789").status == 401)
        #expect(try await Self.request(harness, "/healthz", token: nil).status == 200, "operations endpoints need no token")

        // Reads.
        let list = try await Self.request(harness, "/v1/feature-sets")
        #expect(list.status == 200 && list.body.contains("\"name\":\"fleet\""))
        let windows = try await Self.request(harness, "/v1/feature-sets/fleet/windows?\(range)")
        #expect(windows.status == 200)
        let body = try JSONSerialization.jsonObject(with: Data(windows.body.utf8)) as! [String: Any]
        let first = try #require((body["windows"] as? [[String: Any]])?.first)
        #expect(first["contributors"] as? Int == 10)
        #expect((first["roundIDs"] as? [String]) == [roundID])
        #expect(windows.body.contains("\"maps\":7") && windows.body.contains("\"music\":3"))

        // The latest window, from memory.
        let latest = try await Self.request(harness, "/v1/feature-sets/fleet/latest")
        #expect(latest.status == 200 && latest.body.contains("\"windowStart\":\(Self.window)") && latest.body.contains("\"maps\":7"))
        let noWindow = try await Self.request(harness, "/v1/feature-sets/fleet/latest?version=9")
        #expect(noWindow.status == 404)

        // Exports.
        let csv = try await Self.request(harness, "/v1/feature-sets/fleet/export?\(range)&format=csv")
        #expect(csv.status == 200 && csv.contentType.hasPrefix("text/csv"))
        let lines = csv.body.split(separator: "\n")
        #expect(lines.first == "window_start,contributors,round_ids,feature,statistic,value")
        #expect(lines.contains("\(Self.window),10,\(roundID),session_seconds,count,10"))
        #expect(lines.contains("\(Self.window),10,\(roundID),session_seconds,mean,100.0"))
        #expect(lines.contains("\(Self.window),10,\(roundID),app_category,category:music,3"))
        let jsonl = try await Self.request(harness, "/v1/feature-sets/fleet/export?\(range)&format=jsonl")
        #expect(jsonl.status == 200 && jsonl.body.split(separator: "\n").count == 1)

        // Problems name the field.
        let badFrom = try await Self.request(harness, "/v1/feature-sets/fleet/windows?from=yesterday")
        let badFromField = try Self.problemField(badFrom.body)
        #expect(badFrom.status == 400 && badFromField == "from")
        // Issue 13, M1: this one request used to end the process with "arithmetic overflow".
        let extreme = try await Self.request(harness, "/v1/feature-sets/fleet/windows?from=-9223372036854775808&to=100")
        let extremeField = try Self.problemField(extreme.body)
        #expect(extreme.status == 400 && extremeField == "from")
        let huge = try await Self.request(harness, "/v1/feature-sets/fleet/windows?from=0&to=9223372036854775807")
        let hugeField = try Self.problemField(huge.body)
        #expect(huge.status == 400 && hugeField == "to")
        #expect(try await Self.request(harness, "/v1/feature-sets/fleet/windows?\(range)").status == 200, "the service is still up")
        let unknown = try await Self.request(harness, "/v1/feature-sets/speed/windows")
        let unknownField = try Self.problemField(unknown.body)
        #expect(unknown.status == 404 && unknownField == "name")
        let badFormat = try await Self.request(harness, "/v1/feature-sets/fleet/export?\(range)&format=xml")
        let badFormatField = try Self.problemField(badFormat.body)
        #expect(badFormat.status == 400 && badFormatField == "format")

        // Rounds.
        #expect(try await Self.request(harness, "/v1/rounds", method: "POST").status == 409, "nobody is waiting")
        let status = try await Self.request(harness, "/v1/rounds/\(roundID)")
        #expect(status.status == 200 && status.body.contains("\"outcome\":\"finished\"") && status.body.contains("\"task\":\"fleet\\/v1\\/\(Self.window)\""))
        #expect(!status.body.contains("\"result\"") && status.body.contains("served only inside its window's release"), "a feature round's own sum is never served")
        #expect(try await Self.request(harness, "/v1/rounds/nope").status == 404)
    }

    /// Define, list and retire feature sets at run time; bad definitions name the field.
    @Test func featureSetsAreDefinedListedAndRetired() async throws {
        let harness = try await NetworkHarness { c in
            c.apiToken = Self.token
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
        }
        defer { Task { await harness.stop() } }
        let definition = """
            {"name": "kiosk", "version": 1, "bitWidth": 40, "maximumCohort": 5000, "features": [
              {"name": "dwell_seconds", "kind": "numeric", "minimum": 0, "maximum": 900, "precision": 0.5, "maximumValuesPerDevice": 20},
              {"name": "taps", "kind": "eventCount", "maximumValuesPerDevice": 1000}]}
            """
        #expect(try await Self.request(harness, "/v1/feature-sets", method: "POST", body: definition, token: nil).status == 401)
        let created = try await Self.request(harness, "/v1/feature-sets", method: "POST", body: definition)
        #expect(created.status == 201 && created.body.contains("\"name\":\"kiosk\"") && created.body.contains("\"rounds\":false"))
        #expect(try await Self.request(harness, "/v1/feature-sets", method: "POST", body: definition).status == 200, "the same definition again")
        let changed = definition.replacingOccurrences(of: "\"maximumCohort\": 5000", with: "\"maximumCohort\": 6000")
        let conflict = try await Self.request(harness, "/v1/feature-sets", method: "POST", body: changed)
        let conflictField = try Self.problemField(conflict.body)
        #expect(conflict.status == 409 && conflictField == "version")

        // Malformed and invalid definitions name the member at fault.
        for (body, status, field) in [
            ("{\"name\": \"x\"", 400, nil),
            (definition.replacingOccurrences(of: "\"maximumCohort\": 5000, ", with: ""), 400, "maximumCohort"),
            (definition.replacingOccurrences(of: "\"kind\": \"numeric\"", with: "\"kind\": \"median\""), 400, "features[0].kind"),
            (definition.replacingOccurrences(of: "\"bitWidth\": 40", with: "\"bitWidth\": 70"), 422, "bitWidth"),
            (definition.replacingOccurrences(of: "\"bitWidth\": 40", with: "\"bitWidth\": 16"), 422, "features[0]"),
            (definition.replacingOccurrences(of: "\"precision\": 0.5", with: "\"precision\": -1"), 422, "features[0].precision"),
        ] as [(String, Int, String?)] {
            let answer = try await Self.request(harness, "/v1/feature-sets", method: "POST", body: body)
            #expect(answer.status == status, "\(body)")
            #expect(answer.contentType.hasPrefix("application/problem+json"))
            if let field { #expect(try Self.problemField(answer.body)?.hasPrefix(field) == true, "\(answer.body)") }
        }

        let listed = try await Self.request(harness, "/v1/feature-sets")
        #expect(listed.body.contains("\"kiosk\""))
        #expect(try await Self.request(harness, "/v1/feature-sets/kiosk/versions/1", method: "DELETE").status == 204)
        #expect(try await Self.request(harness, "/v1/feature-sets/kiosk/versions/1", method: "DELETE").status == 404)
        #expect(try await Self.request(harness, "/v1/feature-sets/kiosk/versions/one", method: "DELETE").status == 400)
        #expect(try await !Self.request(harness, "/v1/feature-sets").body.contains("\"kiosk\""))
        let retired = try await Self.request(harness, "/v1/feature-sets?includeRetired=true")
        #expect(retired.body.contains("\"kiosk\"") && retired.body.contains("\"retiredAt\":"))
        #expect(try await Self.request(harness, "/v1/feature-sets?includeRetired=maybe").status == 400)
        // A retired set's windows stay readable (none stored yet: an empty list, not a 404).
        #expect(try await Self.request(harness, "/v1/feature-sets/kiosk/windows").status == 200)
    }

    @Test func everyRouteIsDocumentedInOpenAPI() throws {
        let spec = try String(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocols/openapi.yaml"), encoding: .utf8)
        #expect(spec.hasPrefix("openapi: 3.1"))
        for (path, method) in [
            ("/healthz", "get"), ("/metrics", "get"), ("/v1/feature-sets", "get"), ("/v1/feature-sets/{name}/windows", "get"),
            ("/v1/feature-sets/{name}/export", "get"), ("/v1/rounds", "post"), ("/v1/rounds/{id}", "get"),
            ("/v1/feature-sets", "post"), ("/v1/feature-sets/{name}/versions/{version}", "delete"), ("/v1/feature-sets/{name}/latest", "get"),
            ("/v1/feature-sets/{name}/budget", "get"),
        ] {
            let block = try #require(spec.components(separatedBy: "\n  \(path):\n").dropFirst().first, "\(path) is documented")
            #expect(block.prefix(while: { _ in true }).components(separatedBy: "\n  /").first!.contains("    \(method):"), "\(method.uppercased()) \(path)")
        }
    }
}
