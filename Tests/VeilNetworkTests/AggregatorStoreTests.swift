import Foundation
import Logging
import PostgresNIO
import Testing
import VeilAggregator
import VeilCrypto
import VeilFeatures
import VeilProtocol
import VeilStore

/// The store implementations the suite runs against.
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// A fresh, empty store of one backend: a new SQLite file, or a new PostgreSQL database created
/// on the server `VEIL_TEST_POSTGRES_URL` names (`.ci/run` starts one on loopback) and dropped
/// afterwards. `location` is what the aggregator's `database` setting would say.
struct ScratchStore {
    let location: String
    private let cleanUp: @Sendable () async -> Void

    static let logger = Logger(label: "veil.test.store", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The PostgreSQL server for tests. Missing means the PostgreSQL cases are not run here, and
    /// fail under CI, where `.ci/run` must provide one.
    static var postgresURL: String? { ProcessInfo.processInfo.environment["VEIL_TEST_POSTGRES_URL"] }

    /// A scratch store, or nil when `backend` is PostgreSQL and no server is configured.
    static func make(_ backend: StoreBackend) async throws -> ScratchStore? {
        switch backend {
        case .sqlite:
            let directory = NSTemporaryDirectory() + "veil-store-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            return ScratchStore(location: directory + "/store.sqlite") { try? FileManager.default.removeItem(atPath: directory) }
        case .postgres:
            guard let url = postgresURL else {
                if ProcessInfo.processInfo.environment["CI"] != nil {
                    Issue.record("VEIL_TEST_POSTGRES_URL is not set under CI: .ci/run must start PostgreSQL")
                }
                return nil
            }
            guard let server = try PostgresLocation(parsing: url) else {
                Issue.record("VEIL_TEST_POSTGRES_URL is not a postgres:// URL")
                return nil
            }
            let name = "veil_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await admin(server) { client in try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)")) }
            var components = URLComponents(string: url)!
            components.path = "/" + name
            return ScratchStore(location: components.string!) {
                try? await admin(server) { client in try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")) }
            }
        }
    }

    /// Runs `body` with a client of the server's own database.
    private static func admin(_ server: PostgresLocation, _ body: @Sendable (PostgresClient) async throws -> Void) async throws {
        let client = PostgresClient(configuration: .init(
            host: server.host, port: server.port, username: server.username, password: server.password,
            database: server.database, tls: .disable))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }

    /// Opens the store (one more instance each call, as several aggregators would).
    func open() async throws -> any AggregatorStore {
        try await openAggregatorStore(location, logger: Self.logger)
    }

    /// Drops the scratch database or file.
    func remove() async { await cleanUp() }
}

/// A new Ed25519 identity's public key.
/// `count` distinct device ids starting with `prefix`.
func devices(_ prefix: String, _ count: Int) -> [String] {
    (0..<count).map { "\(prefix)\($0)" }
}

func freshIdentityKey() -> Ed25519.PublicKey {
    var random = SystemRandomSource()
    return Ed25519.PrivateKey(using: &random).publicKey
}

/// Runs `body` against a fresh store of `backend`, then removes it.
func withScratchStore(_ backend: StoreBackend, _ body: (ScratchStore, any AggregatorStore) async throws -> Void) async throws {
    guard let scratch = try await ScratchStore.make(backend) else { return }
    let store = try await scratch.open()
    do {
        try await body(scratch, store)
    } catch {
        await store.close()
        await scratch.remove()
        throw error
    }
    await store.close()
    await scratch.remove()
}

/// One suite, both store implementations: whatever the aggregator relies on behaves the same on
/// the embedded SQLite file and on a shared PostgreSQL database.
@Suite struct AggregatorStoreTests {
    static let fleet = FeatureSet(name: "fleet", version: 1, bitWidth: 32, maximumCohort: 50, features: [
        Feature(name: "session_seconds", kind: .numeric(minimum: 0, maximum: 600, precision: 1), maximumValuesPerDevice: 4),
        Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
    ])

    @Test(arguments: StoreBackend.allCases)
    func migrationsAreVersionedAndReopeningAppliesNothingTwice(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { scratch, store in
            let expected = ["v1: enrolment and rounds", "v2: round results", "v3: feature windows", "v4: feature set registry", "v5: window contributors", "v6: round instances", "v7: round leases", "v8: window releases", "v9: privacy ledger"]
            #expect(try await store.appliedMigrations() == expected)
            let again = try await scratch.open()
            #expect(try await again.appliedMigrations() == expected)
            await again.close()
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func enrolmentTokensWorkOnceAndRevocationSticks(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let identity = freshIdentityKey()
            let token = try await store.createEnrolmentToken(lifetime: 3600)
            #expect(try await store.status(of: identity) == .unknown)
            let id = try await store.enrol(token: token, identityKey: identity)
            #expect(id.hasPrefix("dev-"))
            #expect(try await store.status(of: identity) == .active(deviceID: id))
            await #expect(throws: EnrolmentError.tokenAlreadyUsed) {
                try await store.enrol(token: token, identityKey: freshIdentityKey())
            }
            let second = try await store.createEnrolmentToken(lifetime: 3600)
            await #expect(throws: EnrolmentError.alreadyEnrolled(id)) { try await store.enrol(token: second, identityKey: identity) }
            // The refused attempt did not consume the token.
            _ = try await store.enrol(token: second, identityKey: freshIdentityKey())
            let expired = try await store.createEnrolmentToken(lifetime: -1)
            await #expect(throws: EnrolmentError.tokenExpired) { try await store.enrol(token: expired, identityKey: freshIdentityKey()) }
            await #expect(throws: EnrolmentError.unknownToken) {
                try await store.enrol(token: "veil-enrol-" + String(repeating: "0", count: 48), identityKey: freshIdentityKey())
            }
            #expect(try await store.activeDeviceCount() == 2)
            #expect(try await store.revoke(deviceID: id))
            #expect(try await !store.revoke(deviceID: id))
            #expect(try await store.status(of: identity) == .revoked(deviceID: id))
            #expect(try await store.activeDeviceCount() == 1)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func oneTokenPresentedByTwoInstancesAtOnceEnrolsOneDevice(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { scratch, store in
            let other = try await scratch.open()
            let token = try await store.createEnrolmentToken(lifetime: 3600)
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for instance in [store, other, store, other] {
                    group.addTask {
                        (try? await instance.enrol(token: token, identityKey: freshIdentityKey())) != nil
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await store.activeDeviceCount() == 1)
            await other.close()
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func roundHistoryAndResultsRoundTrip(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let t = Date(timeIntervalSince1970: 1_800_000_000)
            let finished = RoundRecord(roundID: "aa01", task: "fleet/v1/1800000000", startedAt: t, endedAt: t.addingTimeInterval(5),
                                       cohortSize: 10, survivors: 9, outcome: "finished", reason: "")
            let aborted = RoundRecord(roundID: "aa02", task: "fleet/v1/1800000000", startedAt: t, endedAt: t.addingTimeInterval(9),
                                      cohortSize: 4, survivors: 0, outcome: "aborted", reason: "too few survivors")
            let result = RoundResultRecord(roundID: "aa01", dimension: 3, bitWidth: 16, packedSum: [1, 0, 2, 0, 3, 0], survivorBitmap: [0xFF, 0x01])
            try await store.commitRound(RoundCommit(round: finished, result: result))
            try await store.commitRound(RoundCommit(round: aborted))
            #expect(try await store.round(id: "aa01") == finished)
            #expect(try await store.round(id: "ffff") == nil)
            #expect(try await store.result(roundID: "aa01") == result)
            #expect(try await store.result(roundID: "aa02") == nil)
            #expect(try await store.recentRounds(limit: 10) == [aborted, finished])
            #expect(try await store.recentRounds(limit: 1) == [aborted])
            // A round's end is recorded once.
            await #expect(throws: AggregatorStoreError.self) { try await store.commitRound(RoundCommit(round: finished, result: result)) }
            await #expect(throws: AggregatorStoreError.self) { try await store.commitRound(RoundCommit(round: aborted)) }
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func windowSumsAddAndReleaseOnlyAboveTheMinimumCohort(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let layout = try FeatureLayout(Self.fleet)
            let window = 1_800_000_000
            let one = ModularVector(reducing: (0..<layout.dimension).map { Int64($0 + 1) }, bitWidth: 32)
            try await store.addToWindow(Self.fleet, windowStart: window, roundID: "r1", sum: one, contributorIDs: devices("a", 20))
            try await store.addToWindow(Self.fleet, windowStart: window, roundID: "r2", sum: one, contributorIDs: devices("b", 25))
            try await store.addToWindow(Self.fleet, windowStart: window + 3600, roundID: "r3", sum: one, contributorIDs: devices("c", 5))
            let stored = try await store.storedWindows(of: Self.fleet, from: window, to: window + 7200)
            #expect(stored.map(\.windowStart) == [window, window + 3600])
            #expect(stored[0].contributors == 45)
            #expect(stored[0].roundIDs == ["r1", "r2"])
            #expect(stored[0].sum.elements == one.elements.map { $0 * 2 })
            #expect(try await store.newestWindow(of: Self.fleet)?.roundIDs == ["r3"])

            let released = try await store.windows(of: layout, from: window, to: window + 7200, minimumReleaseCohort: 10)
            #expect(released[0].values != nil)
            #expect(released[0].contributors == 45 && released[0].releases == 2, "20, then 25 more: each at least the minimum of 10")
            #expect(released[1].values == nil, "5 contributors are below the minimum release cohort of 10")
            #expect(released[1].contributors == 0 && released[1].pendingContributors == 5)

            // The overflow check assumed at most maximumCohort (50) devices per window.
            await #expect(throws: FeatureWindowError.windowOverflow(window: window, contributors: 51, maximum: 50)) {
                try await store.addToWindow(Self.fleet, windowStart: window, roundID: "r4", sum: one, contributorIDs: devices("d", 6))
            }
            await #expect(throws: (any Error).self, "a round is added once") {
                try await store.addToWindow(Self.fleet, windowStart: window, roundID: "r2", sum: one, contributorIDs: devices("e", 1))
            }
            #expect(try await store.storedWindows(of: Self.fleet, from: window, to: window + 1) == [stored[0]], "refusals change nothing")
            // Another version of the set has its own windows.
            var v2 = Self.fleet
            v2.version = 2
            #expect(try await store.storedWindows(of: v2, from: window, to: window + 7200).isEmpty)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func aDeviceCountsAtMostOncePerWindow(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let layout = try FeatureLayout(Self.fleet)
            let one = ModularVector(reducing: [Int64](repeating: 1, count: layout.dimension), bitWidth: 32)
            let window = 1_800_007_200
            let t0 = Date(timeIntervalSince1970: 1_800_010_000)
            let cohort = devices("dev-", 6)
            let first = try await store.claimWindow(Self.fleet, windowStart: window, roundID: "round-a", deviceIDs: cohort, staleBefore: t0.addingTimeInterval(-600), now: t0)
            #expect(first.claimed == cohort && first.busy.isEmpty && first.alreadyCounted.isEmpty)
            // While round-a runs, its devices cannot join another round of the window.
            let during = try await store.claimWindow(Self.fleet, windowStart: window, roundID: "round-b", deviceIDs: ["dev-0", "new-1"], staleBefore: t0.addingTimeInterval(-600), now: t0)
            #expect(during.claimed == ["new-1"] && during.busy == ["dev-0"])
            // round-a counts four devices (dev-4 and dev-5 dropped before their masked input).
            try await store.addToWindow(Self.fleet, windowStart: window, roundID: "round-a", sum: one, contributorIDs: Array(cohort.prefix(4)), now: t0)
            #expect(try await store.countingRound(of: "dev-1", in: Self.fleet, windowStart: window) == "round-a")
            #expect(try await store.countingRound(of: "dev-5", in: Self.fleet, windowStart: window) == nil)
            let after = try await store.claimWindow(Self.fleet, windowStart: window, roundID: "round-c", deviceIDs: cohort, staleBefore: t0.addingTimeInterval(-600), now: t0)
            #expect(after.claimed == ["dev-4", "dev-5"], "the dropped devices may contribute later in the window")
            #expect(after.alreadyCounted == ["dev-0": "round-a", "dev-1": "round-a", "dev-2": "round-a", "dev-3": "round-a"])
            // A round that would count a device twice is refused whole and changes nothing.
            await #expect(throws: FeatureWindowError.alreadyCounted(window: window, devices: ["dev-2"])) {
                try await store.addToWindow(Self.fleet, windowStart: window, roundID: "round-c", sum: one, contributorIDs: ["dev-4", "dev-2"], now: t0)
            }
            await #expect(throws: FeatureWindowError.alreadyCounted(window: window, devices: ["dev-4"])) {
                try await store.addToWindow(Self.fleet, windowStart: window, roundID: "round-c", sum: one, contributorIDs: ["dev-4", "dev-4"], now: t0)
            }
            #expect(try await store.storedWindows(of: Self.fleet, from: window, to: window + 1).first?.contributors == 4)
            // An aborted round releases its claims; a claim older than its lifetime is taken over.
            try await store.commitRound(RoundCommit(round: RoundRecord(
                roundID: "round-c", task: "fleet/v1/\(window)", startedAt: t0, endedAt: t0, cohortSize: 6, survivors: 0,
                outcome: RoundRecord.aborted, reason: "test")), now: t0)
            let retry = try await store.claimWindow(Self.fleet, windowStart: window, roundID: "round-d", deviceIDs: ["dev-4", "new-1"], staleBefore: t0.addingTimeInterval(-600), now: t0)
            #expect(retry.claimed == ["dev-4"] && retry.busy == ["new-1"])
            let later = t0.addingTimeInterval(3600)
            let takeover = try await store.claimWindow(Self.fleet, windowStart: window, roundID: "round-e", deviceIDs: ["new-1"], staleBefore: later.addingTimeInterval(-600), now: later)
            #expect(takeover.claimed == ["new-1"], "round-b's claim outlived any round")
            // Other windows and versions are independent.
            let next = try await store.claimWindow(Self.fleet, windowStart: window + 3600, roundID: "round-f", deviceIDs: ["dev-0"], staleBefore: t0, now: t0)
            #expect(next.claimed == ["dev-0"])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func twoInstancesClaimingOneWindowShareNoDevice(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { scratch, store in
            let other = try await scratch.open()
            let cohort = devices("dev-", 200)
            let window = 1_800_010_800
            let now = Date(timeIntervalSince1970: 1_800_020_000)
            let claims = try await withThrowingTaskGroup(of: WindowClaims.self) { group in
                for r in 0..<8 {
                    let instance = r % 2 == 0 ? store : other
                    group.addTask {
                        try await instance.claimWindow(Self.fleet, windowStart: window, roundID: "round-\(r)", deviceIDs: cohort.shuffled(), staleBefore: now.addingTimeInterval(-600), now: now)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let claimed = claims.flatMap(\.claimed)
            #expect(claimed.count == Self.fleet.maximumCohort, "claims fill the window's capacity and no more")
            #expect(Set(claimed).count == claimed.count, "no device claimed by two rounds")
            await other.close()
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func twoInstancesAddingToOneWindowLoseNothing(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { scratch, store in
            let other = try await scratch.open()
            let layout = try FeatureLayout(Self.fleet)
            let unit = ModularVector(reducing: [Int64](repeating: 1, count: layout.dimension), bitWidth: 32)
            let window = 1_800_003_600
            try await withThrowingTaskGroup(of: Void.self) { group in
                for r in 0..<24 {
                    let instance = r % 2 == 0 ? store : other
                    group.addTask { try await instance.addToWindow(Self.fleet, windowStart: window, roundID: "round-\(r)", sum: unit, contributorIDs: devices("r\(r)-", 2)) }
                }
                try await group.waitForAll()
            }
            let stored = try #require(try await other.storedWindows(of: Self.fleet, from: window, to: window + 1).first)
            #expect(stored.contributors == 48)
            #expect(Set(stored.roundIDs).count == 24)
            #expect(stored.sum.elements.allSatisfy { $0 == 24 })
            await other.close()
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func featureSetVersionsAreImmutableAndRetiredOnesStayReadable(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            #expect(try await store.define(Self.fleet))
            #expect(try await !store.define(Self.fleet), "the same definition again is a no-op")
            var changed = Self.fleet
            changed.maximumCohort = 10
            await #expect(throws: FeatureSetRegistryError.conflictingDefinition(name: "fleet", version: 1)) { try await store.define(changed) }
            changed.version = 2
            #expect(try await store.define(changed))
            #expect(try await store.featureSets(includingRetired: false).map(\.featureSet) == [Self.fleet, changed])
            #expect(try await store.retire(name: "fleet", version: 1))
            #expect(try await !store.retire(name: "fleet", version: 1))
            #expect(try await !store.retire(name: "nothing", version: 1))
            #expect(try await store.featureSets(includingRetired: false).map(\.featureSet) == [changed])
            let all = try await store.featureSets(includingRetired: true)
            #expect(all.map(\.featureSet) == [Self.fleet, changed])
            #expect(all[0].retiredAt != nil && all[1].retiredAt == nil)
        }
    }
}

extension AggregatorStore {
    /// Commits a finished feature round that adds `sum` from `contributorIDs` into a window:
    /// the store's one end-of-round transaction, with a result shaped like the aggregator's.
    func addToWindow(
        _ set: FeatureSet, windowStart: Int, roundID: String, sum: ModularVector, contributorIDs: [String], now: Date = Date(),
        minimumReleaseCohort: Int = 10
    ) async throws {
        let record = RoundRecord(roundID: roundID, task: "\(set.name)/v\(set.version)/\(windowStart)", startedAt: now, endedAt: now,
                                 cohortSize: contributorIDs.count, survivors: contributorIDs.count, outcome: RoundRecord.finished, reason: "")
        let result = RoundResultRecord(roundID: roundID, dimension: sum.count, bitWidth: sum.bitWidth, packedSum: sum.packed(), survivorBitmap: [])
        try await commitRound(RoundCommit(
            round: record, result: result,
            window: WindowMerge(
                featureSet: set, windowStart: windowStart, sum: sum, contributorIDs: contributorIDs, minimumReleaseCohort: minimumReleaseCohort)),
            now: now)
    }
}
