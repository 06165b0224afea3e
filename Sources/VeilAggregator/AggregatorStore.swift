public import Foundation
import GRDB
public import VeilCrypto

/// The aggregator's durable state in one SQLite file (GRDB, WAL mode): enrolment tokens, enrolled
/// devices and the history of rounds. Created and migrated when opened; migrations are versioned
/// and never edited once released.
///
/// Tokens are stored only as a BLAKE2b hash, so a copy of the database does not let anyone enrol.
public final class AggregatorStore: Sendable {
    let pool: DatabasePool

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
        return migrator
    }

    /// The versions of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Self.migrator.appliedMigrations(db) }
    }

    // MARK: Enrolment

    /// Creates a one-time enrolment token valid for `lifetime` seconds. The returned text is shown
    /// to the operator once; only its hash is kept.
    public func createEnrolmentToken(lifetime: TimeInterval, now: Date = Date()) throws -> String {
        var random = SystemRandomSource()
        let token = "veil-enrol-" + Hex.encode(random.bytes(count: 24))
        let hash = Self.tokenHash(token)
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO enrolment_token (token_hash, created_at, expires_at) VALUES (?, ?, ?)",
                arguments: [Data(hash), now.timeIntervalSince1970, now.timeIntervalSince1970 + lifetime])
        }
        return token
    }

    /// Enrols `identityKey` with `token`, consuming the token. Returns the device id.
    public func enrol(token: String, identityKey: Ed25519.PublicKey, now: Date = Date()) throws(EnrolmentError) -> String {
        let hash = Data(Self.tokenHash(token))
        let deviceID = Self.deviceID(for: identityKey)
        let key = Data(identityKey.rawRepresentation)
        let t = now.timeIntervalSince1970
        let result: Result<String, EnrolmentError>
        do {
            result = try pool.write { db -> Result<String, EnrolmentError> in
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
        } catch {
            throw .storage(String(describing: error))
        }
        return try result.get()
    }

    /// Revokes a device: it can no longer join rounds. Returns false when no such device exists.
    @discardableResult
    public func revoke(deviceID: String, now: Date = Date()) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE device SET revoked_at = ? WHERE device_id = ? AND revoked_at IS NULL", arguments: [now.timeIntervalSince1970, deviceID])
            return db.changesCount > 0
        }
    }

    /// Whether `identityKey` may join rounds.
    public func status(of identityKey: Ed25519.PublicKey) throws -> DeviceStatus {
        let key = Data(identityKey.rawRepresentation)
        return try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT device_id, revoked_at FROM device WHERE identity_key = ?", arguments: [key]) else {
                return .unknown
            }
            let id: String = row["device_id"]
            return (row["revoked_at"] as Double?) == nil ? .active(deviceID: id) : .revoked(deviceID: id)
        }
    }

    /// The number of enrolled devices that are not revoked.
    public func activeDeviceCount() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM device WHERE revoked_at IS NULL") ?? 0 }
    }

    // MARK: Rounds

    /// Records how a round ended.
    public func record(_ round: RoundRecord) throws {
        try pool.write { db in
            try db.execute(
                sql: """
                INSERT INTO round (round_id, task, started_at, ended_at, cohort_size, survivors, outcome, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                arguments: [round.roundID, round.task, round.startedAt.timeIntervalSince1970, round.endedAt.timeIntervalSince1970,
                            round.cohortSize, round.survivors, round.outcome, round.reason])
        }
    }

    /// Records a finished round's output (after ``record(_:)`` recorded the round itself).
    public func recordResult(_ result: RoundResultRecord) throws {
        try pool.write { db in
            try db.execute(
                sql: "INSERT INTO round_result (round_id, dimension, bit_width, sum, survivor_bitmap) VALUES (?, ?, ?, ?, ?)",
                arguments: [result.roundID, result.dimension, result.bitWidth, Data(result.packedSum), Data(result.survivorBitmap)])
        }
    }

    /// The output of round `roundID` (hex), if it finished.
    public func result(roundID: String) throws -> RoundResultRecord? {
        try pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM round_result WHERE round_id = ?", arguments: [roundID]) else { return nil }
            return RoundResultRecord(
                roundID: row["round_id"], dimension: row["dimension"], bitWidth: row["bit_width"],
                packedSum: Array(row["sum"] as Data), survivorBitmap: Array(row["survivor_bitmap"] as Data))
        }
    }

    /// The most recent rounds, newest first.
    public func recentRounds(limit: Int = 100) throws -> [RoundRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM round ORDER BY ended_at DESC LIMIT ?", arguments: [limit]).map { row in
                RoundRecord(
                    roundID: row["round_id"], task: row["task"],
                    startedAt: Date(timeIntervalSince1970: row["started_at"]), endedAt: Date(timeIntervalSince1970: row["ended_at"]),
                    cohortSize: row["cohort_size"], survivors: row["survivors"], outcome: row["outcome"], reason: row["reason"])
            }
        }
    }

    // MARK: Names

    /// The name the aggregator gives the device holding `identityKey`: "dev-" and 16 hex digits
    /// of the key's BLAKE2b hash.
    public static func deviceID(for identityKey: Ed25519.PublicKey) -> String {
        "dev-" + Hex.encode(BLAKE2b.hash(label: "veil/v1/device-id", message: identityKey.rawRepresentation, outputByteCount: 16).prefix(8))
    }

    static func tokenHash(_ token: String) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/enrolment-token", message: Array(token.utf8))
    }
}

/// Whether an identity may join rounds.
public enum DeviceStatus: Sendable, Equatable {
    /// Never enrolled.
    case unknown
    /// Enrolled and not revoked.
    case active(deviceID: String)
    /// Enrolled, then revoked by the operator.
    case revoked(deviceID: String)
}

/// Why an enrolment was refused.
public enum EnrolmentError: Error, Equatable, CustomStringConvertible {
    /// No such token was ever issued.
    case unknownToken
    /// The token was already used.
    case tokenAlreadyUsed
    /// The token's lifetime is over.
    case tokenExpired
    /// The identity is already enrolled under this id.
    case alreadyEnrolled(String)
    /// The proof-of-possession signature did not verify.
    case badSignature
    /// The database failed.
    case storage(String)

    /// A one-line explanation (never the token itself).
    public var description: String {
        switch self {
        case .unknownToken: return "unknown enrolment token"
        case .tokenAlreadyUsed: return "enrolment token already used"
        case .tokenExpired: return "enrolment token expired"
        case let .alreadyEnrolled(id): return "identity already enrolled as \(id)"
        case .badSignature: return "the enrolment signature does not verify under the identity key"
        case let .storage(why): return "storage failure: \(why)"
        }
    }
}

/// A finished round's output as stored.
public struct RoundResultRecord: Sendable, Equatable {
    /// Hex round id.
    public let roundID: String
    /// m.
    public let dimension: Int
    /// b.
    public let bitWidth: Int
    /// The sum, m little-endian words of ceil(b / 8) bytes.
    public let packedSum: [UInt8]
    /// U3: bit i (byte i / 8, least significant first) set when device i's input is in the sum.
    public let survivorBitmap: [UInt8]

    /// Creates a record.
    public init(roundID: String, dimension: Int, bitWidth: Int, packedSum: [UInt8], survivorBitmap: [UInt8]) {
        self.roundID = roundID
        self.dimension = dimension
        self.bitWidth = bitWidth
        self.packedSum = packedSum
        self.survivorBitmap = survivorBitmap
    }
}

/// How one round ended, as stored in the history.
public struct RoundRecord: Sendable, Equatable {
    /// Hex round id.
    public let roundID: String
    /// The configured task.
    public let task: String
    /// When the cohort was assigned.
    public let startedAt: Date
    /// When the outcome was known.
    public let endedAt: Date
    /// n.
    public let cohortSize: Int
    /// |U3| when finished, else 0.
    public let survivors: Int
    /// "finished" or "aborted".
    public let outcome: String
    /// Why it aborted, or empty.
    public let reason: String
}
