import Foundation
import Testing
import VeilCrypto
import VeilDevice
import VeilFeatures
import VeilProtocol
import VeilPrivacy

/// The device-side observation store: durable across restarts, one count per window, retention.
@Suite struct ObservationStoreTests {
    static let hour = 3600
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)   // a window boundary: 1.8e9 is a multiple of 3600

    static func open(_ path: String) throws -> ObservationStore {
        try ObservationStore(path: path, layout: FeatureLayout(FeatureEncodingTests.fleet), windowSeconds: hour, retention: 2 * 86_400)
    }

    static func temporaryPath() -> String { NSTemporaryDirectory() + "veil-observations-\(UUID().uuidString).sqlite" }

    @Test func windowsAreTumblingUTCHours() throws {
        let store = try Self.open(Self.temporaryPath())
        #expect(store.windowStart(of: Self.t0) == 1_800_000_000)
        #expect(store.windowStart(of: Self.t0.addingTimeInterval(3599.9)) == 1_800_000_000)
        #expect(store.windowStart(of: Self.t0.addingTimeInterval(3600)) == 1_800_003_600)
        #expect(store.windowStart(of: Date(timeIntervalSince1970: -1)) == -3600)
    }

    @Test func observationsSurviveARestartMidWindowAndCountOnce() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var store: ObservationStore? = try Self.open(path)
        try store!.record(feature: "session_seconds", value: 10, at: Self.t0.addingTimeInterval(60))
        try store!.record(feature: "app_category", category: "maps", at: Self.t0.addingTimeInterval(120))
        store = nil   // the agent restarts in the middle of the window
        let reopened = try Self.open(path)
        try reopened.record(feature: "session_seconds", value: 30, at: Self.t0.addingTimeInterval(1800))
        try reopened.recordEvents(feature: "crashes", count: 2, at: Self.t0.addingTimeInterval(1900))
        // The window is still open: nothing to contribute yet.
        #expect(try reopened.pendingWindows(now: Self.t0.addingTimeInterval(3000)).isEmpty)
        let window = Int(Self.t0.timeIntervalSince1970)
        #expect(try reopened.pendingWindows(now: Self.t0.addingTimeInterval(3600)) == [window])
        let layout = reopened.layout
        let values = try layout.decode(try reopened.contribution(for: window))
        guard case let .numeric(count, sum, _, _, _) = values.values["session_seconds"] else { Issue.record("numeric"); return }
        #expect(count == 2 && sum == 40, "both observations, from before and after the restart")
        #expect(values.values["app_category"] == .categorical(counts: ["maps": 1, "music": 0, "video": 0], clipped: 0))
        #expect(values.values["crashes"] == .eventCount(count: 2, clipped: 0))
        // Counted once; a second marking is refused and the window is no longer pending.
        var random = SeededRandomSource(seed: 1, label: "round")
        try reopened.markCounted(window: window, round: RoundID(using: &random))
        #expect(throws: ObservationError.alreadyCounted(window: window)) { try reopened.markCounted(window: window, round: RoundID(using: &random)) }
        #expect(try Self.open(path).pendingWindows(now: Self.t0.addingTimeInterval(7200)).isEmpty)
    }

    /// L9: an observation dated in a window already counted is refused, not silently kept
    /// where it can never be contributed.
    @Test func lateObservationsForACountedWindowAreRefused() throws {
        let store = try Self.open(Self.temporaryPath())
        let window = Int(Self.t0.timeIntervalSince1970)
        try store.record(feature: "session_seconds", value: 10, at: Self.t0.addingTimeInterval(60))
        var random = SeededRandomSource(seed: 2, label: "round")
        try store.markCounted(window: window, round: RoundID(using: &random))
        #expect(throws: ObservationError.lateObservation(window: window)) {
            try store.record([.value(feature: "session_seconds", 5, at: Self.t0.addingTimeInterval(3599)),
                              .value(feature: "session_seconds", 6, at: Self.t0.addingTimeInterval(3600))])
        }
        #expect(try store.observationCount() == 1, "the batch with a late observation recorded nothing")
        try store.record(feature: "session_seconds", value: 6, at: Self.t0.addingTimeInterval(3600))
        #expect(try store.observationCount() == 2)
    }

    /// H2: what a device offers at check-in: pending windows oldest first and the latest closed
    /// one; explicit offers must be closed, aligned and not counted.
    @Test func offersHoldPendingWindowsAndTheLatestClosedOne() throws {
        let store = try Self.open(Self.temporaryPath())
        let window = Int(Self.t0.timeIntervalSince1970)
        try store.record(feature: "session_seconds", value: 1, at: Self.t0)
        try store.record(feature: "session_seconds", value: 2, at: Self.t0.addingTimeInterval(2 * 3600))
        let now = Self.t0.addingTimeInterval(5 * 3600 + 10)
        #expect(try store.offerableWindows(now: now) == [window, window + 2 * 3600, window + 4 * 3600])
        var random = SeededRandomSource(seed: 3, label: "round")
        try store.markCounted(window: window + 4 * 3600, round: RoundID(using: &random))
        #expect(try store.offerableWindows(now: now) == [window, window + 2 * 3600])
        // More than 64 pending windows: the oldest 63 and the most recent.
        let many = try Self.open(Self.temporaryPath())
        for h in 0..<100 { try many.record(feature: "session_seconds", value: 1, at: Self.t0.addingTimeInterval(Double(h * 3600))) }
        let offer = try many.offerableWindows(now: Self.t0.addingTimeInterval(100 * 3600))
        #expect(offer.count == 64 && offer.first == window && offer[62] == window + 62 * 3600 && offer.last == window + 99 * 3600)
        #expect(throws: ObservationError.notOfferable(window: window + 5 * 3600, reason: "not closed yet")) { try store.checkedOffer([window + 5 * 3600], now: now) }
        #expect(throws: ObservationError.notOfferable(window: window + 60, reason: "not aligned to 3600 s windows")) { try store.checkedOffer([window + 60], now: now) }
        #expect(throws: ObservationError.alreadyCounted(window: window + 4 * 3600)) { try store.checkedOffer([window + 4 * 3600], now: now) }
        #expect(try store.checkedOffer([window + 3600, window], now: now) == [window, window + 3600])
    }

    @Test func wrongFeaturesAndKindsAreRefused() throws {
        let store = try Self.open(Self.temporaryPath())
        #expect(throws: ObservationError.unknownFeature("speed")) { try store.record(feature: "speed", value: 1) }
        #expect(throws: ObservationError.wrongKind("app_category")) { try store.record(feature: "app_category", value: 1) }
        #expect(throws: ObservationError.wrongKind("session_seconds")) { try store.record(feature: "session_seconds", category: "x") }
        #expect(throws: ObservationError.negativeEventCount("crashes")) { try store.recordEvents(feature: "crashes", count: -1) }
        #expect(try store.observationCount() == 0)
    }

    @Test func retentionPurgesOnlyOldWindows() throws {
        let store = try Self.open(Self.temporaryPath())
        try store.record(feature: "session_seconds", value: 1, at: Self.t0)
        try store.record(feature: "session_seconds", value: 2, at: Self.t0.addingTimeInterval(86_400))
        try store.record(feature: "session_seconds", value: 3, at: Self.t0.addingTimeInterval(3 * 86_400))
        // Retention is two days: at t0 + 3 days the first day's window is gone, the second stays.
        #expect(try store.purge(now: Self.t0.addingTimeInterval(3 * 86_400)) == 1)
        #expect(try store.observationCount() == 2)
    }

    @Test func aBatchIsRecordedWholeOrNotAtAll() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try Self.open(path)
        let at = Self.t0.addingTimeInterval(30)
        try store.record([
            .value(feature: "session_seconds", 12, at: at), .category(feature: "app_category", "maps", at: at),
            .events(feature: "crashes", count: 1, at: at),
        ])
        #expect(try store.observationCount() == 3)
        #expect(throws: ObservationError.wrongKind("crashes")) {
            try store.record([.value(feature: "session_seconds", 1, at: at), .value(feature: "crashes", 2, at: at)])
        }
        #expect(throws: ObservationError.negativeEventCount("crashes")) { try store.record([.events(feature: "crashes", count: -1, at: at)]) }
        #expect(throws: ObservationError.unknownFeature("nope")) { try store.record([.value(feature: "nope", 1, at: at)]) }
        #expect(try store.observationCount() == 3, "a refused batch records nothing")
        let window = Int(Self.t0.timeIntervalSince1970)
        let values = try FeatureLayout(FeatureEncodingTests.fleet).decode(store.contribution(for: window))
        #expect(values.values["crashes"] == .eventCount(count: 1, clipped: 0))
    }

    /// Issue 14, finding 6: once a window's masked input was sent, the window is spent under every
    /// version of the feature set, whatever the aggregator says afterwards.
    @Test func aSpentWindowIsNeverOfferedOrContributedAgain() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try Self.open(path)
        let window = Int(Self.t0.timeIntervalSince1970)
        let later = Self.t0.addingTimeInterval(7200)
        try store.record(feature: "session_seconds", value: 10, at: Self.t0.addingTimeInterval(60))
        #expect(try store.offerableWindows(now: later) == [window, window + Self.hour])
        var random = SeededRandomSource(seed: 3, label: "round")
        let round = RoundID(using: &random)
        try store.markSpent(window: window, round: round)
        try store.markSpent(window: window, round: round)   // the same round again: nothing changes
        #expect(throws: ObservationError.spent(window: window)) { try store.markSpent(window: window, round: RoundID(using: &random)) }
        #expect(try store.isSpent(window: window) && store.spendingRound(of: window) == "\(round)")
        #expect(try store.pendingWindows(now: later).isEmpty)
        #expect(try store.offerableWindows(now: later) == [window + Self.hour])
        #expect(throws: ObservationError.spent(window: window)) { _ = try store.checkedOffer([window], now: later) }
        #expect(throws: ObservationError.lateObservation(window: window)) {
            try store.record(feature: "session_seconds", value: 20, at: Self.t0.addingTimeInterval(120))
        }
        #expect(try store.spentUnconfirmedWindows() == [window])
        try store.markCounted(window: window, round: round)
        #expect(try store.spentUnconfirmedWindows().isEmpty)

        // A new version of the set reads the same raw observations: the window stays spent.
        var next = FeatureEncodingTests.fleet
        next.version += 1
        let reopened = try ObservationStore(path: path, layout: FeatureLayout(next), windowSeconds: Self.hour, retention: 2 * 86_400)
        #expect(try reopened.isSpent(window: window) && !reopened.isCounted(window: window))
        #expect(try reopened.offerableWindows(now: later) == [window + Self.hour])
        #expect(throws: ObservationError.spent(window: window)) { _ = try reopened.checkedOffer([window], now: later) }
    }

    /// SPEC.md §12.4: the device composes the noise of every window it spent and refuses one
    /// more past the set's budget, whatever the aggregator asks.
    @Test func aDeviceRefusesWindowsPastItsOwnPrivacyBudget() throws {
        var set = FeatureEncodingTests.fleet
        set.maximumCohort = 10_000
        set.privacy = FeaturePrivacy(epsilon: 1, delta: 1e-6, minimumSurvivors: 100)
        let plan = try #require(try FeatureLayout(set).privacy)
        set.privacy?.budget = PrivacyBudget(epsilon: plan.windowCurve.composed(times: 2).epsilon(delta: 1e-6).epsilon * 1.0001)
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try ObservationStore(path: path, layout: FeatureLayout(set), windowSeconds: Self.hour, retention: 2 * 86_400)
        var random = SeededRandomSource(seed: 4, label: "budget")
        let window = Int(Self.t0.timeIntervalSince1970)
        #expect(try store.budgetRefusal() == nil)
        try store.markSpent(window: window, round: RoundID(using: &random))
        try store.markSpent(window: window + Self.hour, round: RoundID(using: &random))
        let refusal = try #require(try store.budgetRefusal())
        guard case let .budgetSpent(spent, wouldBe, budget) = refusal else { Issue.record("\(refusal)"); return }
        #expect(spent <= budget && wouldBe > budget)
        #expect(throws: refusal) { try store.markSpent(window: window + 2 * Self.hour, round: RoundID(using: &random)) }
        #expect(try !store.isSpent(window: window + 2 * Self.hour))
    }
}
