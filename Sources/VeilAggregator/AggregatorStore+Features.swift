public import Foundation
import GRDB
public import VeilFeatures
public import VeilProtocol

/// One window of a feature set as released: the values only when enough devices contributed.
public struct ReleasedWindow: Sendable, Equatable, Codable {
    /// The window's start, seconds since the Unix epoch (UTC).
    public let windowStart: Int
    /// Devices whose contributions are in the window (over all its rounds).
    public let contributors: Int
    /// The rounds whose sums were added into the window.
    public let roundIDs: [String]
    /// The decoded values, or nil while fewer than the minimum release cohort contributed.
    public let values: FeatureSetValues?
}

extension AggregatorStore {
    /// Adds a finished round's sum into its window's running sum (sums add: each device counts at
    /// most once per window, so the rounds of a window have disjoint contributors). Refuses, and
    /// changes nothing, when the window would exceed the feature set's maximum cohort, which its
    /// overflow check assumed.
    public func addToWindow(_ set: FeatureSet, windowStart: Int, roundID: String, sum: ModularVector, contributors: Int, now: Date = Date()) throws {
        try pool.write { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT sum, contributors, round_ids FROM window_aggregate WHERE feature_set = ? AND version = ? AND window_start = ?
                """, arguments: [set.name, set.version, windowStart])
            var total = sum
            var count = contributors
            var rounds = [roundID]
            if let row {
                let stored = try ModularVector(packed: Array(row["sum"] as Data), count: sum.count, bitWidth: sum.bitWidth)
                total.add(stored)
                count += row["contributors"] as Int
                rounds = try JSONDecoder().decode([String].self, from: Data((row["round_ids"] as String).utf8)) + rounds
            }
            guard count <= set.maximumCohort else {
                throw FeatureWindowError.windowOverflow(window: windowStart, contributors: count, maximum: set.maximumCohort)
            }
            let roundsJSON = String(decoding: try JSONEncoder().encode(rounds), as: UTF8.self)
            try db.execute(sql: """
                INSERT INTO window_aggregate (feature_set, version, window_start, dimension, bit_width, sum, contributors, round_ids, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (feature_set, version, window_start) DO UPDATE SET
                  sum = excluded.sum, contributors = excluded.contributors, round_ids = excluded.round_ids, updated_at = excluded.updated_at
                """, arguments: [set.name, set.version, windowStart, sum.count, sum.bitWidth, Data(total.packed()), count, roundsJSON, now.timeIntervalSince1970])
        }
    }

    /// The windows of `layout`'s feature set starting in `from ..< to`, oldest first, decoded
    /// and released only where at least `minimumReleaseCohort` devices contributed.
    public func windows(of layout: FeatureLayout, from: Int, to: Int, minimumReleaseCohort: Int) throws -> [ReleasedWindow] {
        let set = layout.featureSet
        let rows = try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT window_start, sum, contributors, round_ids, dimension, bit_width FROM window_aggregate
                WHERE feature_set = ? AND version = ? AND window_start >= ? AND window_start < ? ORDER BY window_start
                """, arguments: [set.name, set.version, from, to])
        }
        return try rows.map { row in
            let contributors: Int = row["contributors"]
            var values: FeatureSetValues?
            if contributors >= minimumReleaseCohort {
                let sum = try ModularVector(packed: Array(row["sum"] as Data), count: row["dimension"], bitWidth: row["bit_width"])
                values = try layout.decode(sum)
            }
            return ReleasedWindow(
                windowStart: row["window_start"], contributors: contributors,
                roundIDs: try JSONDecoder().decode([String].self, from: Data((row["round_ids"] as String).utf8)), values: values)
        }
    }
}

/// A window result the store refuses.
public enum FeatureWindowError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Adding the round would exceed the feature set's maximum cohort for one window.
    case windowOverflow(window: Int, contributors: Int, maximum: Int)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .windowOverflow(window, contributors, maximum):
            return "window \(window) would have \(contributors) contributors, above the feature set's maximumCohort \(maximum); its sums could wrap"
        }
    }
}
