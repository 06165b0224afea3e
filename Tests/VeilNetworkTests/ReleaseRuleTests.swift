import Foundation
import Testing
import VeilAggregator
import VeilFeatures
import VeilNetworkSimulation
import VeilProtocol
import VeilStore

/// What a release reveals (SPEC.md §12.1): a window's served values change only when at least the
/// minimum release cohort of new devices contributed, per-round sums are never served, and a plain
/// round's sum is served only above the same minimum.
@Suite(.serialized) struct ReleaseRuleTests {
    static let window = 1_800_000_000

    /// Finding 5: two consecutive releases must never subtract to one small round's sum.
    @Test(arguments: StoreBackend.allCases)
    func consecutiveReleasesDifferByAtLeastTheMinimumCohort(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let set = AggregatorStoreTests.fleet
            let layout = try FeatureLayout(set)
            let one = ModularVector(reducing: (0..<layout.dimension).map { Int64($0 + 1) }, bitWidth: 32)
            func served() async throws -> ReleasedWindow {
                try #require(try await store.windows(of: layout, from: Self.window, to: Self.window + 1, minimumReleaseCohort: 10).first)
            }
            try await store.addToWindow(set, windowStart: Self.window, roundID: "r1", sum: one, contributorIDs: devices("a", 10))
            let first = try await served()
            #expect(first.releases == 1 && first.contributors == 10 && first.roundIDs == ["r1"])

            // A round of 2 devices after the release: served values do not move, or the two
            // releases would subtract to those 2 devices' sum.
            try await store.addToWindow(set, windowStart: Self.window, roundID: "r2", sum: one, contributorIDs: devices("b", 2))
            try await store.addToWindow(set, windowStart: Self.window, roundID: "r3", sum: one, contributorIDs: devices("c", 7))
            let held = try await served()
            #expect(held.values == first.values && held.contributors == 10 && held.roundIDs == ["r1"] && held.releases == 1)
            #expect(held.pendingContributors == 9)

            // The tenth new device makes a release that differs from the first by 10 devices.
            try await store.addToWindow(set, windowStart: Self.window, roundID: "r4", sum: one, contributorIDs: devices("d", 1))
            let second = try await served()
            #expect(second.releases == 2 && second.contributors == 20 && second.roundIDs == ["r1", "r2", "r3", "r4"])
            #expect(second.pendingContributors == 0)
            #expect(second.contributors - first.contributors >= 10)

            // A release below the minimum in force is not served (the minimum was raised).
            let stricter = try #require(try await store.windows(of: layout, from: Self.window, to: Self.window + 1, minimumReleaseCohort: 21).first)
            #expect(stricter.values == nil && stricter.pendingContributors == 20)
        }
    }

    @Test func theMinimumReleaseCohortHasAFloor() throws {
        var c = AggregatorConfiguration()
        c.insecurePlaintext = true
        c.rounds.minimumReleaseCohort = 1
        #expect(throws: AggregatorConfigurationError.self) { try c.validate() }
        do { try c.validate() } catch let AggregatorConfigurationError.invalid(field, reason) {
            #expect(field == "rounds.minimumReleaseCohort" && reason.contains("at least 10"))
        }
        c.rounds.minimumReleaseCohort = RoundPolicy.minimumReleaseCohortFloor
        try c.validate()
    }

    /// A plain round's sum is readable over the API once it has the minimum release cohort of
    /// survivors, and withheld below it; a feature round's never.
    @Test func aPlainRoundsSumIsServedOnlyAboveTheReleaseMinimum() async throws {
        let token = "release-token-0123456789abcdef"
        let harness = try await NetworkHarness { c in
            c.apiToken = token
            c.rounds.minimumReleaseCohort = 10
            c.rounds.minimumCohort = 12
            c.rounds.maximumCohort = 12
            c.rounds.threshold = 7
        }
        defer { Task { await harness.stop() } }
        func status(_ round: CompletedRound) async throws -> [String: Any] {
            let response = try await harness.api("GET", "/v1/rounds/\(round.configuration.roundID)", token: token)
            #expect(response.status == 200)
            let object = try JSONSerialization.jsonObject(with: Data(response.text.utf8))
            return try #require(object as? [String: Any])
        }

        let (smallParticipations, small) = try await RoundOverNetworkTests.runRound(
            harness, devices: 12, dropouts: [0: .advertiseKeys, 1: .shareKeys, 2: .maskedInputCollection])
        guard case let .finished(smallResult) = small.outcome else { Issue.record("round did not finish: \(small.outcome)"); return }
        #expect(smallResult.survivors.count == 9)
        _ = smallParticipations
        let withheld = try await status(small)
        #expect(withheld["result"] == nil)
        #expect((withheld["withheld"] as? String)?.contains("fewer than rounds.minimumReleaseCohort (10)") == true)

        let (participations, full) = try await RoundOverNetworkTests.runRound(harness, devices: 12)
        guard case let .finished(result) = full.outcome else { Issue.record("round did not finish: \(full.outcome)"); return }
        let served = try await status(full)
        let sum = try #require(served["result"] as? [String: Any])
        #expect(sum["dimension"] as? Int == 16 && sum["bitWidth"] as? Int == 32)
        let expected = try NetworkHarness.expectedSum(survivors: result.survivors, participations: participations, configuration: full.configuration)
        #expect((sum["sum"] as? [NSNumber])?.map(\.uint64Value) == expected)
    }
}
