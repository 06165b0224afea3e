import Foundation
import Logging
import Synchronization
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilNetworkSimulation
import VeilStore

/// Issue 13, M7 and the rest of item 6: `/v1` on its own TLS listener, read and admin tokens, an
/// audit line for every administrative request, and retention.
@Suite(.serialized) struct OperatorSurfaceTests {
    static let admin = "admin-token-0123456789abcdef"
    static let reader = "read-token-0123456789abcdef"

    /// Log lines kept in memory.
    final class Capture: Sendable {
        let lines = Mutex<[(message: String, metadata: [String: String])]>([])
        var logger: Logger {
            Logger(label: "veil.audit") { _ in CaptureHandler(capture: self) }
        }
    }

    struct CaptureHandler: LogHandler {
        let capture: Capture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.lines.withLock { $0.append(("\(event.message)", merged.mapValues { "\($0)" })) }
        }
    }

    static func harness(audit: Capture = Capture()) async throws -> NetworkHarness {
        try await NetworkHarness(audit: AuditLog(logger: audit.logger)) { c in
            c.apiToken = Self.admin
            c.apiReadToken = reader
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
        }
    }

    @Test func theAPIIsServedOverTLSOnItsOwnListenerOnly() async throws {
        let harness = try await Self.harness()
        defer { Task { await harness.stop() } }
        #expect(harness.aggregator.apiPort != harness.aggregator.httpPort)
        #expect(try await harness.api("GET", "/v1/feature-sets", token: Self.reader).status == 200)
        // The operations listener serves no /v1 route, so no token ever travels to it.
        #expect(try await harness.scrape("/v1/feature-sets").status == 404)
        #expect(try await harness.scrape("/healthz").status == 200)
        // Plain HTTP to the API listener gets no answer: it speaks TLS only.
        let plain = try APIConnection(port: harness.aggregator.apiPort!, caCertificatePath: nil)
        await #expect(throws: (any Error).self) { _ = try await plain.request("GET", "/v1/feature-sets", token: Self.reader) }
        try await plain.close()
    }

    @Test func theReadTokenReadsAndNeverChangesState() async throws {
        let audit = Capture()
        let harness = try await Self.harness(audit: audit)
        defer { Task { await harness.stop() } }
        #expect(try await harness.api("GET", "/v1/feature-sets", token: Self.reader).status == 200)
        let refused = try await harness.api("POST", "/v1/rounds", token: Self.reader)
        #expect(refused.status == 403 && refused.text.contains("admin token"))
        #expect(try await harness.api("DELETE", "/v1/feature-sets/x/versions/1", token: Self.reader).status == 403)
        #expect(try await harness.api("POST", "/v1/rounds", token: "not-a-token-at-all-0000").status == 401)
        // The admin token may: too few devices wait, so the round is refused on its merits.
        #expect(try await harness.api("POST", "/v1/rounds", token: Self.admin).status == 409)

        // Every request that may change state is audited, allowed or not; reads are not; no
        // token is ever written.
        let lines = audit.lines.withLock { $0 }
        let entries = lines.map { "\($0.metadata["action"] ?? "") \($0.metadata["actor"] ?? "") \($0.metadata["outcome"] ?? "")" }
        #expect(entries == [
            "POST /v1/rounds read 403", "DELETE /v1/feature-sets/x/versions/1 read 403",
            "POST /v1/rounds unauthenticated 401", "POST /v1/rounds admin 409",
        ], "\(entries)")
        #expect(lines.allSatisfy { $0.metadata["audit"] == "true" })
        let written = lines.map { "\($0.message) \($0.metadata)" }.joined()
        #expect(!written.contains(Self.admin) && !written.contains(Self.reader))
    }

    /// L5: every listener binds an IPv6 address (the gRPC one bound IPv4 only before). Plain
    /// here: a TLS client names its server by host name, and this machine has none for ::1.
    @Test func everyListenerServesIPv6() async throws {
        let harness = try await NetworkHarness(tls: false) { c in
            c.listen = .init(host: "::1", port: 0)
            c.httpListen = .init(host: "::1", port: 0)
            c.apiListen = .init(host: "::1", port: 0)
            c.apiToken = Self.admin
            c.rounds.threshold = 5
            c.rounds.expectedDropout = 0.01
        }
        defer { Task { await harness.stop() } }
        let endpoint = AggregatorEndpoint(host: "::1", port: harness.aggregator.grpcPort!, security: .insecurePlaintext)
        try await withAggregatorConnection(to: endpoint) { connection in
            let enrolled = try await harness.enrolledIdentities(1, connection: connection)
            #expect(enrolled.count == 1)
        }
        let api = try APIConnection(host: "::1", port: harness.aggregator.apiPort!, caCertificatePath: nil)
        #expect(try await api.request("GET", "/v1/feature-sets", token: Self.admin).status == 200)
        try await api.close()
    }

    @Test func aReadTokenEqualToTheAdminTokenIsRefused() {
        var configuration = AggregatorConfiguration()
        configuration.insecurePlaintext = true
        configuration.apiToken = Self.admin
        configuration.apiReadToken = Self.admin
        #expect(throws: AggregatorConfigurationError.invalid("apiReadToken", "must differ from apiToken, or reading would grant admin")) {
            try configuration.validate()
        }
    }

    /// Retention deletes ended rounds with their results, old tokens and the contributor records
    /// of old windows, and never a running round or a window's sum.
    @Test(arguments: StoreBackend.allCases)
    func retentionForgetsWhatIsNoLongerNeeded(_ backend: StoreBackend) async throws {
        typealias R = RoundCommitStoreTests
        try await withScratchStore(backend) { _, store in
            let token = try await store.createEnrolmentToken(lifetime: 3600)
            let cohort = devices("dev-", 4)
            try await store.recordRoundStart(R.start("old", cohortSize: 4, instance: "a"))
            _ = try await R.claim(store, "old", cohort)
            try await store.commitRound(try R.finished("old", Array(cohort.prefix(3))), now: R.t0)
            try await store.recordRoundStart(R.start("live", cohortSize: 4, instance: "a"))

            let none = try await store.applyRetention(Retention(
                roundsEndedBefore: R.t0.addingTimeInterval(-1), tokensBefore: Date().addingTimeInterval(-3600), windowsStartedBefore: R.window))
            #expect(none == RetentionReport(rounds: 0, tokens: 0, contributors: 0))

            let report = try await store.applyRetention(Retention(
                roundsEndedBefore: R.t0.addingTimeInterval(1), tokensBefore: Date().addingTimeInterval(60), windowsStartedBefore: R.window + 1))
            #expect(report == RetentionReport(rounds: 1, tokens: 1, contributors: 3))
            #expect(try await store.round(id: "old") == nil)
            #expect(try await store.result(roundID: "old") == nil)
            #expect(try await store.round(id: "live")?.outcome == RoundRecord.running)
            #expect(try await store.storedWindows(of: R.fleet, from: R.window, to: R.window + 1).first?.contributors == 3, "the sum stays")
            #expect(try await store.countingRound(of: "dev-0", in: R.fleet, windowStart: R.window) == nil)
            await #expect(throws: (any Error).self) { _ = try await store.enrol(token: token, identityKey: freshIdentityKey()) }
        }
    }
}
