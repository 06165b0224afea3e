public import Foundation
import GRDB
import VeilFeatures
import VeilPrivacy
public import VeilProtocol

/// A window is *spent* once this device sent its masked input for it in a round (SPEC.md §12.1):
/// the aggregator may unmask that input with its neighbours' shares whether or not the device
/// hears how the round ended, so the device never contributes the window again, under any
/// version of the feature set, whatever the aggregator says afterwards.
extension ObservationStore {
    /// Records, durably (the store's writes are synchronous), that the masked input of `window`
    /// is about to be sent in `round`, with the noise it carries when the set has differential
    /// privacy. Call before sending it; idempotent for the same round, refused with
    /// ``ObservationError/spent(window:)`` for another, and with
    /// ``ObservationError/budgetSpent(spent:wouldBe:budget:)`` when the window would take this
    /// device's own privacy loss for the set past its budget.
    public func markSpent(window: Int, round: RoundID, at date: Date = Date()) throws {
        let set = layout.featureSet
        try queue.write { db in
            if let existing = try String.fetchOne(
                db, sql: "SELECT round_id FROM spent_window WHERE feature_set = ? AND window_start = ?", arguments: [set.name, window]) {
                guard existing == "\(round)" else { throw ObservationError.spent(window: window) }
                return
            }
            if let refusal = try budgetRefusal(db) { throw refusal }
            let release = layout.privacy?.release(dimension: layout.dimension)
            try db.execute(
                sql: """
                    INSERT INTO spent_window (feature_set, window_start, version, round_id, spent_at, variance, devices, dimension, l2_sensitivity, l1_sensitivity)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [set.name, window, set.version, "\(round)", date.timeIntervalSince1970, release?.variance, release?.devices,
                            release?.dimension, release?.l2Sensitivity, release?.l1Sensitivity])
        }
    }

    /// The noise of every window this device spent for its set (all versions) with differential
    /// privacy.
    static func releases(_ db: Database, _ name: String) throws -> [DistributedDiscreteGaussian.Release] {
        try Row.fetchAll(db, sql: """
            SELECT variance, devices, dimension, l2_sensitivity, l1_sensitivity FROM spent_window
            WHERE feature_set = ? AND variance IS NOT NULL ORDER BY window_start
            """, arguments: [name]).map {
            .init(variance: $0["variance"], devices: $0["devices"], dimension: $0["dimension"], l2Sensitivity: $0["l2_sensitivity"], l1Sensitivity: $0["l1_sensitivity"])
        }
    }

    /// Whether this device may still contribute one more window of its set under the set's
    /// privacy budget (SPEC.md §12.4), composing the noise of every window it spent: nil when it
    /// may (or the set has no budget), else the refusal.
    public func budgetRefusal() throws -> ObservationError? {
        try queue.read { db in try budgetRefusal(db) }
    }

    /// ``budgetRefusal()`` inside the caller's transaction (``markSpent(window:round:at:)`` checks
    /// and records in one).
    private func budgetRefusal(_ db: Database) throws -> ObservationError? {
        guard let plan = layout.privacy, let budget = plan.settings.budget else { return nil }
        let spent = try Self.releases(db, layout.featureSet.name)
        let release = plan.release(dimension: layout.dimension)
        let wouldBe = DistributedDiscreteGaussian.Release.composed(spent + [release]).epsilon(delta: plan.settings.delta).epsilon
        guard wouldBe > budget.epsilon else { return nil }
        let before = spent.isEmpty ? 0 : DistributedDiscreteGaussian.Release.composed(spent).epsilon(delta: plan.settings.delta).epsilon
        return .budgetSpent(spent: before, wouldBe: wouldBe, budget: budget.epsilon)
    }

    /// Whether the masked input of `window` was sent in a round, under any version of the set.
    public func isSpent(window: Int) throws -> Bool {
        try spendingRound(of: window) != nil
    }

    /// The round (hex) in which the masked input of `window` was sent, if it was.
    public func spendingRound(of window: Int) throws -> String? {
        let set = layout.featureSet
        return try queue.read { db in
            try String.fetchOne(db, sql: "SELECT round_id FROM spent_window WHERE feature_set = ? AND window_start = ?", arguments: [set.name, window])
        }
    }

    /// Windows spent but not confirmed counted, oldest first: their input was sent and the device
    /// never heard COUNTED. The aggregator may or may not have counted them; either way they are
    /// never contributed again (what the spent rule costs, SPEC.md §12.1).
    public func spentUnconfirmedWindows() throws -> [Int] {
        let set = layout.featureSet
        return try queue.read { db in
            try Int.fetchAll(db, sql: """
                SELECT window_start FROM spent_window WHERE feature_set = ? AND window_start NOT IN
                  (SELECT window_start FROM contribution WHERE feature_set = ? AND version = ?)
                ORDER BY window_start
                """, arguments: [set.name, set.name, set.version])
        }
    }
}

extension ObservationStore {
    /// Every window counted in a finished round, oldest first, with the round (hex).
    public func countedWindows() throws -> [(window: Int, round: String)] {
        let set = layout.featureSet
        return try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT window_start, round_id FROM contribution WHERE feature_set = ? AND version = ? ORDER BY window_start",
                             arguments: [set.name, set.version]).map { ($0["window_start"], $0["round_id"]) }
        }
    }
}
