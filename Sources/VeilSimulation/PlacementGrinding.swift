import Dispatch
import Foundation
import VeilCrypto
import VeilProtocol

/// The candidate placements a malicious aggregator can evaluate offline once it holds the
/// devices' contributions (`SPEC.md` §5.1): the ring for any placement secret, and for any set of
/// advertised devices it chooses to treat as dropped (their leaves become zero, so the Merkle root
/// and the ring change). The tree is updated along the changed leaves' paths only.
struct PlacementCandidates: Sendable {
    let configuration: RoundConfiguration
    let transcript: [UInt8]
    /// The tree over every advertised contribution: leaves first, the root last.
    let levels: [[[UInt8]]]
    /// Colluders that advertised (their neighbours are counted).
    let colluders: [UInt32]
    /// Honest devices that advertised (the victims, and the devices the aggregator may drop).
    let honest: [UInt32]

    init(configuration: RoundConfiguration, contributions: [UInt32: [UInt8]], colluders: Set<UInt32>) {
        self.configuration = configuration
        transcript = ProtocolEncoding.roundTranscript(configuration)
        self.colluders = contributions.keys.filter(colluders.contains).sorted()
        honest = contributions.keys.filter { !colluders.contains($0) }.sorted()
        var width = 1
        while width < configuration.cohortSize { width *= 2 }
        var level = (0..<width).map { i in
            contributions[UInt32(i)].map { Placement.leaf(device: UInt32(i), contribution: $0) } ?? [UInt8](repeating: 0, count: Placement.byteCount)
        }
        var levels = [level]
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { Self.node(level[$0], level[$0 + 1]) }
            levels.append(level)
        }
        self.levels = levels
        precondition(levels.last![0] == Placement.Tree(cohortSize: configuration.cohortSize, contributions: contributions).root,
                     "the aggregator's tree must be the protocol's (SPEC.md §5.1)")
    }

    /// An inner node: H("veil/v1/placement-node", left || right, 32), as in `Placement`.
    static func node(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/placement-node", message: left + right, outputByteCount: Placement.byteCount)
    }

    /// The root when the contributions of `dropped` are left out.
    func root(dropping dropped: [UInt32]) -> [UInt8] {
        var changed: [Int: [UInt8]] = [:]
        for d in dropped { changed[Int(d)] = [UInt8](repeating: 0, count: Placement.byteCount) }
        for level in levels.dropLast() {
            var next: [Int: [UInt8]] = [:]
            for i in changed.keys where next[i / 2] == nil {
                let left = changed[i & ~1] ?? level[i & ~1], right = changed[i | 1] ?? level[i | 1]
                next[i / 2] = Self.node(left, right)
            }
            changed = next
        }
        return changed[0] ?? levels.last![0]
    }

    /// The most colluding neighbours any honest device outside `dropped` has on the ring drawn
    /// from `seed`, and that device (the lowest index on ties).
    func best(seed: [UInt8], excluding dropped: Set<UInt32> = []) -> (count: Int, victim: UInt32) {
        let graph = NeighbourGraph(configuration: configuration, placementSeed: seed)
        var best = (count: -1, victim: UInt32(0))
        for h in honest where !dropped.contains(h) {
            let count = colluders.count(where: { graph.areNeighbours(h, $0) })
            if count > best.count { best = (count, h) }
        }
        return best
    }

    /// Evaluates `count` candidates on `workers` threads and returns the best (most colluding
    /// neighbours for one victim; the lowest index on ties).
    static func grind(
        count: Int, workers: Int, _ candidate: @escaping @Sendable (Int) -> (seed: [UInt8], dropped: [UInt32]), using candidates: PlacementCandidates
    ) -> (index: Int, count: Int, victim: UInt32) {
        let threads = max(1, min(workers, count))
        let slots = Slots<(index: Int, count: Int, victim: UInt32)>(count: threads)
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            var best = (index: -1, count: -1, victim: UInt32(0))
            var i = worker
            while i < count {
                let (seed, dropped) = candidate(i)
                let result = candidates.best(seed: seed, excluding: Set(dropped))
                if result.count > best.count { best = (i, result.count, result.victim) }
                i += threads
            }
            slots.store(best, at: worker)
        }
        return slots.collect().max { a, b in a.count != b.count ? a.count < b.count : a.index > b.index }!
    }

    /// log2 P[X ≥ x] for X hypergeometric: `draws` neighbours from `population` others of which
    /// `successes` collude.
    static func log2Tail(atLeast x: Int, population: Int, successes: Int, draws: Int) -> Double {
        func logChoose(_ a: Int, _ b: Int) -> Double { lgamma(Double(a + 1)) - lgamma(Double(b + 1)) - lgamma(Double(a - b + 1)) }
        let upper = min(successes, draws)
        guard x <= upper else { return -.infinity }
        var total = 0.0
        for i in max(0, x)...upper where draws - i <= population - successes {
            total += exp(logChoose(successes, i) + logChoose(population - successes, draws - i) - logChoose(population, draws))
        }
        return log2(total)
    }
}

extension AdversaryRun {
    /// targeted-placement: places colluders around a victim as far as committed placement lets
    /// it, then splits the victim's neighbours as split-view does.
    mutating func targetedPlacement() -> AdversaryStrategyReport {
        guard case let .harary(k) = parameters.graph, !colluders.isEmpty else {
            let round = AdversarySubRound(
                name: "nothing to place", configuration: "", outcome: colluders.isEmpty ? "no colluding devices (γ = 0)" : "the complete graph has no placement",
                honestInvited: 0, targeted: 0, targetedRefused: 0, refusals: [:], refusalExamples: [:], removedByServer: [:], victims: [],
                devicesChecked: 0, recovered: [], notes: [])
            return AdversaryStrategyReport(strategy: .targetedPlacement, subRounds: [round], expectationMet: true,
                                           verdict: "nothing to place: every device neighbours every colluder, or there is none")
        }
        let n = scenario.devices, t = parameters.threshold, budget = placementCandidates, seed = scenario.seed

        // 1. Secrets ground after the contributions arrived; the best is revealed instead of the committed one.
        guard case let (configuration, secret)? = try? makeConfiguration(), let secret else { return unavailable(.targetedPlacement, "no configuration") }
        var first = started(configuration, secret: secret, schedule: dropSchedule("targeted-placement-secret"))
        let accepted = first.view.advertised.filter { first.removedByServer[$0.key] == nil }
        let firstCandidates = PlacementCandidates(
            configuration: configuration, contributions: accepted.compactMapValues(\.placementContribution), colluders: colluders)
        let root = firstCandidates.root(dropping: [])
        let transcript = firstCandidates.transcript
        let unground = firstCandidates.best(seed: Placement.seed(transcript: transcript, secret: secret, root: root))
        let secretSearch = PlacementCandidates.grind(count: budget, workers: workers, { i in
            var random = SeededRandomSource(seed: seed, label: "adversary-secret-\(i)")
            return (Placement.seed(transcript: transcript, secret: random.bytes(count: Placement.byteCount), root: root), [])
        }, using: firstCandidates)
        var secretRandom = SeededRandomSource(seed: seed, label: "adversary-secret-\(secretSearch.index)")
        let forged = secretRandom.bytes(count: Placement.byteCount)
        let forgedGraph = NeighbourGraph(configuration: configuration, placementSeed: Placement.seed(transcript: transcript, secret: forged, root: root))
        first.runServerPhases(stopBefore: .shareKeys)
        let asked = Set(first.server.recipients.filter { first.isHonest($0) && !first.isSilent($0, before: .shareKeys) })
        first.exchangeOpenPhase(tamper: { d, message in
            guard case let .neighbourKeys(_, reveal?) = message else { return message }
            let entries = forgedGraph.neighbours(of: d).compactMap { accepted[$0] }
            return .neighbourKeys(entries, placement: PlacementReveal(secret: forged, root: reveal.root, path: reveal.path))
        })
        first.runServerPhases()
        var rounds = [subRound("the best of \(budget) secrets ground after the contributions, revealed instead of the committed one", first, targeted: asked,
                               notes: ["it would have given device \(secretSearch.victim) \(secretSearch.count) colluding neighbours"])]

        // 2. Within the commitment: which advertised honest devices to treat as dropped.
        guard case let (second, secondSecret)? = try? makeConfiguration(), let secondSecret else { return unavailable(.targetedPlacement, "no configuration") }
        let schedule = dropSchedule("targeted-placement-drop")
        var s = session(second, placementSecret: secondSecret, silentBefore: schedule)
        var ledgers: [SignedRounds]? = self.ledgers
        let messages = s.collectAdvertisements(ledgers: &ledgers)
        self.ledgers = ledgers!
        var contributions: [UInt32: [UInt8]] = [:]
        for (d, message) in messages { if case let .advertiseKeys(_, _, _, r?) = message { contributions[d] = r } }
        let candidates = PlacementCandidates(configuration: second, contributions: contributions, colluders: colluders)
        let dropBudget = max(0, Int(scenario.dropout.total * Double(n)) - (n - messages.count))
        let honest = candidates.honest, secondTranscript = candidates.transcript
        let dropSet: @Sendable (Int) -> [UInt32] = { i in
            guard i > 0, dropBudget > 0, !honest.isEmpty else { return [] }
            var random = SeededRandomSource(seed: seed, label: "adversary-drop-\(i)")
            var chosen = Set<UInt32>()
            let size = min(honest.count, 1 + Int(random.nextUInt64(below: UInt64(dropBudget))))
            while chosen.count < size { chosen.insert(honest[Int(random.nextUInt64(below: UInt64(honest.count)))]) }
            return chosen.sorted()
        }
        let dropSearch = PlacementCandidates.grind(count: budget, workers: workers, { i in
            let dropped = dropSet(i)
            return (Placement.seed(transcript: secondTranscript, secret: secondSecret, root: candidates.root(dropping: dropped)), dropped)
        }, using: candidates)
        let dropped = dropSet(dropSearch.index)
        s.deliver(messages, withholding: Set(dropped))
        s.runServerPhases(stopBefore: .consistencyCheck)
        let predicted = s.placementRoot == candidates.root(dropping: dropped)
        var notes = ["the best of \(budget) drop sets (up to \(dropBudget) devices) drops \(dropped.count) and gives device \(dropSearch.victim) \(dropSearch.count) colluding neighbours"]
        var plan = UnmaskingPlan()
        var victims: [UInt32] = []
        if s.server.phase == .consistencyCheck, let pick = victim(in: s, preferred: dropSearch.victim) {
            let without = s.server.survivorSet.filter { $0 != pick.victim }
            for a in pick.claim { plan.shownSurvivors[a] = without }
            victims = [pick.victim]
            notes.append("victim \(pick.victim): \(pick.colluding.count) colluding holders; \(pick.claim.count) honest holders shown U3 without it; 2t − k = \(2 * t - k)")
            s.runLatePhases(plan)
        } else {
            notes.append("the round did not reach the consistency check: \(outcomeText(s))")
        }
        rounds.append(subRound("within the commitment: the best drop set, then U3 without the victim shown to some of its neighbours", s,
                               targeted: s.reached(plan), victims: victims, notes: notes))
        let others = Double(n - 1)
        let placement = PlacementGrindingReport(
            colluders: colluders.count, degree: k, threshold: t, neededForExposure: 2 * t - k,
            expectedColludingNeighbours: Double(k) * Double(colluders.count) / others, ungroundBest: unground.count,
            secretCandidates: budget, secretBest: secretSearch.count, dropCandidates: budget, dropBudget: dropBudget, dropBest: dropSearch.count,
            dropBestLog2Probability: PlacementCandidates.log2Tail(atLeast: dropSearch.count, population: n - 1, successes: colluders.count, draws: k),
            dropped: dropped.count, predictionMatched: predicted)
        let held = rounds[0].targetedRefused == rounds[0].targeted && rounds[0].targeted > 0 && dropSearch.count < 2 * t - k && predicted
        return AdversaryStrategyReport(
            strategy: .targetedPlacement, subRounds: rounds, placement: placement, expectationMet: held,
            verdict: held ? "devices refused a placement secret other than the committed one; within the commitment the best of \(budget) placements gave a victim \(dropSearch.count) colluding neighbours, below the 2t − k = \(2 * t - k) an exposure needs"
                          : "the placement search reached what an exposure needs, or a forged secret was accepted")
    }
}
