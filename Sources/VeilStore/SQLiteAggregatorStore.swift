public import Foundation
import GRDB
public import VeilCrypto
public import VeilFeatures
import VeilProtocol

/// The embedded default ``AggregatorStore``: one SQLite file (GRDB, WAL mode), created and
/// migrated when opened. One aggregator process owns it; several instances sharing one store use
/// ``PostgresAggregatorStore``.
public final class SQLiteAggregatorStore: AggregatorStore {
    let pool: DatabasePool

    /// The database's own time in seconds since the epoch, as SQL (leases are measured in it).
    static let databaseNow = "((julianday('now') - 2440587.5) * 86400.0)"
    /// Whether the round row `r` holds its lease now, as SQL.
    static let roundHoldsLease = "(r.outcome = 'running' AND (r.lease_expires_at IS NULL OR r.lease_expires_at > \(databaseNow)))"

    /// Opens (creating and migrating as needed) the database at `path`.
    public init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: enrolment and rounds") { db in
            try db.create(table: "enrolment_token") { t in
                t.primaryKey("token_hash", .blob)
                t.column("created_at", .double).notNull()
                t.column("expires_at", .double).notNull()
                t.column("used_by", .text)
            }
            try db.create(table: "device") { t in
                t.primaryKey("device_id", .text)
                t.column("identity_key", .blob).notNull().unique()
                t.column("enrolled_at", .double).notNull()
                t.column("revoked_at", .double)
            }
            try db.create(table: "round") { t in
                t.primaryKey("round_id", .text)
                t.column("task", .text).notNull()
                t.column("started_at", .double).notNull()
                t.column("ended_at", .double).notNull()
                t.column("cohort_size", .integer).notNull()
                t.column("survivors", .integer).notNull()
                t.column("outcome", .text).notNull()
                t.column("reason", .text).notNull()
            }
        }
        migrator.registerMigration("v2: round results") { db in
            // The output of each finished round: the sum modulo 2^b, packed as in the protocol
            // (m little-endian words of ceil(b / 8) bytes), and U3 as a bitmap of n bits.
            try db.create(table: "round_result") { t in
                t.primaryKey("round_id", .text).references("round", onDelete: .cascade)
                t.column("dimension", .integer).notNull()
                t.column("bit_width", .integer).notNull()
                t.column("sum", .blob).notNull()
                t.column("survivor_bitmap", .blob).notNull()
            }
        }
        migrator.registerMigration("v3: feature windows") { db in
            // The running sum of every finished round of one window of one feature-set version.
            try db.create(table: "window_aggregate") { t in
                t.column("feature_set", .text).notNull()
                t.column("version", .integer).notNull()
                t.column("window_start", .integer).notNull()
                t.column("dimension", .integer).notNull()
                t.column("bit_width", .integer).notNull()
                t.column("sum", .blob).notNull()
                t.column("contributors", .integer).notNull()
                t.column("round_ids", .text).notNull()
                t.column("updated_at", .double).notNull()
                t.primaryKey(["feature_set", "version", "window_start"])
            }
        }
        migrator.registerMigration("v4: feature set registry") { db in
            // Every defined feature-set version, as canonical JSON; retired ones keep their row.
            try db.create(table: "feature_set") { t in
                t.column("name", .text).notNull()
                t.column("version", .integer).notNull()
                t.column("definition", .text).notNull()
                t.column("defined_at", .double).notNull()
                t.column("retired_at", .double)
                t.primaryKey(["name", "version"])
            }
        }
        migrator.registerMigration("v5: window contributors") { db in
            // Which devices a window counts (and which a running round claimed), so that no
            // device counts twice in one window, even when it never heard that it was counted.
            try db.create(table: "window_contributor") { t in
                t.column("feature_set", .text).notNull()
                t.column("version", .integer).notNull()
                t.column("window_start", .integer).notNull()
                t.column("device_id", .text).notNull()
                t.column("round_id", .text).notNull().indexed()
                t.column("counted", .boolean).notNull()
                t.column("claimed_at", .double).notNull()
                t.primaryKey(["feature_set", "version", "window_start", "device_id"])
            }
        }
        migrator.registerMigration("v6: round instances") { db in
            // The instance running each round, recorded at its start, so that a restart can find
            // and end the rounds a crash left running (outcome "running").
            try db.alter(table: "round") { t in t.add(column: "instance", .text).notNull().defaults(to: "") }
            try db.create(index: "round_running", on: "round", columns: ["outcome", "instance"])
        }
        migrator.registerMigration("v7: round leases") { db in
            // When a running round's lease ends, in the database's own clock (seconds since the
            // epoch), and how often it was renewed.
            try db.alter(table: "round") { t in
                t.add(column: "lease_expires_at", .double)
                t.add(column: "lease_generation", .integer).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v8: window releases") { db in
            // The sum as last released, which alone is served (SPEC.md §12.1). Windows stored
            // before were served as they stood, so that is their first release.
            try db.alter(table: "window_aggregate") { t in
                t.add(column: "released_sum", .blob)
                t.add(column: "released_contributors", .integer).notNull().defaults(to: 0)
                t.add(column: "released_round_ids", .text).notNull().defaults(to: "[]")
                t.add(column: "release_count", .integer).notNull().defaults(to: 0)
            }
            try db.execute(sql: """
                UPDATE window_aggregate SET released_sum = sum, released_contributors = contributors,
                  released_round_ids = round_ids, release_count = 1
                """)
        }
        migrator.registerMigration("v9: privacy ledger") { db in
            // What each window of a feature set with differential privacy cost (SPEC.md §12.4):
            // the noise parameters its Rényi curve is recomputed from. Kept forever.
            try db.create(table: "privacy_ledger") { t in
                t.column("feature_set", .text).notNull()
                t.column("window_start", .integer).notNull()
                t.column("version", .integer).notNull()
                t.column("round_id", .text).notNull()
                t.column("variance", .double).notNull()
                t.column("devices", .integer).notNull()
                t.column("dimension", .integer).notNull()
                t.column("l2_sensitivity", .double).notNull()
                t.column("l1_sensitivity", .double).notNull()
                t.column("charged_at", .double).notNull()
                t.primaryKey(["feature_set", "window_start"])
            }
        }
        return migrator
    }

    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    public func appliedMigrations() async throws -> [String] {
        try await pool.read { db in try Self.migrator.appliedMigrations(db) }
    }

    public func close() async {
        try? pool.close()
    }

    // MARK: Enrolment

    public func createEnrolmentToken(lifetime: TimeInterval, now: Date) async throws -> String {
        let token = StoreNames.newEnrolmentToken()
        let hash = Data(StoreNames.tokenHash(token))
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO enrolment_token (token_hash, created_at, expires_at) VALUES (?, ?, ?)",
                arguments: [hash, now.timeIntervalSince1970, now.timeIntervalSince1970 + lifetime])
        }
        return token
    }

    public func enrol(token: String, identityKey: Ed25519.PublicKey, now: Date) async throws(EnrolmentError) -> String {
        let hash = Data(StoreNames.tokenHash(token))
        let deviceID = StoreNames.deviceID(for: identityKey)
        let key = Data(identityKey.rawRepresentation)
        let t = now.timeIntervalSince1970
        let result: Result<String, EnrolmentError>
        do {
            // Read before write: an unknown, used or expired token (what a flood of unauthenticated
            // requests presents) is refused from a read, never taking the single writer.
            let refusal = try await pool.read { db -> EnrolmentError? in
                guard let row = try Row.fetchOne(db, sql: "SELECT expires_at, used_by FROM enrolment_token WHERE token_hash = ?", arguments: [hash]) else {
                    return .unknownToken
                }
                if (row["used_by"] as String?) != nil { return .tokenAlreadyUsed }
                return (row["expires_at"] as Double) < t ? .tokenExpired : nil
            }
            if let refusal { throw refusal }
            result = try await pool.write { db -> Result<String, EnrolmentError> in
                guard let row = try Row.fetchOne(db, sql: "SELECT expires_at, used_by FROM enrolment_token WHERE token_hash = ?", arguments: [hash]) else {
                    return .failure(.unknownToken)
                }
                if (row["used_by"] as String?) != nil { return .failure(.tokenAlreadyUsed) }
                if (row["expires_at"] as Double) < t { return .failure(.tokenExpired) }
                if try Row.fetchOne(db, sql: "SELECT 1 FROM device WHERE identity_key = ?", arguments: [key]) != nil {
                    return .failure(.alreadyEnrolled(deviceID))
                }
                try db.execute(sql: "UPDATE enrolment_token SET used_by = ? WHERE token_hash = ?", arguments: [deviceID, hash])
                try db.execute(sql: "INSERT INTO device (device_id, identity_key, enrolled_at) VALUES (?, ?, ?)", arguments: [deviceID, key, t])
                return .success(deviceID)
            }
        } catch let refusal as EnrolmentError {
            throw refusal
        } catch {
            throw .storage(String(describing: error))
        }
        return try result.get()
    }

    public func revoke(deviceID: String, now: Date) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE device SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL", arguments: [now.timeIntervalSince1970, deviceID])
            return db.changesCount > 0
        }
    }

    public func activeDeviceIDs(among deviceIDs: [String]) async throws -> Set<String> {
        try await pool.read { db in try Self.activeDeviceIDs(db, deviceIDs) }
    }

    private static func activeDeviceIDs(_ db: Database, _ deviceIDs: [String]) throws -> Set<String> {
        let statement = try db.cachedStatement(sql: "SELECT 1 FROM device WHERE device_id = ? AND revoked_at IS NULL")
        return Set(try deviceIDs.filter { try Int.fetchOne(statement, arguments: [$0]) != nil })
    }

    public func status(of identityKey: Ed25519.PublicKey) async throws -> DeviceStatus {
        let key = Data(identityKey.rawRepresentation)
        return try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT device_id, revoked_at FROM device WHERE identity_key = ?", arguments: [key]) else {
                return .unknown
            }
            let id: String = row["device_id"]
            return (row["revoked_at"] as Double?) == nil ? .active(deviceID: id) : .revoked(deviceID: id)
        }
    }

    public func activeDeviceCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM device WHERE revoked_at IS NULL") ?? 0 }
    }

    // MARK: Rounds

    public func recordRoundStart(_ start: RoundStart) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                INSERT INTO round (round_id, task, started_at, ended_at, cohort_size, survivors, outcome, reason, instance, lease_expires_at)
                VALUES (?, ?, ?, ?, ?, 0, ?, '', ?, \(Self.databaseNow) + ?)
                """,
                arguments: [start.roundID, start.task, start.startedAt.timeIntervalSince1970, start.startedAt.timeIntervalSince1970,
                            start.cohortSize, RoundRecord.running, start.instance, start.leaseSeconds])
        }
    }

    public func renewLease(roundID: String, instance: String, leaseSeconds: Double) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE round SET lease_expires_at = \(Self.databaseNow) + ?, lease_generation = lease_generation + 1
                WHERE round_id = ? AND instance = ? AND outcome = ? AND lease_expires_at > \(Self.databaseNow)
                """, arguments: [leaseSeconds, roundID, instance, RoundRecord.running])
            return db.changesCount == 1
        }
    }

    public func commitRound(_ commit: RoundCommit, now: Date) async throws {
        try await pool.write { db in
            let round = commit.round
            let existing = try Row.fetchOne(db, sql: """
                SELECT outcome, (lease_expires_at IS NULL OR lease_expires_at > \(Self.databaseNow)) AS held FROM round WHERE round_id = ?
                """, arguments: [round.roundID])
            if let existing {
                let outcome: String = existing["outcome"]
                guard outcome == RoundRecord.running else {
                    throw AggregatorStoreError("round \(round.roundID) already ended (\(outcome)); its end is not recorded twice")
                }
                guard commit.window == nil || existing["held"] as Bool else { throw RoundLeaseLost(roundID: round.roundID) }
            }
            if let merge = commit.window {
                try Self.merge(db, merge, roundID: round.roundID, now: now)
            }
            try db.execute(
                sql: """
                INSERT INTO round (round_id, task, started_at, ended_at, cohort_size, survivors, outcome, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (round_id) DO UPDATE SET
                  ended_at = excluded.ended_at, cohort_size = excluded.cohort_size, survivors = excluded.survivors,
                  outcome = excluded.outcome, reason = excluded.reason
                """,
                arguments: [round.roundID, round.task, round.startedAt.timeIntervalSince1970, round.endedAt.timeIntervalSince1970,
                            round.cohortSize, round.survivors, round.outcome, round.reason])
            if let result = commit.result {
                try db.execute(
                    sql: "INSERT INTO round_result (round_id, dimension, bit_width, sum, survivor_bitmap) VALUES (?, ?, ?, ?, ?)",
                    arguments: [result.roundID, result.dimension, result.bitWidth, Data(result.packedSum), Data(result.survivorBitmap)])
            }
            try Self.releaseClaims(db, of: round.roundID)
        }
    }

    /// Releases round `roundID`'s claims on devices it did not count, inside the caller's transaction.
    private static func releaseClaims(_ db: Database, of roundID: String) throws {
        try db.execute(sql: "DELETE FROM window_contributor WHERE round_id = ? AND counted = 0", arguments: [roundID])
    }

    public func discardRound(roundID: String) async throws {
        try await pool.write { db in
            try Self.releaseClaims(db, of: roundID)
            try db.execute(sql: "DELETE FROM round WHERE round_id = ? AND outcome = ?", arguments: [roundID, RoundRecord.running])
        }
    }

    public func recoverRounds(instance: String?, now: Date) async throws -> [String] {
        try await pool.write { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT round_id, instance = ? AS own FROM round
                WHERE outcome = ? AND ((lease_expires_at IS NOT NULL AND lease_expires_at <= \(Self.databaseNow)) OR instance = ?)
                ORDER BY round_id
                """, arguments: [instance, RoundRecord.running, instance])
            for row in rows {
                let id: String = row["round_id"]
                // The instance's own rounds died with its previous process, whether or not their
                // lease has run out yet; another instance's round is ended because its lease did.
                let own: Bool = row["own"] ?? false
                try db.execute(
                    sql: "UPDATE round SET outcome = ?, reason = ?, ended_at = ? WHERE round_id = ?",
                    arguments: [RoundRecord.aborted, own ? RoundRecord.instanceStoppedReason : RoundRecord.leaseExpiredReason,
                                now.timeIntervalSince1970, id])
                try Self.releaseClaims(db, of: id)
            }
            return rows.map { $0["round_id"] }
        }
    }

    public func applyRetention(_ retention: Retention) async throws -> RetentionReport {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM round WHERE outcome != ? AND ended_at < ?",
                           arguments: [RoundRecord.running, retention.roundsEndedBefore.timeIntervalSince1970])
            let rounds = db.changesCount
            let cutoff = retention.tokensBefore.timeIntervalSince1970
            try db.execute(sql: "DELETE FROM enrolment_token WHERE created_at < ? OR expires_at < ?", arguments: [cutoff, cutoff])
            let tokens = db.changesCount
            try db.execute(sql: "DELETE FROM window_contributor WHERE window_start < ?", arguments: [retention.windowsStartedBefore])
            return RetentionReport(rounds: rounds, tokens: tokens, contributors: db.changesCount)
        }
    }

    public func round(id roundID: String) async throws -> RoundRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM round WHERE round_id = ?", arguments: [roundID]).map(Self.roundRecord)
        }
    }

    public func result(roundID: String) async throws -> RoundResultRecord? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM round_result WHERE round_id = ?", arguments: [roundID]) else { return nil }
            return RoundResultRecord(
                roundID: row["round_id"], dimension: row["dimension"], bitWidth: row["bit_width"],
                packedSum: Array(row["sum"] as Data), survivorBitmap: Array(row["survivor_bitmap"] as Data))
        }
    }

    public func recentRounds(limit: Int) async throws -> [RoundRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM round ORDER BY ended_at DESC, round_id LIMIT ?", arguments: [limit]).map(Self.roundRecord)
        }
    }

    private static func roundRecord(_ row: Row) -> RoundRecord {
        RoundRecord(
            roundID: row["round_id"], task: row["task"],
            startedAt: Date(timeIntervalSince1970: row["started_at"]), endedAt: Date(timeIntervalSince1970: row["ended_at"]),
            cohortSize: row["cohort_size"], survivors: row["survivors"], outcome: row["outcome"], reason: row["reason"])
    }

    // MARK: Feature windows

    /// The stored contributor entries of `deviceIDs` in one window.
    private static func contributorEntries(_ db: Database, _ set: FeatureSet, _ windowStart: Int, _ deviceIDs: [String]) throws -> [String: ContributorEntry] {
        var entries: [String: ContributorEntry] = [:]
        let statement = try db.cachedStatement(sql: """
            SELECT wc.round_id, wc.counted, wc.claimed_at, r.round_id IS NOT NULL AS recorded, \(roundHoldsLease) AS live
            FROM window_contributor wc LEFT JOIN round r ON r.round_id = wc.round_id
            WHERE wc.feature_set = ? AND wc.version = ? AND wc.window_start = ? AND wc.device_id = ?
            """)
        for id in deviceIDs {
            if let row = try Row.fetchOne(statement, arguments: [set.name, set.version, windowStart, id]) {
                let recorded: Bool = row["recorded"]
                entries[id] = ContributorEntry(
                    roundID: row["round_id"], counted: row["counted"], claimedAt: row["claimed_at"], roundLive: recorded ? row["live"] as Bool : nil)
            }
        }
        return entries
    }

    public func claimWindow(_ set: FeatureSet, windowStart: Int, roundID: String, deviceIDs: [String], staleBefore: Date, now: Date) async throws -> WindowClaims {
        try await pool.write { db in
            let existing = try Self.contributorEntries(db, set, windowStart, deviceIDs)
            let occupied = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM window_contributor wc LEFT JOIN round r ON r.round_id = wc.round_id
                WHERE wc.feature_set = ? AND wc.version = ? AND wc.window_start = ?
                  AND (wc.counted = 1 OR (r.round_id IS NULL AND wc.claimed_at >= ?) OR \(Self.roundHoldsLease))
                """, arguments: [set.name, set.version, windowStart, staleBefore.timeIntervalSince1970]) ?? 0
            let claims = WindowClaims.deciding(
                deviceIDs, existing: existing, staleBefore: staleBefore.timeIntervalSince1970, occupied: occupied, capacity: set.maximumCohort)
            let statement = try db.cachedStatement(sql: """
                INSERT INTO window_contributor (feature_set, version, window_start, device_id, round_id, counted, claimed_at)
                VALUES (?, ?, ?, ?, ?, 0, ?)
                ON CONFLICT (feature_set, version, window_start, device_id) DO UPDATE SET
                  round_id = excluded.round_id, claimed_at = excluded.claimed_at
                """)
            for id in claims.claimed {
                try statement.execute(arguments: [set.name, set.version, windowStart, id, roundID, now.timeIntervalSince1970])
            }
            return claims
        }
    }


    public func countedWindows(of deviceID: String, in set: FeatureSet, windowStarts: [Int]) async throws -> [Int: String] {
        guard !windowStarts.isEmpty else { return [:] }
        return try await pool.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT window_start, round_id FROM window_contributor
                WHERE feature_set = ? AND version = ? AND device_id = ? AND counted = 1
                  AND window_start IN (\(databaseQuestionMarks(count: windowStarts.count)))
                """, arguments: StatementArguments([set.name, set.version, deviceID] as [any DatabaseValueConvertible]) + StatementArguments(windowStarts))
            return Dictionary(rows.map { ($0["window_start"] as Int, $0["round_id"] as String) }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Adds `merge` into its window inside the caller's transaction: refuses devices already
    /// counted or claimed by another round, and a window that would overflow; marks the
    /// contributors counted and writes the new running sum.
    private static func merge(_ db: Database, _ merge: WindowMerge, roundID: String, now: Date) throws {
        let set = merge.featureSet, windowStart = merge.windowStart, sum = merge.sum, contributorIDs = merge.contributorIDs
        let conflicts = ContributorEntry.conflicts(
            contributorIDs, existing: try contributorEntries(db, set, windowStart, contributorIDs), roundID: roundID)
        guard conflicts.isEmpty else { throw FeatureWindowError.alreadyCounted(window: windowStart, devices: conflicts) }
        let revokedStatement = try db.cachedStatement(sql: "SELECT 1 FROM device WHERE device_id = ? AND revoked_at IS NOT NULL")
        let revoked = try contributorIDs.filter { try Int.fetchOne(revokedStatement, arguments: [$0]) != nil }
        guard revoked.isEmpty else { throw FeatureWindowError.revokedDuringRound(window: windowStart, devices: revoked) }
        let row = try Row.fetchOne(db, sql: """
            SELECT \(windowColumns) FROM window_aggregate WHERE feature_set = ? AND version = ? AND window_start = ?
            """, arguments: [set.name, set.version, windowStart])
        let merged = try StoredWindow.merging(
            try row.map(storedWindow), set, windowStart: windowStart, roundID: roundID, sum: sum, contributors: contributorIDs.count,
            minimumReleaseCohort: merge.minimumReleaseCohort)
        let mark = try db.cachedStatement(sql: """
            INSERT INTO window_contributor (feature_set, version, window_start, device_id, round_id, counted, claimed_at)
            VALUES (?, ?, ?, ?, ?, 1, ?)
            ON CONFLICT (feature_set, version, window_start, device_id) DO UPDATE SET counted = 1
            """)
        for id in contributorIDs {
            try mark.execute(arguments: [set.name, set.version, windowStart, id, roundID, now.timeIntervalSince1970])
        }
        let release = merged.release
        try db.execute(sql: """
            INSERT INTO window_aggregate (feature_set, version, window_start, dimension, bit_width, sum, contributors, round_ids, updated_at,
              released_sum, released_contributors, released_round_ids, release_count)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (feature_set, version, window_start) DO UPDATE SET
              sum = excluded.sum, contributors = excluded.contributors, round_ids = excluded.round_ids, updated_at = excluded.updated_at,
              released_sum = excluded.released_sum, released_contributors = excluded.released_contributors,
              released_round_ids = excluded.released_round_ids, release_count = excluded.release_count
            """, arguments: [set.name, set.version, windowStart, sum.count, sum.bitWidth, Data(merged.sum.packed()),
                             merged.contributors, StoredWindow.json(merged.roundIDs), now.timeIntervalSince1970,
                             release.map { Data($0.sum.packed()) }, release?.contributors ?? 0,
                             StoredWindow.json(release?.roundIDs ?? []), release?.sequence ?? 0])
    }

    public func storedWindows(of set: FeatureSet, from: Int, to: Int) async throws -> [StoredWindow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(Self.windowColumns) FROM window_aggregate
                WHERE feature_set = ? AND version = ? AND window_start >= ? AND window_start < ? ORDER BY window_start
                """, arguments: [set.name, set.version, from, to]).map(Self.storedWindow)
        }
    }

    public func newestWindow(of set: FeatureSet) async throws -> StoredWindow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT \(Self.windowColumns) FROM window_aggregate
                WHERE feature_set = ? AND version = ? ORDER BY window_start DESC LIMIT 1
                """, arguments: [set.name, set.version]).map(Self.storedWindow)
        }
    }

    /// The columns ``storedWindow(_:)`` reads.
    private static let windowColumns = """
        window_start, dimension, bit_width, sum, contributors, round_ids, released_sum, released_contributors, released_round_ids, release_count
        """

    private static func storedWindow(_ row: Row) throws -> StoredWindow {
        let dimension: Int = row["dimension"], bitWidth: Int = row["bit_width"]
        let release = try (row["released_sum"] as Data?).map { sum in
            WindowRelease(
                sum: try ModularVector(packed: Array(sum), count: dimension, bitWidth: bitWidth), contributors: row["released_contributors"],
                roundIDs: try StoredWindow.roundIDs(fromJSON: row["released_round_ids"]), sequence: row["release_count"])
        }
        return StoredWindow(
            windowStart: row["window_start"],
            sum: try ModularVector(packed: Array(row["sum"] as Data), count: dimension, bitWidth: bitWidth),
            contributors: row["contributors"], roundIDs: try StoredWindow.roundIDs(fromJSON: row["round_ids"]), release: release)
    }

    // MARK: Privacy ledger

    public func chargePrivacy(_ charge: PrivacyCharge, budgetEpsilon: Double?, delta: Double, now: Date) async throws -> PrivacyChargeOutcome {
        try await pool.write { db in
            let ledger = try Self.ledger(db, charge.featureSet)
            let outcome = PrivacyChargeOutcome.deciding(charge, ledger: ledger, budgetEpsilon: budgetEpsilon, delta: delta)
            if case .charged = outcome {
                try db.execute(sql: """
                    INSERT INTO privacy_ledger (feature_set, window_start, version, round_id, variance, devices, dimension, l2_sensitivity, l1_sensitivity, charged_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [charge.featureSet, charge.windowStart, charge.version, charge.roundID, charge.variance, charge.devices,
                                     charge.dimension, charge.l2Sensitivity, charge.l1Sensitivity, now.timeIntervalSince1970])
            }
            return outcome
        }
    }

    public func privacyLedger(featureSet name: String) async throws -> [PrivacyCharge] {
        try await pool.read { db in try Self.ledger(db, name) }
    }

    private static func ledger(_ db: Database, _ name: String) throws -> [PrivacyCharge] {
        try Row.fetchAll(db, sql: """
            SELECT window_start, version, round_id, variance, devices, dimension, l2_sensitivity, l1_sensitivity
            FROM privacy_ledger WHERE feature_set = ? ORDER BY window_start
            """, arguments: [name]).map { row in
            PrivacyCharge(
                featureSet: name, version: row["version"], windowStart: row["window_start"], roundID: row["round_id"], variance: row["variance"],
                devices: row["devices"], dimension: row["dimension"], l2Sensitivity: row["l2_sensitivity"], l1Sensitivity: row["l1_sensitivity"])
        }
    }

    // MARK: Feature set registry

    public func define(_ set: FeatureSet, now: Date) async throws -> Bool {
        let definition = try RegisteredFeatureSet.canonicalJSON(set)
        return try await pool.write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT definition FROM feature_set WHERE name = ? AND version = ?", arguments: [set.name, set.version]) {
                guard try RegisteredFeatureSet.definition(fromJSON: existing) == set else {
                    throw FeatureSetRegistryError.conflictingDefinition(name: set.name, version: set.version)
                }
                return false
            }
            try db.execute(sql: "INSERT INTO feature_set (name, version, definition, defined_at) VALUES (?, ?, ?, ?)",
                           arguments: [set.name, set.version, definition, now.timeIntervalSince1970])
            return true
        }
    }

    public func featureSets(includingRetired: Bool) async throws -> [RegisteredFeatureSet] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT definition, defined_at, retired_at FROM feature_set
                WHERE ? OR retired_at IS NULL ORDER BY defined_at, name, version
                """, arguments: [includingRetired]).map { row in
                RegisteredFeatureSet(
                    featureSet: try RegisteredFeatureSet.definition(fromJSON: row["definition"]),
                    definedAt: Date(timeIntervalSince1970: row["defined_at"]),
                    retiredAt: (row["retired_at"] as Double?).map(Date.init(timeIntervalSince1970:)))
            }
        }
    }

    public func retire(name: String, version: Int, now: Date) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE feature_set SET retired_at = ? WHERE name = ? AND version = ? AND retired_at IS NULL",
                           arguments: [now.timeIntervalSince1970, name, version])
            return db.changesCount > 0
        }
    }
}
