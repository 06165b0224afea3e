import Foundation
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilStore

/// Issue 13, H2: devices offer their pending windows and the aggregator runs rounds for every
/// window still open, so an outage or an offline device delays a window instead of losing it.
@Suite(.serialized) struct WindowOfferTests {
    static let set = FeatureSet(name: "fleet", version: 9, bitWidth: 48, maximumCohort: 1000, features: [
        Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
    ])
    static let hour = 3600
    static let w0 = 1_800_000_000

    /// Runs one feature round with `devices`, each offering what its store holds.
    static func round(
        _ harness: NetworkHarness, _ identities: [DeviceIdentity], _ stores: [ObservationStore], devices: Range<Int>, connection: AggregatorConnection
    ) async throws -> [Int: RoundParticipation] {
        try await withThrowingTaskGroup(of: (Int, RoundParticipation).self) { group in
            for d in devices {
                group.addTask { (d, try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d])) }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    /// The aggregator was down for two windows: when devices come back, each round takes the
    /// oldest window its cohort offers, and every window is counted in turn, none lost.
    @Test func anOutageDelaysWindowsInsteadOfLosingThem() async throws {
        let (w1, w2) = (Self.w0 + Self.hour, Self.w0 + 2 * Self.hour)
        // Ten minutes after w2 closed: w0, w1 and w2 are all closed and within the day's horizon.
        let harness = try await NetworkHarness.featureRounds(of: Self.set, window: Self.w0, now: Date(timeIntervalSince1970: Double(w2 + Self.hour + 600)))
        defer { Task { await harness.stop() } }
        let stores = try harness.eventStores(8, of: Self.set, windows: [Self.w0, w1, w2])
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            for window in [Self.w0, w1, w2] {
                let results = try await Self.round(harness, identities, stores, devices: 0..<8, connection: connection)
                #expect(results.values.allSatisfy { $0.outcome == .counted && $0.task == "fleet/v9/\(window)" }, "\(results.values.map { ($0.outcome, $0.task) })")
                for store in stores { #expect(try store.isCounted(window: window)) }
            }
            for window in [Self.w0, w1, w2] {
                let stored = try #require(try await harness.countedWindow(of: Self.set, window: window))
                #expect(stored.contributors == 8)
                #expect(stored.values.values["crashes"] == .eventCount(count: 8, clipped: 0))
            }
        }
    }

    /// A device offline for one window offers it and the next: the others have only the next,
    /// so it joins their round there, and keeps the missed window pending for a later cohort.
    @Test func aDeviceThatMissedAWindowJoinsTheNextAndKeepsTheMissedOnePending() async throws {
        let w1 = Self.w0 + Self.hour
        let harness = try await NetworkHarness.featureRounds(of: Self.set, window: w1)
        defer { Task { await harness.stop() } }
        let stores = try harness.eventStores(7, of: Self.set, windows: [w1])
            + harness.eventStores(1, of: Self.set, windows: [Self.w0, w1], prefix: "straggler")
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            let results = try await Self.round(harness, identities, stores, devices: 0..<8, connection: connection)
            #expect(results.values.allSatisfy { $0.outcome == .counted && $0.task == "fleet/v9/\(w1)" })
            #expect(try stores[7].isCounted(window: w1))
            #expect(try stores[7].pendingWindows(now: Date(timeIntervalSince1970: Double(w1 + 5400))) == [Self.w0])
        }
    }

    /// Offers are checked: a window not aligned to the aggregator's windows is a configuration
    /// mismatch (FAILED_PRECONDITION); a window past the horizon gets NO_ROUND; a window the
    /// device did not offer is never contributed.
    @Test func offersOutsideTheHorizonOrOfAnotherWindowLengthAreRefused() async throws {
        let harness = try await NetworkHarness.featureRounds(of: Self.set, window: Self.w0) { c in
            c.rounds.windowHorizonSeconds = 2 * Self.hour
        }
        defer { Task { await harness.stop() } }
        let layout = try FeatureLayout(Self.set)
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(2, connection: connection)
            // A device configured with half-hour windows offers a window the aggregator cannot have.
            let halfHours = try ObservationStore(path: harness.directory + "/half.sqlite", layout: layout, windowSeconds: 1800, retention: 86_400)
            try halfHours.recordEvents(feature: "crashes", at: Date(timeIntervalSince1970: Double(Self.w0 + 1900)))
            do {
                let result = try await harness.device(identity: identities[0], connection: connection)
                    .participateInFeatureRound(store: halfHours, windows: [Self.w0 + 1800])
                Issue.record("a misaligned offer was answered with \(result.outcome)")
            } catch let DeviceError.rejected(code, message) {
                #expect(code.contains("failedPrecondition") && message.contains("window length differs"), "\(code): \(message)")
            }
            // A window that closed more than the two-hour horizon ago is not open any more.
            let old = try harness.eventStores(1, of: Self.set, windows: [Self.w0 - 3 * Self.hour], prefix: "old")[0]
            let result = try await harness.device(identity: identities[1], connection: connection)
                .participateInFeatureRound(store: old, windows: [Self.w0 - 3 * Self.hour])
            guard case .noRound = result.outcome else { Issue.record("an offer past the horizon got \(result.outcome)"); return }
            #expect(result.reason.contains("none of the offered windows is open"), "\(result.reason)")
            #expect(try !old.isCounted(window: Self.w0 - 3 * Self.hour))
        }
    }
}
