import Foundation
import Synchronization
import VeilAggregator
import VeilCrypto
import VeilFeatures
import VeilProtocol
import VeilStore

/// A real store with failures injected in front of it: the first `failingCommits` calls of
/// ``commitRound(_:now:)`` fail as a lost database connection would, without reaching the store,
/// and every commit is held `commitDelay` first, as a slow database would hold it. Everything
/// else goes straight to `base`.
final class FaultyStore: AggregatorStore {
    let base: any AggregatorStore
    private let remainingFailures: Mutex<Int>
    private let commitDelay: Duration
    private let commitsStarted = Atomic<Int>(0)

    init(_ base: any AggregatorStore, failingCommits: Int, commitDelay: Duration = .zero) {
        self.base = base
        remainingFailures = Mutex(failingCommits)
        self.commitDelay = commitDelay
    }

    /// How many commits have begun.
    var startedCommits: Int { commitsStarted.load(ordering: .relaxed) }

    /// While set, ``ping()`` fails as an unreachable database would.
    let unreachable = Atomic<Bool>(false)

    func ping() async throws {
        if unreachable.load(ordering: .relaxed) { throw AggregatorStoreError("injected: the database does not answer") }
        try await base.ping()
    }

    func commitRound(_ commit: RoundCommit, now: Date) async throws {
        commitsStarted.add(1, ordering: .relaxed)
        if commitDelay > .zero { try await Task.sleep(for: commitDelay) }
        let fail = remainingFailures.withLock { remaining in
            defer { remaining = max(0, remaining - 1) }
            return remaining > 0
        }
        if fail { throw AggregatorStoreError("injected: the connection to the database was lost") }
        try await base.commitRound(commit, now: now)
    }

    func appliedMigrations() async throws -> [String] { try await base.appliedMigrations() }
    func createEnrolmentToken(lifetime: TimeInterval, now: Date) async throws -> String { try await base.createEnrolmentToken(lifetime: lifetime, now: now) }
    func enrol(token: String, identityKey: Ed25519.PublicKey, now: Date) async throws(EnrolmentError) -> String {
        try await base.enrol(token: token, identityKey: identityKey, now: now)
    }
    func revoke(deviceID: String, now: Date) async throws -> Bool { try await base.revoke(deviceID: deviceID, now: now) }
    func status(of identityKey: Ed25519.PublicKey) async throws -> DeviceStatus { try await base.status(of: identityKey) }
    func activeDeviceCount() async throws -> Int { try await base.activeDeviceCount() }
    func activeDeviceIDs(among deviceIDs: [String]) async throws -> Set<String> { try await base.activeDeviceIDs(among: deviceIDs) }
    func recordRoundStart(_ start: RoundStart) async throws { try await base.recordRoundStart(start) }
    func recoverRounds(instance: String?, now: Date) async throws -> [String] { try await base.recoverRounds(instance: instance, now: now) }
    func renewLease(roundID: String, instance: String, leaseSeconds: Double) async throws -> Bool {
        try await base.renewLease(roundID: roundID, instance: instance, leaseSeconds: leaseSeconds)
    }
    func round(id roundID: String) async throws -> RoundRecord? { try await base.round(id: roundID) }
    func result(roundID: String) async throws -> RoundResultRecord? { try await base.result(roundID: roundID) }
    func recentRounds(limit: Int) async throws -> [RoundRecord] { try await base.recentRounds(limit: limit) }
    func claimWindow(_ set: FeatureSet, windowStart: Int, roundID: String, deviceIDs: [String], staleBefore: Date, now: Date) async throws -> WindowClaims {
        try await base.claimWindow(set, windowStart: windowStart, roundID: roundID, deviceIDs: deviceIDs, staleBefore: staleBefore, now: now)
    }
    func discardRound(roundID: String) async throws { try await base.discardRound(roundID: roundID) }
    func applyRetention(_ retention: Retention) async throws -> RetentionReport { try await base.applyRetention(retention) }
    func countedWindows(of deviceID: String, in set: FeatureSet, windowStarts: [Int]) async throws -> [Int: String] {
        try await base.countedWindows(of: deviceID, in: set, windowStarts: windowStarts)
    }
    func storedWindows(of set: FeatureSet, from: Int, to: Int) async throws -> [StoredWindow] { try await base.storedWindows(of: set, from: from, to: to) }
    func newestWindow(of set: FeatureSet) async throws -> StoredWindow? { try await base.newestWindow(of: set) }
    func define(_ set: FeatureSet, now: Date) async throws -> Bool { try await base.define(set, now: now) }
    func featureSets(includingRetired: Bool) async throws -> [RegisteredFeatureSet] { try await base.featureSets(includingRetired: includingRetired) }
    func retire(name: String, version: Int, now: Date) async throws -> Bool { try await base.retire(name: name, version: version, now: now) }
    func chargePrivacy(_ charge: PrivacyCharge, budgetEpsilon: Double?, delta: Double, now: Date) async throws -> PrivacyChargeOutcome {
        try await base.chargePrivacy(charge, budgetEpsilon: budgetEpsilon, delta: delta, now: now)
    }
    func privacyLedger(featureSet name: String) async throws -> [PrivacyCharge] { try await base.privacyLedger(featureSet: name) }
    func close() async { await base.close() }
}
