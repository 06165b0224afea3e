public import Foundation
public import Logging
import NIOSSL
import PostgresNIO
public import VeilCrypto
public import VeilFeatures
import VeilProtocol

/// The ``AggregatorStore`` on PostgreSQL (postgres-nio), for several aggregator instances sharing
/// one store. Selected by a `postgres://` URL in the `database` setting.
///
/// Migrations run in one transaction under an advisory lock, so instances starting together
/// apply each one once; window sums are merged under a per-window advisory lock, so two instances
/// finishing rounds of one window never lose an addition.
public final class PostgresAggregatorStore: AggregatorStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    /// Where the store is, without the password.
    public let location: PostgresLocation

    /// Connects to `location`, then creates and migrates the schema.
    public init(location: PostgresLocation, logger: Logger) async throws {
        self.location = location
        self.logger = logger
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.username, password: try location.resolvedPassword(),
            database: location.database, tls: location.tls())
        configuration.options.maximumConnections = 16
        configuration.options.connectTimeout = .seconds(10)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
        do {
            try await migrate()
        } catch {
            runner.cancel()
            throw AggregatorStoreError("cannot open the PostgreSQL store at \(location): \(Self.describe(error))")
        }
    }

    public func close() async {
        runner.cancel()
        await runner.value
    }

    // MARK: Migrations

    /// The schema, one versioned migration at a time; the names match ``SQLiteAggregatorStore``'s.
    static let migrations: [(version: String, statements: [String])] = [
        ("v1: enrolment and rounds", [
            """
            CREATE TABLE enrolment_token (token_hash BYTEA PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL,
              expires_at DOUBLE PRECISION NOT NULL, used_by TEXT)
            """,
            """
            CREATE TABLE device (device_id TEXT PRIMARY KEY, identity_key BYTEA NOT NULL UNIQUE,
              enrolled_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)
            """,
            """
            CREATE TABLE round (round_id TEXT PRIMARY KEY, task TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,
              ended_at DOUBLE PRECISION NOT NULL, cohort_size BIGINT NOT NULL, survivors BIGINT NOT NULL,
              outcome TEXT NOT NULL, reason TEXT NOT NULL)
            """,
            "CREATE INDEX round_ended_at ON round (ended_at DESC)",
        ]),
        ("v2: round results", [
            """
            CREATE TABLE round_result (round_id TEXT PRIMARY KEY REFERENCES round (round_id) ON DELETE CASCADE,
              dimension BIGINT NOT NULL, bit_width BIGINT NOT NULL, sum BYTEA NOT NULL, survivor_bitmap BYTEA NOT NULL)
            """,
        ]),
        ("v3: feature windows", [
            """
            CREATE TABLE window_aggregate (feature_set TEXT NOT NULL, version BIGINT NOT NULL, window_start BIGINT NOT NULL,
              dimension BIGINT NOT NULL, bit_width BIGINT NOT NULL, sum BYTEA NOT NULL, contributors BIGINT NOT NULL,
              round_ids TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (feature_set, version, window_start))
            """,
        ]),
        ("v4: feature set registry", [
            """
            CREATE TABLE feature_set (name TEXT NOT NULL, version BIGINT NOT NULL, definition TEXT NOT NULL,
              defined_at DOUBLE PRECISION NOT NULL, retired_at DOUBLE PRECISION, PRIMARY KEY (name, version))
            """,
        ]),
        ("v5: window contributors", [
            """
            CREATE TABLE window_contributor (feature_set TEXT NOT NULL, version BIGINT NOT NULL, window_start BIGINT NOT NULL,
              device_id TEXT NOT NULL, round_id TEXT NOT NULL, counted BOOLEAN NOT NULL, claimed_at DOUBLE PRECISION NOT NULL,
              PRIMARY KEY (feature_set, version, window_start, device_id))
            """,
            "CREATE INDEX window_contributor_round ON window_contributor (round_id)",
        ]),
        ("v6: round instances", [
            "ALTER TABLE round ADD COLUMN instance TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX round_running ON round (outcome, instance)",
        ]),
        ("v7: round leases", [
            "ALTER TABLE round ADD COLUMN lease_expires_at DOUBLE PRECISION",
            "ALTER TABLE round ADD COLUMN lease_generation BIGINT NOT NULL DEFAULT 0",
        ]),
        ("v8: window releases", [
            """
            ALTER TABLE window_aggregate ADD COLUMN released_sum BYTEA,
              ADD COLUMN released_contributors BIGINT NOT NULL DEFAULT 0,
              ADD COLUMN released_round_ids TEXT NOT NULL DEFAULT '[]',
              ADD COLUMN release_count BIGINT NOT NULL DEFAULT 0
            """,
            """
            UPDATE window_aggregate SET released_sum = sum, released_contributors = contributors,
              released_round_ids = round_ids, release_count = 1
            """,
        ]),
        ("v9: privacy ledger", [
            """
            CREATE TABLE privacy_ledger (feature_set TEXT NOT NULL, window_start BIGINT NOT NULL, version BIGINT NOT NULL,
              round_id TEXT NOT NULL, variance DOUBLE PRECISION NOT NULL, devices BIGINT NOT NULL, dimension BIGINT NOT NULL,
              l2_sensitivity DOUBLE PRECISION NOT NULL, l1_sensitivity DOUBLE PRECISION NOT NULL, charged_at DOUBLE PRECISION NOT NULL,
              PRIMARY KEY (feature_set, window_start))
            """,
        ]),
    ]

    /// The database's own time in seconds since the epoch, as SQL (leases are measured in it;
    /// clock_timestamp, not the transaction's start, so a long transaction cannot stretch one).
    static let databaseNow = "extract(epoch from clock_timestamp())::double precision"
    /// Whether the round row `r` holds its lease now, as SQL.
    static let roundHoldsLease = "(r.outcome = 'running' AND (r.lease_expires_at IS NULL OR r.lease_expires_at > \(databaseNow)))"

    /// An arbitrary constant naming the migration lock among this database's advisory locks.
    private static let migrationLock = 0x7665_696C_0001

    private func migrate() async throws {
        let logger = logger
        try await transaction { connection in
            // Held until the transaction ends: instances starting together migrate one at a time.
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS veil_migration (version TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)
                """, logger: logger)
            var applied = Set<String>()
            for row in try await connection.query("SELECT version FROM veil_migration", logger: logger).collect() {
                applied.insert(try row.decode(String.self))
            }
            for migration in Self.migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO veil_migration (version, applied_at) VALUES (\(migration.version), \(Date().timeIntervalSince1970))", logger: logger)
                logger.info("applied store migration", metadata: ["version": "\(migration.version)"])
            }
        }
    }

    public func ping() async throws {
        try await execute("SELECT 1")
    }

    public func appliedMigrations() async throws -> [String] {
        try await rows("SELECT version FROM veil_migration ORDER BY applied_at, version").map { try $0.decode(String.self) }
    }

    // MARK: Enrolment

    public func createEnrolmentToken(lifetime: TimeInterval, now: Date) async throws -> String {
        let token = StoreNames.newEnrolmentToken()
        let hash = Data(StoreNames.tokenHash(token))
        try await execute("""
            INSERT INTO enrolment_token (token_hash, created_at, expires_at)
            VALUES (\(hash), \(now.timeIntervalSince1970), \(now.timeIntervalSince1970 + lifetime))
            """)
        return token
    }

    public func enrol(token: String, identityKey: Ed25519.PublicKey, now: Date) async throws(EnrolmentError) -> String {
        let hash = Data(StoreNames.tokenHash(token))
        let deviceID = StoreNames.deviceID(for: identityKey)
        let key = Data(identityKey.rawRepresentation)
        let t = now.timeIntervalSince1970
        let logger = logger
        let result: Result<String, EnrolmentError>
        do {
            // Read before write: an unknown, used or expired token is refused from a plain read,
            // never taking a row lock or a transaction.
            guard let token = try await rows("SELECT expires_at, used_by FROM enrolment_token WHERE token_hash = \(hash)").first else {
                throw EnrolmentError.unknownToken
            }
            let (expiresAt, usedBy) = try token.decode((Double, String?).self)
            if usedBy != nil { throw EnrolmentError.tokenAlreadyUsed }
            if expiresAt < t { throw EnrolmentError.tokenExpired }
            result = try await transaction { connection -> Result<String, EnrolmentError> in
                // FOR UPDATE: two instances presenting one token at once cannot both use it.
                let tokens = try await connection.query(
                    "SELECT expires_at, used_by FROM enrolment_token WHERE token_hash = \(hash) FOR UPDATE", logger: logger).collect()
                guard let row = tokens.first else { return .failure(.unknownToken) }
                let (expiresAt, usedBy) = try row.decode((Double, String?).self)
                if usedBy != nil { return .failure(.tokenAlreadyUsed) }
                if expiresAt < t { return .failure(.tokenExpired) }
                let inserted = try await connection.query("""
                    INSERT INTO device (device_id, identity_key, enrolled_at) VALUES (\(deviceID), \(key), \(t))
                    ON CONFLICT DO NOTHING RETURNING device_id
                    """, logger: logger).collect()
                guard !inserted.isEmpty else { return .failure(.alreadyEnrolled(deviceID)) }
                try await connection.query("UPDATE enrolment_token SET used_by = \(deviceID) WHERE token_hash = \(hash)", logger: logger)
                return .success(deviceID)
            }
        } catch let refusal as EnrolmentError {
            throw refusal
        } catch {
            throw .storage(Self.describe(error))
        }
        return try result.get()
    }

    public func revoke(deviceID: String, now: Date) async throws -> Bool {
        try await !rows("""
            UPDATE device SET revoked_at = \(now.timeIntervalSince1970) WHERE device_id = \(deviceID) AND revoked_at IS NULL RETURNING device_id
            """).isEmpty
    }

    public func activeDeviceIDs(among deviceIDs: [String]) async throws -> Set<String> {
        guard !deviceIDs.isEmpty else { return [] }
        return Set(try await rows("SELECT device_id FROM device WHERE device_id = ANY(\(deviceIDs)) AND revoked_at IS NULL").map { try $0.decode(String.self) })
    }

    public func status(of identityKey: Ed25519.PublicKey) async throws -> DeviceStatus {
        let key = Data(identityKey.rawRepresentation)
        guard let row = try await rows("SELECT device_id, revoked_at FROM device WHERE identity_key = \(key)").first else { return .unknown }
        let (id, revokedAt) = try row.decode((String, Double?).self)
        return revokedAt == nil ? .active(deviceID: id) : .revoked(deviceID: id)
    }

    public func activeDeviceCount() async throws -> Int {
        try await rows("SELECT COUNT(*) FROM device WHERE revoked_at IS NULL").first?.decode(Int.self) ?? 0
    }

    // MARK: Rounds

    public func recordRoundStart(_ start: RoundStart) async throws {
        try await execute("""
            INSERT INTO round (round_id, task, started_at, ended_at, cohort_size, survivors, outcome, reason, instance, lease_expires_at)
            VALUES (\(start.roundID), \(start.task), \(start.startedAt.timeIntervalSince1970), \(start.startedAt.timeIntervalSince1970),
                    \(start.cohortSize), 0, \(RoundRecord.running), '', \(start.instance), \(unescaped: Self.databaseNow) + \(start.leaseSeconds))
            """)
    }

    public func renewLease(roundID: String, instance: String, leaseSeconds: Double) async throws -> Bool {
        try await !rows("""
            UPDATE round SET lease_expires_at = \(unescaped: Self.databaseNow) + \(leaseSeconds), lease_generation = lease_generation + 1
            WHERE round_id = \(roundID) AND instance = \(instance) AND outcome = \(RoundRecord.running)
              AND lease_expires_at > \(unescaped: Self.databaseNow)
            RETURNING round_id
            """).isEmpty
    }

    public func commitRound(_ commit: RoundCommit, now: Date) async throws {
        let logger = logger
        try await transaction { connection in
            let round = commit.round
            // The round's row is locked first, so two commits of one round serialise here.
            let existing = try await connection.query("""
                SELECT outcome, (lease_expires_at IS NULL OR lease_expires_at > \(unescaped: Self.databaseNow)) FROM round
                WHERE round_id = \(round.roundID) FOR UPDATE
                """, logger: logger).collect().first?.decode((String, Bool).self)
            if let (outcome, held) = existing {
                guard outcome == RoundRecord.running else {
                    throw AggregatorStoreError("round \(round.roundID) already ended (\(outcome)); its end is not recorded twice")
                }
                guard commit.window == nil || held else { throw RoundLeaseLost(roundID: round.roundID) }
            }
            if let merge = commit.window {
                try await Self.merge(connection, merge, roundID: round.roundID, now: now, logger)
            }
            try await connection.query("""
                INSERT INTO round (round_id, task, started_at, ended_at, cohort_size, survivors, outcome, reason)
                VALUES (\(round.roundID), \(round.task), \(round.startedAt.timeIntervalSince1970), \(round.endedAt.timeIntervalSince1970),
                        \(round.cohortSize), \(round.survivors), \(round.outcome), \(round.reason))
                ON CONFLICT (round_id) DO UPDATE SET
                  ended_at = excluded.ended_at, cohort_size = excluded.cohort_size, survivors = excluded.survivors,
                  outcome = excluded.outcome, reason = excluded.reason
                """, logger: logger)
            if let result = commit.result {
                try await connection.query("""
                    INSERT INTO round_result (round_id, dimension, bit_width, sum, survivor_bitmap)
                    VALUES (\(result.roundID), \(result.dimension), \(result.bitWidth), \(Data(result.packedSum)), \(Data(result.survivorBitmap)))
                    """, logger: logger)
            }
            try await Self.releaseClaims(connection, of: [round.roundID], logger)
        }
    }

    /// Releases the claims of `roundIDs` on devices they did not count, inside the caller's transaction.
    private static func releaseClaims(_ connection: PostgresConnection, of roundIDs: [String], _ logger: Logger) async throws {
        try await connection.query("DELETE FROM window_contributor WHERE round_id = ANY(\(roundIDs)) AND NOT counted", logger: logger)
    }

    public func discardRound(roundID: String) async throws {
        let logger = logger
        try await transaction { connection in
            try await Self.releaseClaims(connection, of: [roundID], logger)
            try await connection.query("DELETE FROM round WHERE round_id = \(roundID) AND outcome = \(RoundRecord.running)", logger: logger)
        }
    }

    public func recoverRounds(instance: String?, now: Date) async throws -> [String] {
        let logger = logger
        return try await transaction { connection in
            let rows = try await connection.query("""
                UPDATE round SET outcome = \(RoundRecord.aborted), ended_at = \(now.timeIntervalSince1970),
                  reason = CASE WHEN instance = \(instance) THEN \(RoundRecord.instanceStoppedReason) ELSE \(RoundRecord.leaseExpiredReason) END
                WHERE outcome = \(RoundRecord.running)
                  AND ((lease_expires_at IS NOT NULL AND lease_expires_at <= \(unescaped: Self.databaseNow)) OR instance = \(instance))
                RETURNING round_id
                """, logger: logger).collect()
            let ids = try rows.map { try $0.decode(String.self) }.sorted()
            if !ids.isEmpty {
                try await Self.releaseClaims(connection, of: ids, logger)
            }
            return ids
        }
    }

    public func applyRetention(_ retention: Retention) async throws -> RetentionReport {
        let logger = logger
        let cutoff = retention.tokensBefore.timeIntervalSince1970
        let roundsBefore = retention.roundsEndedBefore.timeIntervalSince1970
        let windowsBefore = Int64(retention.windowsStartedBefore)
        return try await transaction { connection in
            let rounds = try await connection.query(
                "DELETE FROM round WHERE outcome <> \(RoundRecord.running) AND ended_at < \(roundsBefore) RETURNING round_id",
                logger: logger).collect().count
            let tokens = try await connection.query(
                "DELETE FROM enrolment_token WHERE created_at < \(cutoff) OR expires_at < \(cutoff) RETURNING created_at",
                logger: logger).collect().count
            let contributors = try await connection.query(
                "DELETE FROM window_contributor WHERE window_start < \(windowsBefore) RETURNING window_start",
                logger: logger).collect().count
            return RetentionReport(rounds: rounds, tokens: tokens, contributors: contributors)
        }
    }

    private static let roundColumns = "round_id, task, started_at, ended_at, cohort_size, survivors, outcome, reason"

    public func round(id roundID: String) async throws -> RoundRecord? {
        try await rows("SELECT \(unescaped: Self.roundColumns) FROM round WHERE round_id = \(roundID)").first.map(Self.roundRecord)
    }

    public func result(roundID: String) async throws -> RoundResultRecord? {
        guard let row = try await rows("""
            SELECT round_id, dimension, bit_width, sum, survivor_bitmap FROM round_result WHERE round_id = \(roundID)
            """).first else { return nil }
        let (id, dimension, bitWidth, sum, bitmap) = try row.decode((String, Int, Int, Data, Data).self)
        return RoundResultRecord(roundID: id, dimension: dimension, bitWidth: bitWidth, packedSum: Array(sum), survivorBitmap: Array(bitmap))
    }

    public func recentRounds(limit: Int) async throws -> [RoundRecord] {
        try await rows("SELECT \(unescaped: Self.roundColumns) FROM round ORDER BY ended_at DESC, round_id LIMIT \(limit)").map(Self.roundRecord)
    }

    private static func roundRecord(_ row: PostgresRow) throws -> RoundRecord {
        let (id, task, startedAt, endedAt, cohortSize, survivors, outcome, reason) =
            try row.decode((String, String, Double, Double, Int, Int, String, String).self)
        return RoundRecord(
            roundID: id, task: task, startedAt: Date(timeIntervalSince1970: startedAt), endedAt: Date(timeIntervalSince1970: endedAt),
            cohortSize: cohortSize, survivors: survivors, outcome: outcome, reason: reason)
    }

    // MARK: Feature windows

    private static let windowColumns = """
        window_start, dimension, bit_width, sum, contributors, round_ids, released_sum, released_contributors, released_round_ids, release_count
        """

    /// Takes the lock that serialises every change to one window (its sum and its contributors)
    /// across the instances sharing the store, until the transaction ends.
    private static func lockWindow(_ connection: PostgresConnection, _ set: FeatureSet, _ windowStart: Int, _ logger: Logger) async throws {
        let lockKey = "window/\(set.name)/\(set.version)/\(windowStart)"
        try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(lockKey), 0))", logger: logger)
    }

    /// The stored contributor entries of `deviceIDs` in one window.
    private static func contributorEntries(
        _ connection: PostgresConnection, _ set: FeatureSet, _ windowStart: Int, _ deviceIDs: [String], _ logger: Logger
    ) async throws -> [String: ContributorEntry] {
        var entries: [String: ContributorEntry] = [:]
        let rows = try await connection.query("""
            SELECT wc.device_id, wc.round_id, wc.counted, wc.claimed_at, r.round_id IS NOT NULL, COALESCE(\(unescaped: roundHoldsLease), FALSE)
            FROM window_contributor wc LEFT JOIN round r ON r.round_id = wc.round_id
            WHERE wc.feature_set = \(set.name) AND wc.version = \(set.version) AND wc.window_start = \(windowStart) AND wc.device_id = ANY(\(deviceIDs))
            """, logger: logger).collect()
        for row in rows {
            let (id, roundID, counted, claimedAt, recorded, live) = try row.decode((String, String, Bool, Double, Bool, Bool).self)
            entries[id] = ContributorEntry(roundID: roundID, counted: counted, claimedAt: claimedAt, roundLive: recorded ? live : nil)
        }
        return entries
    }

    public func claimWindow(_ set: FeatureSet, windowStart: Int, roundID: String, deviceIDs: [String], staleBefore: Date, now: Date) async throws -> WindowClaims {
        let logger = logger
        return try await transaction { connection in
            try await Self.lockWindow(connection, set, windowStart, logger)
            let existing = try await Self.contributorEntries(connection, set, windowStart, deviceIDs, logger)
            let occupied = try await connection.query("""
                SELECT COUNT(*) FROM window_contributor wc LEFT JOIN round r ON r.round_id = wc.round_id
                WHERE wc.feature_set = \(set.name) AND wc.version = \(set.version) AND wc.window_start = \(windowStart)
                  AND (wc.counted OR (r.round_id IS NULL AND wc.claimed_at >= \(staleBefore.timeIntervalSince1970)) OR \(unescaped: Self.roundHoldsLease))
                """, logger: logger).collect().first?.decode(Int.self) ?? 0
            let claims = WindowClaims.deciding(
                deviceIDs, existing: existing, staleBefore: staleBefore.timeIntervalSince1970, occupied: occupied, capacity: set.maximumCohort)
            if !claims.claimed.isEmpty {
                try await connection.query("""
                    INSERT INTO window_contributor (feature_set, version, window_start, device_id, round_id, counted, claimed_at)
                    SELECT \(set.name), \(set.version), \(windowStart), id, \(roundID), FALSE, \(now.timeIntervalSince1970)
                    FROM unnest(\(claims.claimed)::text[]) AS id
                    ON CONFLICT (feature_set, version, window_start, device_id) DO UPDATE SET
                      round_id = excluded.round_id, claimed_at = excluded.claimed_at
                    """, logger: logger)
            }
            return claims
        }
    }


    public func countedWindows(of deviceID: String, in set: FeatureSet, windowStarts: [Int]) async throws -> [Int: String] {
        guard !windowStarts.isEmpty else { return [:] }
        let rows = try await rows("""
            SELECT window_start, round_id FROM window_contributor
            WHERE feature_set = \(set.name) AND version = \(set.version) AND device_id = \(deviceID) AND counted
              AND window_start = ANY(\(windowStarts.map(Int64.init)))
            """)
        return Dictionary(try rows.map { try $0.decode((Int64, String).self) }.map { (Int($0.0), $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// Adds `merge` into its window inside the caller's transaction, under the window's lock:
    /// refuses devices already counted or claimed by another round, and a window that would
    /// overflow; marks the contributors counted and writes the new running sum.
    private static func merge(_ connection: PostgresConnection, _ merge: WindowMerge, roundID: String, now: Date, _ logger: Logger) async throws {
        let set = merge.featureSet, windowStart = merge.windowStart, sum = merge.sum, contributorIDs = merge.contributorIDs
        // Serialises the read-add-write of one window across every instance sharing the store.
        try await lockWindow(connection, set, windowStart, logger)
        let conflicts = ContributorEntry.conflicts(
            contributorIDs, existing: try await contributorEntries(connection, set, windowStart, contributorIDs, logger), roundID: roundID)
        guard conflicts.isEmpty else { throw FeatureWindowError.alreadyCounted(window: windowStart, devices: conflicts) }
        if !contributorIDs.isEmpty {
            let revoked = try await connection.query("""
                SELECT device_id FROM device WHERE device_id = ANY(\(contributorIDs)) AND revoked_at IS NOT NULL ORDER BY device_id
                """, logger: logger).collect().map { try $0.decode(String.self) }
            guard revoked.isEmpty else { throw FeatureWindowError.revokedDuringRound(window: windowStart, devices: revoked) }
        }
        let stored = try await connection.query("""
            SELECT \(unescaped: windowColumns) FROM window_aggregate
            WHERE feature_set = \(set.name) AND version = \(set.version) AND window_start = \(windowStart)
            """, logger: logger).collect().first.map(storedWindow)
        let merged = try StoredWindow.merging(
            stored, set, windowStart: windowStart, roundID: roundID, sum: sum, contributors: contributorIDs.count,
            minimumReleaseCohort: merge.minimumReleaseCohort)
        if !contributorIDs.isEmpty {
            try await connection.query("""
                INSERT INTO window_contributor (feature_set, version, window_start, device_id, round_id, counted, claimed_at)
                SELECT \(set.name), \(set.version), \(windowStart), id, \(roundID), TRUE, \(now.timeIntervalSince1970)
                FROM unnest(\(contributorIDs)::text[]) AS id
                ON CONFLICT (feature_set, version, window_start, device_id) DO UPDATE SET counted = TRUE
                """, logger: logger)
        }
        let release = merged.release
        try await connection.query("""
            INSERT INTO window_aggregate (feature_set, version, window_start, dimension, bit_width, sum, contributors, round_ids, updated_at,
              released_sum, released_contributors, released_round_ids, release_count)
            VALUES (\(set.name), \(set.version), \(windowStart), \(sum.count), \(sum.bitWidth), \(Data(merged.sum.packed())),
                    \(merged.contributors), \(StoredWindow.json(merged.roundIDs)), \(now.timeIntervalSince1970),
                    \(release.map { Data($0.sum.packed()) }), \(release?.contributors ?? 0), \(StoredWindow.json(release?.roundIDs ?? [])),
                    \(release?.sequence ?? 0))
            ON CONFLICT (feature_set, version, window_start) DO UPDATE SET
              sum = excluded.sum, contributors = excluded.contributors, round_ids = excluded.round_ids, updated_at = excluded.updated_at,
              released_sum = excluded.released_sum, released_contributors = excluded.released_contributors,
              released_round_ids = excluded.released_round_ids, release_count = excluded.release_count
            """, logger: logger)
    }

    public func storedWindows(of set: FeatureSet, from: Int, to: Int) async throws -> [StoredWindow] {
        try await rows("""
            SELECT \(unescaped: Self.windowColumns) FROM window_aggregate
            WHERE feature_set = \(set.name) AND version = \(set.version) AND window_start >= \(from) AND window_start < \(to)
            ORDER BY window_start
            """).map(Self.storedWindow)
    }

    public func newestWindow(of set: FeatureSet) async throws -> StoredWindow? {
        try await rows("""
            SELECT \(unescaped: Self.windowColumns) FROM window_aggregate
            WHERE feature_set = \(set.name) AND version = \(set.version) ORDER BY window_start DESC LIMIT 1
            """).first.map(Self.storedWindow)
    }

    private static func storedWindow(_ row: PostgresRow) throws -> StoredWindow {
        let (start, dimension, bitWidth, sum, contributors, roundIDs, releasedSum, releasedContributors, releasedRoundIDs, releases) =
            try row.decode((Int, Int, Int, Data, Int, String, Data?, Int, String, Int).self)
        let release = try releasedSum.map { sum in
            WindowRelease(
                sum: try ModularVector(packed: Array(sum), count: dimension, bitWidth: bitWidth), contributors: releasedContributors,
                roundIDs: try StoredWindow.roundIDs(fromJSON: releasedRoundIDs), sequence: releases)
        }
        return StoredWindow(
            windowStart: start, sum: try ModularVector(packed: Array(sum), count: dimension, bitWidth: bitWidth),
            contributors: contributors, roundIDs: try StoredWindow.roundIDs(fromJSON: roundIDs), release: release)
    }

    // MARK: Privacy ledger

    public func chargePrivacy(_ charge: PrivacyCharge, budgetEpsilon: Double?, delta: Double, now: Date) async throws -> PrivacyChargeOutcome {
        let logger = logger
        return try await transaction { connection in
            // Serialises charges of one feature set across every instance sharing the store.
            let lockKey = "privacy/\(charge.featureSet)"
            try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(lockKey), 0))", logger: logger)
            let ledger = try await Self.ledger(connection, charge.featureSet, logger)
            let outcome = PrivacyChargeOutcome.deciding(charge, ledger: ledger, budgetEpsilon: budgetEpsilon, delta: delta)
            if case .charged = outcome {
                try await connection.query("""
                    INSERT INTO privacy_ledger (feature_set, window_start, version, round_id, variance, devices, dimension, l2_sensitivity, l1_sensitivity, charged_at)
                    VALUES (\(charge.featureSet), \(charge.windowStart), \(charge.version), \(charge.roundID), \(charge.variance), \(charge.devices),
                            \(charge.dimension), \(charge.l2Sensitivity), \(charge.l1Sensitivity), \(now.timeIntervalSince1970))
                    """, logger: logger)
            }
            return outcome
        }
    }

    public func privacyLedger(featureSet name: String) async throws -> [PrivacyCharge] {
        let logger = logger
        return try await transaction { connection in try await Self.ledger(connection, name, logger) }
    }

    private static func ledger(_ connection: PostgresConnection, _ name: String, _ logger: Logger) async throws -> [PrivacyCharge] {
        try await connection.query("""
            SELECT window_start, version, round_id, variance, devices, dimension, l2_sensitivity, l1_sensitivity
            FROM privacy_ledger WHERE feature_set = \(name) ORDER BY window_start
            """, logger: logger).collect().map { row in
            let (start, version, round, variance, devices, dimension, l2, l1) = try row.decode((Int, Int, String, Double, Int, Int, Double, Double).self)
            return PrivacyCharge(
                featureSet: name, version: version, windowStart: start, roundID: round, variance: variance, devices: devices,
                dimension: dimension, l2Sensitivity: l2, l1Sensitivity: l1)
        }
    }

    // MARK: Feature set registry

    public func define(_ set: FeatureSet, now: Date) async throws -> Bool {
        let definition = try RegisteredFeatureSet.canonicalJSON(set)
        let inserted = try await rows("""
            INSERT INTO feature_set (name, version, definition, defined_at) VALUES (\(set.name), \(set.version), \(definition), \(now.timeIntervalSince1970))
            ON CONFLICT DO NOTHING RETURNING name
            """)
        if !inserted.isEmpty { return true }
        guard let existing = try await rows("SELECT definition FROM feature_set WHERE name = \(set.name) AND version = \(set.version)").first,
              try RegisteredFeatureSet.definition(fromJSON: try existing.decode(String.self)) == set else {
            throw FeatureSetRegistryError.conflictingDefinition(name: set.name, version: set.version)
        }
        return false
    }

    public func featureSets(includingRetired: Bool) async throws -> [RegisteredFeatureSet] {
        try await rows("""
            SELECT definition, defined_at, retired_at FROM feature_set
            WHERE \(includingRetired) OR retired_at IS NULL ORDER BY defined_at, name, version
            """).map { row in
            let (definition, definedAt, retiredAt) = try row.decode((String, Double, Double?).self)
            return RegisteredFeatureSet(
                featureSet: try RegisteredFeatureSet.definition(fromJSON: definition),
                definedAt: Date(timeIntervalSince1970: definedAt), retiredAt: retiredAt.map(Date.init(timeIntervalSince1970:)))
        }
    }

    public func retire(name: String, version: Int, now: Date) async throws -> Bool {
        try await !rows("""
            UPDATE feature_set SET retired_at = \(now.timeIntervalSince1970)
            WHERE name = \(name) AND version = \(version) AND retired_at IS NULL RETURNING name
            """).isEmpty
    }

    // MARK: Queries

    /// Runs `body` in a transaction. The store's own errors thrown by `body` come out as they
    /// are; database failures as ``AggregatorStoreError``.
    private func transaction<Value: Sendable>(_ body: (PostgresConnection) async throws -> Value) async throws -> Value {
        do {
            return try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError, !(inner is PSQLError) { throw inner }
            throw AggregatorStoreError("PostgreSQL: \(Self.describe(error))")
        }
    }

    private func rows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        do {
            return try await client.query(query, logger: logger).collect()
        } catch {
            throw AggregatorStoreError("PostgreSQL: \(Self.describe(error))")
        }
    }

    private func execute(_ query: PostgresQuery) async throws {
        _ = try await rows(query)
    }

    /// The server's message and SQLSTATE for a PostgreSQL error (postgres-nio's own description
    /// hides them), never the query's bound values.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else {
            if let error = error as? PostgresTransactionError {
                return describe(error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error)
            }
            return String(describing: error)
        }
        if let info = error.serverInfo {
            return "\(info[.message] ?? "error") (SQLSTATE \(info[.sqlState] ?? "?"))"
        }
        return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
    }
}
