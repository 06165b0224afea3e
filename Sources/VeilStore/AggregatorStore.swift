public import Foundation
public import Logging
public import VeilCrypto
public import VeilFeatures
import VeilProtocol

/// The aggregator's durable state: enrolment tokens, enrolled devices, the history and outputs of
/// rounds, the running sums of feature windows and the registry of feature sets.
///
/// Two implementations pass the same test suite: ``SQLiteAggregatorStore``, one embedded file and
/// the default, and ``PostgresAggregatorStore``, for several aggregator instances sharing one
/// store. ``openAggregatorStore(_:logger:)`` picks one from the `database` setting. Both create
/// and migrate their schema when opened; migrations are versioned and never edited once released.
/// Enrolment tokens are stored only as a BLAKE2b hash, so a copy of the store does not let anyone
/// enrol.
public protocol AggregatorStore: Sendable {
    /// The versions of the applied migrations, oldest first.
    func appliedMigrations() async throws -> [String]

    /// Reads from the database (a trivial query), for `/healthz`; throws when it cannot.
    func ping() async throws

    /// Creates a one-time enrolment token valid for `lifetime` seconds. The returned text is
    /// shown to the operator once; only its hash is kept.
    func createEnrolmentToken(lifetime: TimeInterval, now: Date) async throws -> String

    /// Enrols `identityKey` with `token`, consuming the token. Returns the device id.
    func enrol(token: String, identityKey: Ed25519.PublicKey, now: Date) async throws(EnrolmentError) -> String

    /// Revokes a device: it can no longer join rounds. Returns false when no such active device exists.
    func revoke(deviceID: String, now: Date) async throws -> Bool

    /// Whether `identityKey` may join rounds.
    func status(of identityKey: Ed25519.PublicKey) async throws -> DeviceStatus

    /// The number of enrolled devices that are not revoked.
    func activeDeviceCount() async throws -> Int

    /// Which of `deviceIDs` are enrolled and not revoked, read at once: a cohort is checked again
    /// when it forms, since a device revoked while it waited must not take part.
    func activeDeviceIDs(among deviceIDs: [String]) async throws -> Set<String>

    /// Records that round `start.roundID` is starting (outcome "running", with its instance and
    /// a lease of `start.leaseSeconds` in the database's own time). Called before the round
    /// claims anything or assigns any device, so a round that an instance crash interrupts is
    /// found again by ``recoverRounds(instance:now:)``.
    func recordRoundStart(_ start: RoundStart) async throws

    /// Extends the lease of running round `roundID` of `instance` to `leaseSeconds` from now in
    /// the database's time. Returns false, extending nothing, when the lease had already expired
    /// or the round ended (recovery ended it): the round must then stop and tell no device it
    /// was counted.
    func renewLease(roundID: String, instance: String, leaseSeconds: Double) async throws -> Bool

    /// Commits the end of a round in one transaction (SPEC.md §12.2): its row (inserted, or
    /// updated from "running"), its result, the merge of its sum into its feature window, and the
    /// release of its claims on devices it did not count. Devices are told how the round ended
    /// only after this returns. Refuses, changing nothing, with
    /// ``FeatureWindowError/alreadyCounted(window:devices:)`` or
    /// ``FeatureWindowError/windowOverflow(window:contributors:maximum:)`` when the window cannot
    /// take the sum (or one of its contributors was revoked during the round), with ``RoundLeaseLost`` when a finished round's lease expired (its claims may
    /// be another round's now), and with ``AggregatorStoreError`` when the round already ended.
    /// Atomic, also between instances sharing the store.
    func commitRound(_ commit: RoundCommit, now: Date) async throws

    /// Ends running rounds that cannot still be running, as aborted, releasing their claims so
    /// their devices can be counted by later rounds: every round whose lease expired in the
    /// database's time (of any instance), and, when `instance` is given, every running round of
    /// that instance (call it so once at start, before the instance starts rounds: its previous
    /// process is dead). Returns their ids.
    func recoverRounds(instance: String?, now: Date) async throws -> [String]

    /// Deletes what `retention` no longer keeps (ended rounds with their results, old enrolment
    /// tokens, contributor records of old windows) and says how much; never a running round, a
    /// window's sum or a device.
    func applyRetention(_ retention: Retention) async throws -> RetentionReport

    /// Round `roundID` (hex) from the history.
    func round(id roundID: String) async throws -> RoundRecord?

    /// The output of round `roundID` (hex), if it finished.
    func result(roundID: String) async throws -> RoundResultRecord?

    /// The most recent rounds, newest first.
    func recentRounds(limit: Int) async throws -> [RoundRecord]

    /// Claims window `windowStart` of `set` for the cohort of round `roundID`, about to start:
    /// every device not yet counted in the window and not claimed by a round of it that is still
    /// running is claimed, so that no device can be in two rounds of one window at once. Claims
    /// older than `staleBefore` belong to rounds that cannot still be running (an instance that
    /// stopped mid-round) and are taken over. Claims reserve the window's capacity: counted
    /// devices and live claims together never exceed the feature set's `maximumCohort`, so a
    /// round never finishes with a sum its window must refuse; devices beyond it are returned as
    /// ``WindowClaims/full``. Atomic, also between instances sharing the store.
    func claimWindow(_ set: FeatureSet, windowStart: Int, roundID: String, deviceIDs: [String], staleBefore: Date, now: Date) async throws -> WindowClaims

    /// Forgets round `roundID`, recorded as running but never started (too few devices could be
    /// claimed, or it could not be planned; no device was assigned): deletes its history row and
    /// releases its claims. A round that ended is left as it is.
    func discardRound(roundID: String) async throws

    /// Of the windows `windowStarts` of `set`, those that count `deviceID`, each with the round
    /// that counted it.
    func countedWindows(of deviceID: String, in set: FeatureSet, windowStarts: [Int]) async throws -> [Int: String]

    /// The stored windows of `set` starting in `from ..< to`, oldest first.
    func storedWindows(of set: FeatureSet, from: Int, to: Int) async throws -> [StoredWindow]

    /// The stored window of `set` with the latest start, if any.
    func newestWindow(of set: FeatureSet) async throws -> StoredWindow?

    /// Registers a feature set (its name and version are its identity). Defining the same
    /// definition again is a no-op that returns false; a different definition under a name and
    /// version already defined is refused with ``FeatureSetRegistryError/conflictingDefinition(name:version:)``,
    /// because devices and stored windows depend on a version never changing.
    func define(_ set: FeatureSet, now: Date) async throws -> Bool

    /// The registered feature sets, oldest definition first; retired ones only when asked.
    func featureSets(includingRetired: Bool) async throws -> [RegisteredFeatureSet]

    /// Retires a feature set version: no new rounds for it, its windows stay readable. Returns
    /// false when no such active version exists.
    func retire(name: String, version: Int, now: Date) async throws -> Bool

    /// Charges `charge`'s window to its feature set's privacy ledger (SPEC.md §12.4), atomically,
    /// also between instances sharing the store: a window already charged is not charged again;
    /// a window that would take the ε spent over all the set's windows (composed, at `delta`)
    /// above `budgetEpsilon` is refused, charging nothing. Never deleted by retention.
    func chargePrivacy(_ charge: PrivacyCharge, budgetEpsilon: Double?, delta: Double, now: Date) async throws -> PrivacyChargeOutcome

    /// Every window charged to feature set `name` (all versions), oldest window first.
    func privacyLedger(featureSet name: String) async throws -> [PrivacyCharge]

    /// Releases connections and background work. The store is unusable afterwards.
    func close() async
}

extension AggregatorStore {
    /// ``createEnrolmentToken(lifetime:now:)`` at the current time.
    public func createEnrolmentToken(lifetime: TimeInterval) async throws -> String {
        try await createEnrolmentToken(lifetime: lifetime, now: Date())
    }

    /// ``enrol(token:identityKey:now:)`` at the current time.
    public func enrol(token: String, identityKey: Ed25519.PublicKey) async throws(EnrolmentError) -> String {
        try await enrol(token: token, identityKey: identityKey, now: Date())
    }

    /// ``revoke(deviceID:now:)`` at the current time.
    @discardableResult
    public func revoke(deviceID: String) async throws -> Bool {
        try await revoke(deviceID: deviceID, now: Date())
    }

    /// The 100 most recent rounds, newest first.
    public func recentRounds() async throws -> [RoundRecord] {
        try await recentRounds(limit: 100)
    }

    /// ``commitRound(_:now:)`` at the current time.
    public func commitRound(_ commit: RoundCommit) async throws {
        try await commitRound(commit, now: Date())
    }

    /// ``claimWindow(_:windowStart:roundID:deviceIDs:staleBefore:now:)`` at the current time.
    public func claimWindow(_ set: FeatureSet, windowStart: Int, roundID: String, deviceIDs: [String], staleBefore: Date) async throws -> WindowClaims {
        try await claimWindow(set, windowStart: windowStart, roundID: roundID, deviceIDs: deviceIDs, staleBefore: staleBefore, now: Date())
    }

    /// The windows of `layout`'s feature set starting in `from ..< to`, oldest first, decoded and
    /// released only where at least `minimumReleaseCohort` devices contributed.
    public func windows(of layout: FeatureLayout, from: Int, to: Int, minimumReleaseCohort: Int) async throws -> [ReleasedWindow] {
        try await storedWindows(of: layout.featureSet, from: from, to: to).map {
            try $0.released(by: layout, minimumReleaseCohort: minimumReleaseCohort)
        }
    }

    /// ``define(_:now:)`` at the current time.
    @discardableResult
    public func define(_ set: FeatureSet) async throws -> Bool {
        try await define(set, now: Date())
    }

    /// ``retire(name:version:now:)`` at the current time.
    public func retire(name: String, version: Int) async throws -> Bool {
        try await retire(name: name, version: version, now: Date())
    }
}

/// Opens the store the `database` setting names: a `postgres://` or `postgresql://` URL selects
/// ``PostgresAggregatorStore``; anything else is the path of a ``SQLiteAggregatorStore`` file.
public func openAggregatorStore(_ database: String, logger: Logger) async throws -> any AggregatorStore {
    if let postgres = try PostgresLocation(parsing: database) {
        return try await PostgresAggregatorStore(location: postgres, logger: logger)
    }
    return try SQLiteAggregatorStore(path: database)
}

/// A store failure that is not the caller's fault: the database refused or could not be reached.
public struct AggregatorStoreError: Error, CustomStringConvertible, Sendable {
    /// What failed, without credentials.
    public let description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// Names shared by the store implementations.
enum StoreNames {
    /// The name the aggregator gives the device holding `identityKey`: "dev-" and 16 hex digits
    /// of the key's BLAKE2b hash.
    static func deviceID(for identityKey: Ed25519.PublicKey) -> String {
        "dev-" + Hex.encode(BLAKE2b.hash(label: "veil/v1/device-id", message: identityKey.rawRepresentation, outputByteCount: 16).prefix(8))
    }

    /// The stored form of an enrolment token.
    static func tokenHash(_ token: String) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/enrolment-token", message: Array(token.utf8))
    }

    /// A fresh enrolment token: "veil-enrol-" and 48 hex digits from the system CSPRNG.
    static func newEnrolmentToken() -> String {
        var random = SystemRandomSource()
        return "veil-enrol-" + Hex.encode(random.bytes(count: 24))
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
    /// "running" (recorded at its start and not ended yet), "finished" or "aborted".
    public let outcome: String
    /// Why it aborted, or empty.
    public let reason: String

    /// Creates a record.
    public init(roundID: String, task: String, startedAt: Date, endedAt: Date, cohortSize: Int, survivors: Int, outcome: String, reason: String) {
        self.roundID = roundID
        self.task = task
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.cohortSize = cohortSize
        self.survivors = survivors
        self.outcome = outcome
        self.reason = reason
    }
}

extension AggregatorStore {
    /// The round that counted `deviceID` in window `windowStart` of `set`, if one did.
    public func countingRound(of deviceID: String, in set: FeatureSet, windowStart: Int) async throws -> String? {
        try await countedWindows(of: deviceID, in: set, windowStarts: [windowStart])[windowStart]
    }
}

/// What the store keeps no longer (``AggregatorStore/applyRetention(_:)``).
public struct Retention: Sendable, Equatable {
    /// Rounds that ended (finished or aborted) before this are deleted with their results.
    public var roundsEndedBefore: Date
    /// Enrolment tokens created, or expired, before this are deleted (used or not).
    public var tokensBefore: Date
    /// Which devices contributed to (or were claimed for) windows starting before this (seconds
    /// since the epoch) is forgotten; the windows' sums stay.
    public var windowsStartedBefore: Int

    /// Creates a retention.
    public init(roundsEndedBefore: Date, tokensBefore: Date, windowsStartedBefore: Int) {
        self.roundsEndedBefore = roundsEndedBefore
        self.tokensBefore = tokensBefore
        self.windowsStartedBefore = windowsStartedBefore
    }
}

/// How much one ``AggregatorStore/applyRetention(_:)`` deleted.
public struct RetentionReport: Sendable, Equatable {
    /// Round history rows (each with its result, if any).
    public var rounds: Int
    /// Enrolment tokens.
    public var tokens: Int
    /// Window contributor and claim records.
    public var contributors: Int

    /// Creates a report.
    public init(rounds: Int, tokens: Int, contributors: Int) {
        self.rounds = rounds
        self.tokens = tokens
        self.contributors = contributors
    }
}
