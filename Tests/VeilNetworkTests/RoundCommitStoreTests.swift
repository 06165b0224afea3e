import Foundation
import Testing
import VeilAggregator
import VeilFeatures
import VeilProtocol
import VeilStore

/// The end of a round, its claims and their recovery, on both stores (issue 13: C1, H1, M3).
@Suite struct RoundCommitStoreTests {
    static let fleet = AggregatorStoreTests.fleet
    static let window = 1_800_100_800
    static let t0 = Date(timeIntervalSince1970: 1_800_104_000)

    static func unit() throws -> ModularVector {
        ModularVector(reducing: [Int64](repeating: 1, count: try FeatureLayout(fleet).dimension), bitWidth: 32)
    }

    /// A round start with an hour's lease: these tests are not about leases expiring, and a
    /// loaded machine must not expire one under them.
    static func start(_ roundID: String, cohortSize: Int, instance: String) -> RoundStart {
        RoundStart(roundID: roundID, task: "fleet/v1/\(window)", startedAt: t0, cohortSize: cohortSize, instance: instance, leaseSeconds: 3600)
    }

    static func claim(_ store: any AggregatorStore, _ roundID: String, _ ids: [String], now: Date = t0) async throws -> WindowClaims {
        try await store.claimWindow(fleet, windowStart: window, roundID: roundID, deviceIDs: ids, staleBefore: now.addingTimeInterval(-600), now: now)
    }

    static func finished(_ roundID: String, _ contributors: [String]) throws -> RoundCommit {
        let record = RoundRecord(roundID: roundID, task: "fleet/v1/\(window)", startedAt: t0, endedAt: t0, cohortSize: contributors.count + 2,
                                 survivors: contributors.count, outcome: RoundRecord.finished, reason: "")
        let sum = try unit()
        return RoundCommit(
            round: record,
            result: RoundResultRecord(roundID: roundID, dimension: sum.count, bitWidth: 32, packedSum: sum.packed(), survivorBitmap: [0x0F]),
            window: WindowMerge(featureSet: fleet, windowStart: window, sum: sum, contributorIDs: contributors, minimumReleaseCohort: 10))
    }

    /// C1: the round row, its result, the window merge and the claim release commit together, or
    /// (when the window refuses) not at all.
    @Test(arguments: StoreBackend.allCases)
    func theEndOfARoundIsOneTransaction(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let cohort = devices("dev-", 6)
            try await store.recordRoundStart(Self.start("r1", cohortSize: 6, instance: "a"))
            #expect(try await Self.claim(store, "r1", cohort).claimed == cohort)
            #expect(try await store.round(id: "r1")?.outcome == RoundRecord.running)

            // Another round already counted dev-3: r1's merge is refused and nothing of its end is written.
            try await store.addToWindow(Self.fleet, windowStart: Self.window, roundID: "other", sum: try Self.unit(), contributorIDs: ["dev-x"], now: Self.t0)
            let clash = try Self.finished("r1", ["dev-0", "dev-1", "dev-x"])
            await #expect(throws: FeatureWindowError.alreadyCounted(window: Self.window, devices: ["dev-x"])) { try await store.commitRound(clash, now: Self.t0) }
            #expect(try await store.round(id: "r1")?.outcome == RoundRecord.running, "the round row is unchanged")
            #expect(try await store.result(roundID: "r1") == nil, "no result without the merge")
            #expect(try await store.storedWindows(of: Self.fleet, from: Self.window, to: Self.window + 1).first?.contributors == 1)
            #expect(try await Self.claim(store, "probe", ["dev-0"]).busy == ["dev-0"], "r1's claims are kept")

            // The real end: all four writes at once.
            let commit = try Self.finished("r1", Array(cohort.prefix(4)))
            try await store.commitRound(commit, now: Self.t0)
            #expect(try await store.round(id: "r1") == commit.round)
            #expect(try await store.result(roundID: "r1") == commit.result)
            let stored = try #require(try await store.storedWindows(of: Self.fleet, from: Self.window, to: Self.window + 1).first)
            #expect(stored.contributors == 5 && stored.roundIDs == ["other", "r1"])
            #expect(try await store.countingRound(of: "dev-2", in: Self.fleet, windowStart: Self.window) == "r1")
            let again = try await Self.claim(store, "r2", ["dev-4", "dev-5", "dev-0"])
            #expect(again.claimed == ["dev-4", "dev-5"], "the devices r1 did not count were released in the same transaction")
            #expect(again.alreadyCounted == ["dev-0": "r1"])
        }
    }

    /// H1: claims reserve the window's capacity, so a round never finishes with a sum its window
    /// must refuse. Before, two rounds of 30 could both claim under a maximum of 50 and the second
    /// was refused only after its devices were told COUNTED.
    @Test(arguments: StoreBackend.allCases)
    func claimsReserveTheWindowsCapacity(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let first = try await Self.claim(store, "a", devices("a", 30))
            #expect(first.claimed.count == 30 && first.full.isEmpty)
            let second = try await Self.claim(store, "b", devices("b", 30))
            #expect(second.claimed == Array(devices("b", 30).prefix(20)))
            #expect(second.full == Array(devices("b", 30).suffix(10)))
            try await store.commitRound(try Self.finished("a", devices("a", 30)), now: Self.t0)
            try await store.commitRound(try Self.finished("b", second.claimed), now: Self.t0)
            #expect(try await store.storedWindows(of: Self.fleet, from: Self.window, to: Self.window + 1).first?.contributors == 50)
            #expect(try await Self.claim(store, "c", ["late"]).full == ["late"], "a full window claims nobody")
            // A stale claim frees its capacity: here a round that ended without counting releases it.
            let fresh = try await store.claimWindow(Self.fleet, windowStart: Self.window + 3600, roundID: "d", deviceIDs: devices("d", 50),
                                                    staleBefore: Self.t0.addingTimeInterval(-600), now: Self.t0)
            #expect(fresh.claimed.count == 50)
            let later = Self.t0.addingTimeInterval(3600)
            let takeover = try await store.claimWindow(Self.fleet, windowStart: Self.window + 3600, roundID: "e", deviceIDs: ["e0"],
                                                       staleBefore: later.addingTimeInterval(-600), now: later)
            #expect(takeover.claimed == ["e0"], "claims older than their lifetime hold no capacity")
        }
    }

    /// M3: at start an instance ends the rounds its dead process left running, and only its own.
    @Test(arguments: StoreBackend.allCases)
    func recoveryEndsOnlyThisInstancesRunningRounds(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            for (id, instance) in [("ra", "instance-a"), ("rb", "instance-b")] {
                try await store.recordRoundStart(Self.start(id, cohortSize: 3, instance: instance))
                _ = try await Self.claim(store, id, devices(id, 3))
            }
            try await store.commitRound(try Self.finished("done", ["x0"]), now: Self.t0)
            #expect(try await store.recoverRounds(instance: "instance-a", now: Self.t0) == ["ra"])
            let ra = try #require(try await store.round(id: "ra"))
            #expect(ra.outcome == RoundRecord.aborted && ra.reason == RoundRecord.instanceStoppedReason)
            #expect(try await store.round(id: "rb")?.outcome == RoundRecord.running, "another instance's round is left alone")
            #expect(try await Self.claim(store, "next", devices("ra", 3) + devices("rb", 1)).claimed == devices("ra", 3))
            // A round that never assigned anyone is forgotten whole; an ended one is kept.
            try await store.recordRoundStart(Self.start("never", cohortSize: 3, instance: "instance-a"))
            #expect(try await Self.claim(store, "never", devices("n", 2)).claimed.count == 2)
            try await store.discardRound(roundID: "never")
            #expect(try await store.round(id: "never") == nil)
            #expect(try await Self.claim(store, "after", devices("n", 2)).claimed.count == 2, "its claims are released")
            try await store.discardRound(roundID: "done")
            #expect(try await store.round(id: "done")?.outcome == RoundRecord.finished)
            // The dead round cannot be finished late, and recovery is idempotent.
            await #expect(throws: AggregatorStoreError.self) { try await store.commitRound(try Self.finished("ra", devices("ra", 3)), now: Self.t0) }
            #expect(try await store.recoverRounds(instance: "instance-a", now: Self.t0).isEmpty)
        }
    }

    /// M2: a round's claims are fenced by a lease in the store's own clock. A round whose
    /// instance stopped renewing loses its claims to other rounds, cannot renew, cannot add its
    /// sum, and is ended by any instance.
    @Test(arguments: StoreBackend.allCases)
    func aRoundThatLostItsLeaseLosesItsClaimsAndCannotCommit(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { scratch, store in
            let other = try await scratch.open()
            defer { Task { await other.close() } }
            try await store.recordRoundStart(Self.start("slow", cohortSize: 4, instance: "a"))
            #expect(try await Self.claim(store, "slow", devices("s", 4)).claimed.count == 4)
            #expect(try await store.renewLease(roundID: "slow", instance: "a", leaseSeconds: 3600))
            #expect(try await !store.renewLease(roundID: "slow", instance: "b", leaseSeconds: 3600), "only its instance renews a lease")
            #expect(try await Self.claim(other, "fast", devices("s", 2)).busy.count == 2, "a held lease keeps the claims")
            // The instance stalls: its last renewal (a zero-length lease here, so that the test
            // does not depend on the machine's speed) runs out.
            #expect(try await store.renewLease(roundID: "slow", instance: "a", leaseSeconds: 0))
            try await Task.sleep(for: .milliseconds(50))
            // Expired (no renewal): another instance's round takes the devices over.
            try await other.recordRoundStart(Self.start("fast", cohortSize: 2, instance: "b"))
            #expect(try await Self.claim(other, "fast", devices("s", 2)).claimed == devices("s", 2))
            #expect(try await !store.renewLease(roundID: "slow", instance: "a", leaseSeconds: 3600), "a lost lease is not renewed")
            await #expect(throws: RoundLeaseLost(roundID: "slow")) { try await store.commitRound(try Self.finished("slow", devices("s", 4)), now: Self.t0) }
            try await other.commitRound(try Self.finished("fast", devices("s", 2)), now: Self.t0)
            #expect(try await other.recoverRounds(instance: nil, now: Self.t0) == ["slow"])
            let slow = try #require(try await store.round(id: "slow"))
            #expect(slow.outcome == RoundRecord.aborted && slow.reason == RoundRecord.leaseExpiredReason)
            let stored = try #require(try await store.storedWindows(of: Self.fleet, from: Self.window, to: Self.window + 1).first)
            #expect(stored.contributors == 2 && stored.roundIDs == ["fast"], "only the round holding the devices added its sum")
        }
    }

    /// M6: a device revoked while its round ran keeps the round's sum out of the window; the
    /// refusal changes nothing.
    @Test(arguments: StoreBackend.allCases)
    func aContributorRevokedDuringTheRoundKeepsItsSumOut(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            var ids: [String] = []
            for _ in 0..<3 {
                ids.append(try await store.enrol(token: try await store.createEnrolmentToken(lifetime: 600), identityKey: freshIdentityKey()))
            }
            #expect(try await store.activeDeviceIDs(among: ids + ["never-enrolled"]) == Set(ids))
            try await store.recordRoundStart(Self.start("r", cohortSize: 3, instance: "a"))
            #expect(try await Self.claim(store, "r", ids).claimed == ids)
            #expect(try await store.revoke(deviceID: ids[1]))
            #expect(try await store.activeDeviceIDs(among: ids) == [ids[0], ids[2]])
            await #expect(throws: FeatureWindowError.revokedDuringRound(window: Self.window, devices: [ids[1]])) {
                try await store.commitRound(try Self.finished("r", ids), now: Self.t0)
            }
            #expect(try await store.storedWindows(of: Self.fleet, from: Self.window, to: Self.window + 1).isEmpty)
            #expect(try await store.round(id: "r")?.outcome == RoundRecord.running)
        }
    }
}
