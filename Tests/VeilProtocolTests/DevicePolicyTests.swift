import Testing
import VeilCrypto
@testable import VeilProtocol

/// Issue 12, finding 1: a device refuses, before AdvertiseKeys, every round parameter that breaks
/// its policy, and a downgraded round cannot make it reveal anything.
@Suite struct DevicePolicyTests {
    /// A configuration of `n` devices with the given graph, threshold and model.
    static func configuration(
        n: Int, graph: GraphKind = .complete, t: Int, model: ThreatModel = .active, prg: PRGAlgorithm = .aes128CTR,
        dimension: Int = 8, bitWidth: Int = 32
    ) throws -> RoundConfiguration {
        var random = SeededRandomSource(seed: 11, label: "policy")
        let needsCommitment = RoundConfiguration.requiresPlacementCommitment(threatModel: model, graph: graph)
        return try RoundConfiguration(
            roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: n, dimension: dimension,
            bitWidth: bitWidth, prg: prg, graph: graph, threshold: t, threatModel: model,
            placementCommitment: needsCommitment ? Placement.commitment(to: random.bytes(count: 32)) : nil)
    }

    /// Starts a session for device 0 under `policy` and returns the policy violation it raised,
    /// checking that nothing was sent and the session is aborted.
    static func refusal(_ configuration: RoundConfiguration, _ policy: DevicePolicy) -> PolicyViolation? {
        var random = SeededRandomSource(seed: 12, label: "policy-device")
        let identity = Ed25519.PrivateKey(using: &random)
        var session = try! DeviceSession(
            configuration: configuration, graph: NeighbourGraph(configuration: configuration), device: 0,
            identity: configuration.threatModel == .active ? identity : nil,
            input: ModularVector(zerosOfCount: configuration.dimension, bitWidth: configuration.bitWidth), policy: policy)
        do {
            _ = try session.start(using: &random)
            return nil
        } catch {
            #expect(session.abortReason == error, "a refused session must end aborted")
            #expect(session.awaiting == nil)
            guard case let .policy(violation) = error.kind else {
                Issue.record("expected a policy violation, got \(error)")
                return nil
            }
            #expect(error.phase == .advertiseKeys)
            #expect(!error.isCausedByPeer, "a policy violation is the aggregator's")
            return violation
        }
    }

    /// The five downgrades found in the security read: each was accepted before the policy.
    @Test func everyDowngradeIsRefusedBeforeAdvertiseKeys() throws {
        // The fleet's policy: active model, cohorts of at least 10, 5% dropout, 2^-40.
        let policy = DevicePolicy()
        // The aggregator's honest choice for n = 100 at 5% dropout passes.
        let honest = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 100, dropoutFraction: 0.05, threatModel: .active, placementGrindingBits: 40))
        #expect(Self.refusal(try Self.configuration(n: 100, graph: honest.graph, t: honest.threshold), policy) == nil)

        // 1. Honest-but-curious instead of active: no signatures, no signed survivor set.
        #expect(Self.refusal(try Self.configuration(n: 100, graph: honest.graph, t: honest.threshold, model: .honestButCurious), policy)
            == .threatModel(required: .active, offered: .honestButCurious))
        // 2. t = 1: every share is the secret.
        #expect(Self.refusal(try Self.configuration(n: 100, graph: honest.graph, t: 1), policy) == .thresholdTooLow(threshold: 1))
        // 3. 2t <= k: two disjoint groups of neighbours each rebuild a secret.
        #expect(Self.refusal(try Self.configuration(n: 100, graph: honest.graph, t: honest.degree / 2), policy)
            == .thresholdNotAboveHalfDegree(threshold: honest.degree / 2, degree: honest.degree))
        // 4. n = 3: a sum over three devices.
        #expect(Self.refusal(try Self.configuration(n: 3, t: 2), policy) == .cohortTooSmall(minimum: 10, offered: 3))
        // 5. (k, t) that miss the target for the announced n: a sparse graph too thin for 5% dropout.
        guard case .missesSecurityTarget? = Self.refusal(try Self.configuration(n: 100, graph: .harary(degree: 6), t: 4), policy) else {
            Issue.record("a degree-6 graph at 5% dropout must miss the 2^-40 target")
            return
        }
    }

    @Test func cipherDimensionAndBitWidthAreBounded() throws {
        let policy = DevicePolicy(
            requiredThreatModel: .honestButCurious, minimumCohort: 3, assumedDropout: 0, acceptedPRGs: [.aes128CTR],
            maximumDimension: 100, maximumBitWidth: 32)
        #expect(Self.refusal(try Self.configuration(n: 5, t: 3, prg: .chacha20), policy) == .prgNotAccepted(.chacha20))
        #expect(Self.refusal(try Self.configuration(n: 5, t: 3, dimension: 101), policy) == .dimensionTooLarge(maximum: 100, offered: 101))
        #expect(Self.refusal(try Self.configuration(n: 5, t: 3, bitWidth: 48), policy) == .bitWidthTooLarge(maximum: 32, offered: 48))
        #expect(Self.refusal(try Self.configuration(n: 5, t: 3, model: .honestButCurious), policy) == nil)
        #expect(Self.refusal(try Self.configuration(n: 5, t: 3, model: .active), policy) == nil, "an honest-but-curious policy accepts active rounds")
    }

    /// The device's assumptions rule: an aggregator that planned for less corruption than the
    /// fleet assumes is refused even though its parameters were "valid" for its own assumptions.
    @Test func theDevicesAssumptionsRuleNotTheAggregators() throws {
        let aggregatorPlan = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.05, threatModel: .active, placementGrindingBits: 40))
        let configuration = try Self.configuration(n: 1000, graph: aggregatorPlan.graph, t: aggregatorPlan.threshold)
        #expect(Self.refusal(configuration, DevicePolicy()) == nil)
        let wary = DevicePolicy(assumedCorruptFraction: 0.05)
        guard case .missesSecurityTarget? = Self.refusal(configuration, wary) else {
            Issue.record("k = \(aggregatorPlan.degree), t = \(aggregatorPlan.threshold) must miss the target with 5% corrupt devices")
            return
        }
        // What the finder plans for the device's assumptions is accepted.
        let matching = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.05, corruptFraction: 0.05, threatModel: .active, placementGrindingBits: 40))
        #expect(Self.refusal(try Self.configuration(n: 1000, graph: matching.graph, t: matching.threshold), wary) == nil)
    }

    /// A whole round with a downgraded configuration: every device refuses, the server learns
    /// nothing (no key is ever advertised) and the round aborts.
    @Test func aDowngradedRoundGetsNoKeys() throws {
        var harness = try RoundHarness(cohortSize: 12, threshold: 6, threatModel: .honestButCurious, policy: DevicePolicy(minimumCohort: 3, assumedDropout: 0))
        let outcome = harness.run()
        guard case .aborted(.tooFewDevices(.advertiseKeys, 0, _)) = outcome else {
            Issue.record("expected the round to abort with no keys, got \(outcome)")
            return
        }
        #expect(harness.deviceViolations.isEmpty, "devices refused in start(), before any server message")
    }

    @Test func signedRoundsRefuseAReusedRoundID() throws {
        var random = SeededRandomSource(seed: 3, label: "ledger")
        let a = RoundID(using: &random), b = RoundID(using: &random)
        var rounds = SignedRounds()
        try rounds.record(a)
        try rounds.record(b)
        #expect(throws: PolicyViolation.roundReused(a)) { try rounds.record(a) }
        #expect(rounds.count == 2)
    }
}
