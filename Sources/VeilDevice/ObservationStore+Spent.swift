public import Foundation
import GRDB
import VeilFeatures
public import VeilProtocol

/// A window is *spent* once this device sent its masked input for it in a round (SPEC.md §12.1):
/// the aggregator may unmask that input with its neighbours' shares whether or not the device
/// hears how the round ended, so the device never contributes the window again, under any
/// version of the feature set, whatever the aggregator says afterwards.
extension ObservationStore {
    /// Records, durably (the store's writes are synchronous), that the masked input of `window`
    /// is about to be sent in `round`. Call before sending it; idempotent for the same round,
    /// refused with ``ObservationError/spent(window:)`` for another.
    public func markSpent(window: Int, round: RoundID, at date: Date = Date()) throws {
        let set = layout.featureSet
        try queue.write { db in
            if let existing = try String.fetchOne(
                db, sql: "SELECT round_id FROM spent_window WHERE feature_set = ? AND window_start = ?", arguments: [set.name, window]) {
                guard existing == "\(round)" else { throw ObservationError.spent(window: window) }
                return
            }
            try db.execute(
                sql: "INSERT INTO spent_window (feature_set, window_start, version, round_id, spent_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [set.name, window, set.version, "\(round)", date.timeIntervalSince1970])
        }
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
