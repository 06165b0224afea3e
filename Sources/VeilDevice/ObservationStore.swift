public import Foundation
import GRDB
public import VeilFeatures
public import VeilProtocol
import VeilWire

/// A device's durable record of raw observations for one feature set, in a local SQLite file
/// (WAL, synchronous writes), so nothing is lost across restarts or crashes. Observations never
/// leave the device: per tumbling UTC window the store builds the encoded contribution, and a
/// window is marked done only when the aggregator confirmed a round finished with it counted; a
/// window is never contributed twice. Raw observations older than the retention are purged.
public final class ObservationStore: Sendable {
    /// The feature set observations are recorded for.
    public let layout: FeatureLayout
    /// The window length in seconds (3600 for hourly, 86400 for daily); windows start at
    /// multiples of it since the Unix epoch, in UTC.
    public let windowSeconds: Int
    /// How long raw observations are kept.
    public let retention: TimeInterval
    let queue: DatabaseQueue

    /// Opens (creating and migrating as needed) the store at `path`.
    public init(path: String, layout: FeatureLayout, windowSeconds: Int, retention: TimeInterval) throws {
        precondition(windowSeconds >= 1, "windows must be at least one second long")
        self.layout = layout
        self.windowSeconds = windowSeconds
        self.retention = retention
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: observations and contributions") { db in
            try db.create(table: "observation") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("feature", .text).notNull()
                t.column("window_start", .integer).notNull().indexed()
                t.column("value", .double)
                t.column("category", .text)
                t.column("events", .integer)
                t.column("recorded_at", .double).notNull()
            }
            try db.create(table: "contribution") { t in
                t.column("feature_set", .text).notNull()
                t.column("version", .integer).notNull()
                t.column("window_start", .integer).notNull()
                t.column("round_id", .text).notNull()
                t.column("counted_at", .double).notNull()
                t.primaryKey(["feature_set", "version", "window_start"])
            }
        }
        migrator.registerMigration("v2: spent windows") { db in
            // Windows whose masked input was sent (SPEC.md §12.1): never contributed again,
            // whatever the aggregator says, under any version of the feature set.
            try db.create(table: "spent_window") { t in
                t.column("feature_set", .text).notNull()
                t.column("window_start", .integer).notNull()
                t.column("version", .integer).notNull()
                t.column("round_id", .text).notNull()
                t.column("spent_at", .double).notNull()
                t.primaryKey(["feature_set", "window_start"])
            }
        }
        migrator.registerMigration("v3: spent window noise") { db in
            // The noise each spent window's contribution carried (differential privacy, SPEC.md
            // §12.4), so the device composes its own privacy loss against the set's budget.
            try db.alter(table: "spent_window") { t in
                t.add(column: "variance", .double)
                t.add(column: "devices", .integer)
                t.add(column: "dimension", .integer)
                t.add(column: "l2_sensitivity", .double)
                t.add(column: "l1_sensitivity", .double)
            }
        }
        try migrator.migrate(queue)
    }

    /// The start (seconds since the epoch, UTC) of the window holding `date`.
    public func windowStart(of date: Date) -> Int {
        FeatureSet.windowStart(of: Int(date.timeIntervalSince1970.rounded(.down)), windowSeconds: windowSeconds)
    }

    // MARK: Recording

    /// Records a value of a numeric or histogram feature.
    public func record(feature: String, value: Double, at date: Date = Date()) throws {
        try record([.value(feature: feature, value, at: date)])
    }

    /// Records a value of a categorical feature.
    public func record(feature: String, category: String, at date: Date = Date()) throws {
        try record([.category(feature: feature, category, at: date)])
    }

    /// Records `count` occurrences of an eventCount feature.
    public func recordEvents(feature: String, count: Int = 1, at date: Date = Date()) throws {
        try record([.events(feature: feature, count: count, at: date)])
    }

    /// Records many observations in one transaction: all of them or, when one is refused, none.
    /// An agent that buffers readings saves a synchronous write per reading this way. An
    /// observation dated in a window already counted or spent is refused
    /// (``ObservationError/lateObservation(window:)``): it could never be contributed.
    public func record(_ observations: [Observation]) throws {
        for o in observations {
            try check(o.feature, expecting: o.expected)
            if case let .events(feature, count, _) = o, count < 0 { throw ObservationError.negativeEventCount(feature) }
        }
        let set = layout.featureSet
        let windows = Set(observations.map { windowStart(of: $0.date) })
        try queue.write { db in
            let counted = try db.cachedStatement(sql: "SELECT 1 FROM contribution WHERE feature_set = ? AND version = ? AND window_start = ?")
            let spent = try db.cachedStatement(sql: "SELECT 1 FROM spent_window WHERE feature_set = ? AND window_start = ?")
            for window in windows.sorted() where try Row.fetchOne(counted, arguments: [set.name, set.version, window]) != nil
                || Row.fetchOne(spent, arguments: [set.name, window]) != nil {
                throw ObservationError.lateObservation(window: window)
            }
            let statement = try db.cachedStatement(sql: """
                INSERT INTO observation (feature, window_start, value, category, events, recorded_at) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for o in observations { try statement.execute(arguments: arguments(o)) }
        }
    }

    private func arguments(_ o: Observation) -> StatementArguments {
        switch o {
        case let .value(feature, value, date):
            return [feature, windowStart(of: date), value, nil, nil, date.timeIntervalSince1970]
        case let .category(feature, category, date):
            return [feature, windowStart(of: date), nil, category, nil, date.timeIntervalSince1970]
        case let .events(feature, count, date):
            return [feature, windowStart(of: date), nil, nil, count, date.timeIntervalSince1970]
        }
    }

    enum Expected { case value, category, events }

    private func check(_ feature: String, expecting: Expected) throws {
        guard let definition = layout.featureSet.features.first(where: { $0.name == feature }) else { throw ObservationError.unknownFeature(feature) }
        let fits: Bool
        switch (definition.kind, expecting) {
        case (.numeric, .value), (.histogram, .value), (.categorical, .category), (.eventCount, .events): fits = true
        default: fits = false
        }
        guard fits else { throw ObservationError.wrongKind(feature) }
    }

    // MARK: Contributing

    /// Windows that have closed (ended at or before `now`), hold observations and were neither
    /// counted nor spent, oldest first.
    public func pendingWindows(now: Date = Date()) throws -> [Int] {
        let current = windowStart(of: now)
        let set = layout.featureSet
        return try queue.read { db in
            try Int.fetchAll(db, sql: """
                SELECT DISTINCT window_start FROM observation
                WHERE window_start < ? AND window_start NOT IN
                  (SELECT window_start FROM contribution WHERE feature_set = ? AND version = ?)
                  AND window_start NOT IN (SELECT window_start FROM spent_window WHERE feature_set = ?)
                ORDER BY window_start
                """, arguments: [current, set.name, set.version, set.name])
        }
    }

    /// The windows to offer at check-in (SPEC.md §12.1), oldest first: every pending window
    /// (``pendingWindows(now:)``) and the most recent closed window unless it is counted or spent (a
    /// device without observations still counts as a contributor). At most
    /// `TransportCodec.maximumOfferedWindows`: beyond that the oldest ones and the most recent.
    public func offerableWindows(now: Date = Date()) throws -> [Int] {
        var windows = try pendingWindows(now: now)
        let latest = windowStart(of: now) - windowSeconds
        if windows.last != latest, try !isCounted(window: latest), try !isSpent(window: latest) { windows.append(latest) }
        let limit = TransportCodec.maximumOfferedWindows
        guard windows.count > limit else { return windows }
        return Array(windows.prefix(limit - 1)) + [windows[windows.count - 1]]
    }

    /// `windows` as an offer: sorted, each closed at `now`, aligned to this store's windows,
    /// neither counted nor spent, at most `TransportCodec.maximumOfferedWindows`; otherwise refused.
    public func checkedOffer(_ windows: [Int], now: Date) throws -> [Int] {
        let offer = Array(Set(windows)).sorted()
        let current = windowStart(of: now)
        guard offer.count <= TransportCodec.maximumOfferedWindows else { throw ObservationError.notOfferable(window: offer[TransportCodec.maximumOfferedWindows], reason: "more than \(TransportCodec.maximumOfferedWindows) windows") }
        for window in offer {
            guard window >= 0, window % windowSeconds == 0 else { throw ObservationError.notOfferable(window: window, reason: "not aligned to \(windowSeconds) s windows") }
            guard window < current else { throw ObservationError.notOfferable(window: window, reason: "not closed yet") }
            guard try !isCounted(window: window) else { throw ObservationError.alreadyCounted(window: window) }
            guard try !isSpent(window: window) else { throw ObservationError.spent(window: window) }
        }
        return offer
    }

    /// The encoded contribution of `window`: every observation recorded in it, clipped and
    /// fixed-point encoded by the layout.
    public func contribution(for window: Int) throws -> ModularVector {
        var observations = WindowObservations()
        try queue.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT feature, value, category, events FROM observation WHERE window_start = ? ORDER BY id", arguments: [window])
            for row in rows {
                let feature: String = row["feature"]
                if let value = row["value"] as Double? { observations.values[feature, default: []].append(value) }
                if let category = row["category"] as String? { observations.categories[feature, default: []].append(category) }
                if let events = row["events"] as Int? { observations.events[feature, default: 0] += events }
            }
        }
        return try layout.encode(observations)
    }

    /// Whether `window` was already counted in a finished round.
    public func isCounted(window: Int) throws -> Bool {
        let set = layout.featureSet
        return try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT 1 FROM contribution WHERE feature_set = ? AND version = ? AND window_start = ?",
                             arguments: [set.name, set.version, window]) != nil
        }
    }

    /// Marks `window` counted in `round`. Call only when the aggregator reported the round
    /// finished with this device's input in the sum. Refuses a second marking of one window.
    public func markCounted(window: Int, round: RoundID, at date: Date = Date()) throws {
        let set = layout.featureSet
        do {
            try queue.write { db in
                try db.execute(
                    sql: "INSERT INTO contribution (feature_set, version, window_start, round_id, counted_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [set.name, set.version, window, "\(round)", date.timeIntervalSince1970])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw ObservationError.alreadyCounted(window: window)
        }
    }

    /// Deletes raw observations of windows that ended more than `retention` before `now`.
    /// Returns how many were deleted.
    @discardableResult
    public func purge(now: Date = Date()) throws -> Int {
        let cutoff = windowStart(of: now.addingTimeInterval(-retention)) - windowSeconds
        return try queue.write { db in
            try db.execute(sql: "DELETE FROM observation WHERE window_start <= ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    /// The number of raw observations held.
    public func observationCount() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM observation") ?? 0 }
    }
}

/// One raw observation, for ``ObservationStore/record(_:)``.
public enum Observation: Sendable, Equatable {
    /// A value of a numeric or histogram feature.
    case value(feature: String, Double, at: Date)
    /// A value of a categorical feature.
    case category(feature: String, String, at: Date)
    /// Occurrences of an eventCount feature.
    case events(feature: String, count: Int, at: Date)

    /// The feature observed.
    public var feature: String {
        switch self {
        case let .value(f, _, _), let .category(f, _, _), let .events(f, _, _): return f
        }
    }

    /// When it was observed.
    public var date: Date {
        switch self {
        case let .value(_, _, d), let .category(_, _, d), let .events(_, _, d): return d
        }
    }

    var expected: ObservationStore.Expected {
        switch self {
        case .value: return .value
        case .category: return .category
        case .events: return .events
        }
    }
}

/// Why an observation or a marking was refused.
public enum ObservationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The feature set has no feature of this name.
    case unknownFeature(String)
    /// The value's kind does not match the feature's (for example a category for a numeric feature).
    case wrongKind(String)
    /// An event count below zero.
    case negativeEventCount(String)
    /// The window was already counted; a device counts at most once per window.
    case alreadyCounted(window: Int)
    /// The observation is dated in a window this device already contributed: it arrived too
    /// late to be counted anywhere, and is not stored.
    case lateObservation(window: Int)
    /// The window cannot be offered for a round (not closed, not aligned, too many).
    case notOfferable(window: Int, reason: String)
    /// The window's masked input was already sent in a round: it is never contributed again
    /// (SPEC.md §12.1).
    case spent(window: Int)
    /// One more window would take this device's own privacy loss for the set (ε composed over
    /// the windows it spent) past the set's budget (SPEC.md §12.4).
    case budgetSpent(spent: Double, wouldBe: Double, budget: Double)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .unknownFeature(name): return "the feature set has no feature \"\(name)\""
        case let .wrongKind(name): return "feature \"\(name)\" takes another kind of value"
        case let .negativeEventCount(name): return "feature \"\(name)\": event counts cannot be negative"
        case let .alreadyCounted(window): return "window \(window) was already counted"
        case let .lateObservation(window): return "window \(window) was already contributed; an observation dated in it came too late to be counted"
        case let .notOfferable(window, reason): return "window \(window) cannot be offered: \(reason)"
        case let .spent(window): return "window \(window) was already sent masked in a round; it is never contributed again"
        case let .budgetSpent(spent, wouldBe, budget):
            return "this device's privacy budget for the feature set is spent: one more window would take its ε from \(String(format: "%.4g", spent)) to \(String(format: "%.4g", wouldBe)), above \(String(format: "%.4g", budget))"
        }
    }
}
