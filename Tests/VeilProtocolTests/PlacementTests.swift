import Testing
import VeilCrypto
@testable import VeilProtocol

/// Issue 12, finding 3: in the active model the ring order comes from a secret the server
/// committed to before it saw any key, mixed with every device's contribution, and a device
/// refuses a placement that does not follow from them.
@Suite struct PlacementTests {
    @Test(arguments: [3, 4, 5, 8, 30, 100, 1000])
    func everyLeafIsProvedAndNothingElseIs(cohort n: Int) {
        var random = SeededRandomSource(seed: UInt64(n), label: "merkle")
        var contributions: [UInt32: [UInt8]] = [:]
        for d in 0..<UInt32(n) where random.nextUInt64(below: 10) != 0 { contributions[d] = random.bytes(count: 32) }
        let tree = Placement.Tree(cohortSize: n, contributions: contributions)
        for d in 0..<UInt32(n) {
            guard let r = contributions[d] else { continue }
            let leaf = Placement.leaf(device: d, contribution: r)
            let path = tree.path(for: d)
            #expect(Placement.verify(leaf: leaf, device: d, path: path, root: tree.root, cohortSize: n))
            // Another index, another contribution, a flipped path entry or a short path: refused.
            #expect(!Placement.verify(leaf: leaf, device: (d + 1) % UInt32(n), path: path, root: tree.root, cohortSize: n) || n == 1)
            var other = r
            other[0] ^= 1
            #expect(!Placement.verify(leaf: Placement.leaf(device: d, contribution: other), device: d, path: path, root: tree.root, cohortSize: n))
            if !path.isEmpty {
                var bent = path
                bent[bent.count - 1][5] ^= 0x10
                #expect(!Placement.verify(leaf: leaf, device: d, path: bent, root: tree.root, cohortSize: n))
                #expect(!Placement.verify(leaf: leaf, device: d, path: Array(path.dropLast()), root: tree.root, cohortSize: n))
            }
        }
    }

    /// A round in which the server's reveal is tampered with (wrong secret, a root without the
    /// device's contribution, a missing reveal): the device refuses before dealing anything.
    @Test func aDeviceRefusesAPlacementThatDoesNotFollowFromTheCommitment() throws {
        let tampers: [(String, (PlacementReveal?) -> PlacementReveal?)] = [
            ("missing reveal", { _ in nil }),
            ("another secret", { r in PlacementReveal(secret: [UInt8](repeating: 9, count: 32), root: r!.root, path: r!.path) }),
            ("another root", { r in PlacementReveal(secret: r!.secret, root: [UInt8](repeating: 7, count: 32), path: r!.path) }),
            ("a short path", { r in PlacementReveal(secret: r!.secret, root: r!.root, path: Array(r!.path.dropFirst())) }),
        ]
        for (name, tamper) in tampers {
            var harness = try RoundHarness(cohortSize: 30, graph: .harary(degree: 8), threshold: 5, threatModel: .active, seed: 41)
            var dealt = false
            harness.tamperDown = { device, message in
                guard device == 3, case let .neighbourKeys(entries, placement) = message else { return message }
                return .neighbourKeys(entries, placement: tamper(placement))
            }
            harness.tamperUp = { device, message in
                if device == 3, case .shareKeys = message { dealt = true }
                return message
            }
            _ = harness.run()
            let violation = try #require(harness.deviceViolations[3], "\(name)")
            guard case .placementRefused = violation.kind else { Issue.record("\(name): \(violation)"); continue }
            #expect(!violation.isCausedByPeer)
            #expect(!dealt, "\(name): the device dealt its shares before checking the placement")
        }
    }

    /// The ring order is not the server's to choose: the same configuration (same committed
    /// secret and round seed) gives a different order when the devices contribute differently,
    /// and an active Harary round with committed placement finishes with the exact sum.
    @Test func theRingDependsOnTheDevicesContributions() throws {
        var first = try RoundHarness(cohortSize: 40, graph: .harary(degree: 10), threshold: 6, threatModel: .active, seed: 42)
        var second = try RoundHarness(cohortSize: 40, graph: .harary(degree: 10), threshold: 6, threatModel: .active, seed: 42)
        #expect(first.configuration == second.configuration)
        second.random = SeededRandomSource(seed: 43, label: "other-contributions")
        second.dropBefore = [7: .shareKeys, 19: .maskedInputCollection]
        for harness in [first, second] { #expect(harness.configuration.usesCommittedPlacement) }
        let a = first.run(), b = second.run()
        guard case let .finished(ra) = a, case let .finished(rb) = b else { Issue.record("\(a) / \(b)"); return }
        #expect(ra.sum == first.plaintextSum(of: ra.survivors))
        #expect(rb.sum == second.plaintextSum(of: rb.survivors))
        let neighboursA = first.server.graph.neighbours(of: 0), neighboursB = second.server.graph.neighbours(of: 0)
        let seedGraph = NeighbourGraph(configuration: first.configuration).neighbours(of: 0)
        #expect(neighboursA != neighboursB, "the devices' contributions must change the ring")
        #expect(neighboursA != seedGraph && neighboursB != seedGraph, "the server's round seed alone must not decide the ring")
    }

    /// The attack of finding 3 against the old placement: with the ring drawn from the round seed
    /// alone, a server tries seeds offline until its colluders surround a victim. Against
    /// committed placement the same search is useless: the ring it found is not the round's.
    @Test func aServerCannotSearchForATargetedPlacement() throws {
        let n = 30, k = 6, t = 4
        let colluders = Set<UInt32>(1...10)
        var random = SeededRandomSource(seed: 44, label: "grind")
        let round = RoundID(using: &random)
        func surrounds(_ graph: NeighbourGraph) -> Bool { graph.neighbours(of: 0).filter(colluders.contains).count >= t }
        // The old mechanism: find a round seed whose ring gives the victim t colluding neighbours.
        var chosen: RoundConfiguration?
        for _ in 0..<10_000 {
            let candidate = try RoundConfiguration(
                roundID: round, roundSeed: random.bytes(count: 32), cohortSize: n, dimension: 4, bitWidth: 16, prg: .aes128CTR,
                graph: .harary(degree: k), threshold: t, threatModel: .active, placementCommitment: Placement.commitment(to: random.bytes(count: 32)))
            if surrounds(NeighbourGraph(configuration: candidate)) { chosen = candidate; break }
        }
        let configuration = try #require(chosen, "a targeted seed is easy to find by search")
        // With committed placement the round's ring comes from the reveal: over many possible
        // contribution sets it surrounds the victim only at the base rate, not always.
        let secret = random.bytes(count: 32)
        let transcript = ProtocolEncoding.roundTranscript(configuration)
        var surrounded = 0
        let trials = 400
        for _ in 0..<trials {
            var contributions: [UInt32: [UInt8]] = [:]
            for d in 0..<UInt32(n) { contributions[d] = random.bytes(count: 32) }
            let tree = Placement.Tree(cohortSize: n, contributions: contributions)
            let graph = NeighbourGraph(configuration: configuration, placementSeed: Placement.seed(transcript: transcript, secret: secret, root: tree.root))
            if surrounds(graph) { surrounded += 1 }
        }
        // Base rate: P[at least 4 of 6 neighbours among 10 of 29 others] ≈ 0.086.
        #expect(surrounded < trials / 4, "\(surrounded) of \(trials) placements surrounded the victim")
    }

    /// The grinding the server can still do is charged: a sparse active graph is planned for
    /// 2^-(σ + g), so it needs a larger degree or threshold than without grinding.
    @Test func grindingIsChargedToSparseActiveGraphsOnly() throws {
        let plain = CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.05, corruptFraction: 0.05, threatModel: .active)
        var ground = plain
        ground.placementGrindingBits = 40
        let a = try ParameterFinder.find(for: plain), b = try ParameterFinder.find(for: ground)
        #expect(b.degree > a.degree || b.threshold > a.threshold)
        #expect(throws: ConfigurationError.self) { try ParameterFinder.validate(degree: a.degree, threshold: a.threshold, for: ground) }
        // Honest-but-curious and the complete graph are not charged.
        var curious = ground
        curious.threatModel = .honestButCurious
        var curiousPlain = plain
        curiousPlain.threatModel = .honestButCurious
        #expect(try ParameterFinder.find(for: curious) == (try ParameterFinder.find(for: curiousPlain)))
        let small = CohortAssumptions(cohortSize: 50, dropoutFraction: 0.01, threatModel: .active, placementGrindingBits: 40)
        let complete = try ParameterFinder.find(degree: 49, for: small)
        #expect(complete.graph == .complete)
    }
}
