import Foundation
import Testing
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilFeatures
import VeilProtocol
import VeilStore

/// From raw observations on devices to decoded feature values, through a real round over TLS.
@Suite(.serialized) struct FeatureRoundTests {
    @Test func devicesContributeAWindowAndOnlyCountedWindowsAreMarkedDone() async throws {
        let set = FeatureSet(name: "fleet", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "session_seconds", kind: .numeric(minimum: 0, maximum: 600, precision: 1), maximumValuesPerDevice: 10),
            Feature(name: "temperature_c", kind: .histogram(edges: [0, 20, 40]), maximumValuesPerDevice: 10),
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        let layout = try FeatureLayout(set)
        let window = 1_800_000_000
        let start = Date(timeIntervalSince1970: Double(window))
        let harness = try await NetworkHarness.featureRounds(of: set, window: window)
        defer { Task { await harness.stop() } }
        var opened: [ObservationStore] = []
        for d in 0..<8 {
            let store = try ObservationStore(path: harness.directory + "/device-\(d).sqlite", layout: layout, windowSeconds: 3600, retention: 86_400)
            try store.record(feature: "session_seconds", value: Double(60 * (d + 1)), at: start.addingTimeInterval(10))
            try store.record(feature: "temperature_c", value: Double(5 * d), at: start.addingTimeInterval(20))
            try store.recordEvents(feature: "crashes", count: d % 2, at: start.addingTimeInterval(30))
            opened.append(store)
        }
        let stores = opened
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            let rounds = await harness.aggregator.completedRounds()
            let results = try await withThrowingTaskGroup(of: (Int, RoundParticipation).self) { group in
                for d in 0..<8 {
                    group.addTask {
                        let device = harness.device(identity: identities[d], connection: connection)
                        // Device 7 loses power before sending its masked input.
                        let options = ParticipationOptions(disconnectBefore: d == 7 ? .maskedInputCollection : nil)
                        return (d, try await device.contribute(window: window, from: stores[d], options: options))
                    }
                }
                var all: [Int: RoundParticipation] = [:]
                for try await (d, r) in group { all[d] = r }
                return all
            }
            var iterator = rounds.makeAsyncIterator()
            let round = try #require(await iterator.next())
            guard case let .finished(result) = round.outcome else { Issue.record("round did not finish"); return }
            let values = try layout.decode(result.sum)
            #expect(values.contributors == 7)
            guard case let .numeric(count, sum, mean, _, _) = values.values["session_seconds"] else { Issue.record("numeric"); return }
            #expect(count == 7 && sum == Double((1...7).reduce(0, +) * 60) && mean == 240)
            #expect(values.values["temperature_c"] == .histogram(edges: [0, 20, 40], counts: [4, 3], clipped: 0))
            #expect(values.values["crashes"] == .eventCount(count: 3, clipped: 0))
            for d in 0..<7 {
                #expect(results[d]?.outcome == .counted)
                #expect(try stores[d].isCounted(window: window))
                await #expect(throws: DeviceError.localStore("window \(window) was already counted")) {
                    _ = try await harness.device(identity: identities[d], connection: connection).contribute(window: window, from: stores[d])
                }
            }
            // The device that dropped keeps its window for a later round of the same window.
            #expect(try !stores[7].isCounted(window: window))
            #expect(try stores[7].pendingWindows(now: start.addingTimeInterval(7200)) == [window])
            // A window that has not closed, or is not aligned, is refused before connecting.
            let device7 = harness.device(identity: identities[7], connection: connection)
            await #expect(throws: DeviceError.input(ObservationError.notOfferable(window: window + 3600, reason: "not closed yet").description)) {
                _ = try await device7.contribute(window: window + 3600, from: stores[7])
            }
            await #expect(throws: DeviceError.input(ObservationError.notOfferable(window: window + 1, reason: "not aligned to 3600 s windows").description)) {
                _ = try await device7.contribute(window: window + 1, from: stores[7])
            }
        }
    }

    @Test func windowsCombineRoundsAndAreReleasedOnlyAboveTheMinimumCohort() async throws {
        let set = FeatureSet(name: "fleet", version: 2, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "session_seconds", kind: .numeric(minimum: 0, maximum: 600, precision: 1), maximumValuesPerDevice: 10),
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        let layout = try FeatureLayout(set)
        let window = 1_800_000_000
        // The aggregator's clock is 90 minutes into the next hour: the latest closed window is `window`.
        let harness = try await NetworkHarness(fixedTime: Date(timeIntervalSince1970: Double(window + 5400))) { c in
            c.rounds.featureSet = set
            c.rounds.windowSeconds = 3600
            c.rounds.minimumReleaseCohort = 10
            c.rounds.minimumCohort = 8
            c.rounds.maximumCohort = 8
            c.rounds.expectedDropout = 0.01
            c.rounds.threshold = 5
        }
        defer { Task { await harness.stop() } }
        var opened: [ObservationStore] = []
        for d in 0..<16 {
            let store = try ObservationStore(path: harness.directory + "/device-\(d).sqlite", layout: layout, windowSeconds: 3600, retention: 86_400)
            try store.record(feature: "session_seconds", value: Double(10 * (d + 1)), at: Date(timeIntervalSince1970: Double(window + 100 + d)))
            try store.recordEvents(feature: "crashes", count: 1, at: Date(timeIntervalSince1970: Double(window + 200)))
            opened.append(store)
        }
        let stores = opened
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(16, connection: connection)
            for batch in [0..<8, 8..<16] {
                let results = try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                    for d in batch {
                        group.addTask { try await harness.device(identity: identities[d], connection: connection).participateInFeatureRound(store: stores[d]) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.allSatisfy { $0.outcome == .counted && $0.task == "fleet/v2/\(window)" })
                for d in batch { #expect(try stores[d].isCounted(window: window)) }
                // Wait for the aggregator to record the round.
                for _ in 0..<100 where try await harness.countedWindow(of: set, window: window)?.contributors != batch.upperBound {
                    try await Task.sleep(for: .milliseconds(20))
                }
                let released = try #require(try await harness.aggregator.featureWindows(of: set, from: window, to: window + 3600).first)
                if batch.upperBound < 10 {
                    #expect(released.values == nil && released.contributors == 0, "8 contributors is below the release minimum of 10")
                    #expect(released.pendingContributors == 8 && released.releases == 0)
                } else {
                    #expect(released.contributors == 16 && released.pendingContributors == 0 && released.releases == 1)
                    #expect(released.roundIDs.count == 2, "the window combines both rounds")
                    let values = try #require(released.values)
                    #expect(values.contributors == 16)
                    guard case let .numeric(count, sum, _, _, _) = values.values["session_seconds"] else { Issue.record("numeric"); return }
                    #expect(count == 16 && sum == Double((1...16).reduce(0, +) * 10))
                    #expect(values.values["crashes"] == .eventCount(count: 16, clipped: 0))
                }
            }
        }
    }

    @Test func aDeviceCountedWithoutHearingItIsToldSoAndNeverCountsTwice() async throws {
        let set = FeatureSet(name: "fleet", version: 3, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        let layout = try FeatureLayout(set)
        let window = 1_800_000_000
        let harness = try await NetworkHarness.featureRounds(of: set, window: window)
        defer { Task { await harness.stop() } }
        let stores = try harness.eventStores(16, of: set, window: window)
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(16, connection: connection)
            func device(_ d: Int) -> VeilDevice { harness.device(identity: identities[d], connection: connection) }
            // Device 7 loses its stream before unmasking: its masked input is in the sum, but it
            // never hears COUNTED. The window is spent on the device: never offered again.
            let first = try await withThrowingTaskGroup(of: (Int, RoundParticipation).self) { group in
                for d in 0..<8 {
                    group.addTask {
                        (d, try await device(d).participateInFeatureRound(store: stores[d], options: .init(disconnectBefore: d == 7 ? .unmasking : nil)))
                    }
                }
                return try await group.reduce(into: [Int: RoundParticipation]()) { $0[$1.0] = $1.1 }
            }
            #expect(first[7]?.outcome == .disconnected(before: .unmasking))
            #expect(try stores[7].pendingWindows(now: Date(timeIntervalSince1970: Double(window + 7200))).isEmpty)
            #expect(try stores[7].spentUnconfirmedWindows() == [window])
            for _ in 0..<100 where try await harness.countedWindow(of: set, window: window)?.contributors != 8 {
                try await Task.sleep(for: .milliseconds(20))
            }
            // A device without that record (an older client, or a restored store) checking in
            // again is told at once that the window already counts it.
            let restored7 = try ObservationStore(path: harness.directory + "/device-7-restored.sqlite", layout: layout, windowSeconds: 3600, retention: 86_400)
            try restored7.recordEvents(feature: "crashes", count: 1, at: Date(timeIntervalSince1970: Double(window + 60)))
            let again = try await device(7).participateInFeatureRound(store: restored7)
            #expect(again.outcome == .alreadyCounted && again.task == "fleet/v3/\(window)")
            #expect(again.countedRoundID == first[0]?.countedRoundID)
            #expect(try restored7.isCounted(window: window))
            // A second round of the window with eight new devices counts only them.
            let second = try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                for d in 8..<16 { group.addTask { try await device(d).participateInFeatureRound(store: stores[d]) } }
                group.addTask {
                    // Device 0 lost its record of being counted (for example restored from a backup).
                    let forgetful = try ObservationStore(path: harness.directory + "/device-0-restored.sqlite", layout: layout, windowSeconds: 3600, retention: 86_400)
                    try forgetful.recordEvents(feature: "crashes", count: 1, at: Date(timeIntervalSince1970: Double(window + 60)))
                    return try await device(0).participateInFeatureRound(store: forgetful)
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(second.filter { $0.outcome == .alreadyCounted }.count == 1, "device 0 is refused, not counted twice")
            #expect(second.filter { $0.outcome == .counted }.count == 8)
            for _ in 0..<100 where try await harness.countedWindow(of: set, window: window)?.contributors != 16 {
                try await Task.sleep(for: .milliseconds(20))
            }
            let stored = try #require(try await harness.countedWindow(of: set, window: window))
            #expect(stored.contributors == 16 && stored.rounds == 2)
            #expect(stored.values.values["crashes"] == .eventCount(count: 16, clipped: 0))
        }
    }
}
