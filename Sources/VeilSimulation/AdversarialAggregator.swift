public import Foundation
import VeilCrypto
public import VeilProtocol

/// A malicious aggregator, run in this process against a fleet of honest devices (issue 12,
/// item 8; `Simulations/README.md`, "Malicious aggregator").
///
/// Every honest device is a real `DeviceSession` enforcing the policy its operator would set
/// (``devicePolicy``: the scenario's δ and γ, the active threat model, cohorts of at least 10,
/// 2^-40 with 2^40 placements charged) and keeping a ``VeilProtocol/SignedRounds`` ledger of the
/// round ids it signed in. ⌈γn⌉ devices collude: they follow the protocol but hand the aggregator
/// their secrets and the shares sealed to them, and sign whatever it asks. Each
/// ``AdversaryStrategy`` runs one or more sessions, records everything the devices send, and the
/// ``ExposureOracle`` then tries to recover every honest device's input from that record.
public struct AdversarialAggregator: Sendable {
    /// The scenario: its cohort, vectors, dropout, γ (`graph.corruptFraction`) and graph.
    public let scenario: Scenario
    /// Threads for device work.
    public let workers: Int
    /// How many candidate placements targeted-placement may try, within its commitment and
    /// (separately) by grinding secrets; 2^16 by default.
    public var placementCandidates: Int

    /// An aggregator for `scenario` (which must name an adversary or be given strategies to run).
    public init(scenario: Scenario, workers: Int = ProcessInfo.processInfo.activeProcessorCount, placementCandidates: Int = 1 << 16) {
        self.scenario = scenario
        self.workers = max(1, workers)
        self.placementCandidates = max(1, placementCandidates)
    }

    /// The policy every honest device enforces: the scenario's assumptions, the active threat
    /// model required, and the reference device's minimum cohort.
    public var devicePolicy: DevicePolicy {
        var policy = DevicePolicy.matching(SimulationEngine(scenario: scenario).assumptions)
        policy.requiredThreatModel = .active
        policy.minimumCohort = max(policy.minimumCohort, DevicePolicy().minimumCohort)
        return policy
    }

    /// The colluding devices: ⌈γn⌉ of them, chosen at random from the scenario's seed.
    public var colluders: Set<UInt32> {
        let n = scenario.devices
        let count = Int((Double(n) * (scenario.graph.corruptFraction ?? 0)).rounded(.up))
        var random = SeededRandomSource(seed: scenario.seed, label: "adversary-colluders")
        var order = (0..<UInt32(n)).map { $0 }
        for i in order.indices.reversed() { order.swapAt(i, Int(random.nextUInt64(below: UInt64(i + 1)))) }
        return Set(order.prefix(count))
    }

    /// Runs `strategies` (default: the scenario's `adversary`) one after another and reports
    /// each; `progress` is called before each strategy starts.
    public func run(_ strategies: [AdversaryStrategy]? = nil, progress: ((AdversaryStrategy) -> Void)? = nil) throws(ScenarioError) -> AdversaryReport {
        guard let list = strategies ?? scenario.adversary.flatMap(AdversaryStrategy.parse) else {
            throw ScenarioError(field: "adversary", reason: "no strategy to run; use one of \(AdversaryStrategy.acceptedValues)")
        }
        let start = ContinuousClock.now
        var run = try AdversaryRun(self)
        var reports: [AdversaryStrategyReport] = []
        for strategy in list {
            progress?(strategy)
            let began = ContinuousClock.now
            var report = run.run(strategy)
            report.seconds = (ContinuousClock.now - began).seconds
            reports.append(report)
        }
        return AdversaryReport(
            scenario: scenario, parameters: run.parameters, policy: devicePolicy, colluders: run.colluders.count,
            strategies: reports, totalSeconds: (ContinuousClock.now - start).seconds)
    }
}

/// The fleet and the aggregator's state while it runs strategies.
struct AdversaryRun {
    let scenario: Scenario
    /// What an honest aggregator would choose for the scenario.
    let parameters: GraphParameters
    let policy: DevicePolicy
    /// Colluders go along with any round the protocol allows.
    let colluderPolicy = DevicePolicy(requiredThreatModel: .honestButCurious, minimumCohort: 3, assumedDropout: 0)
    let identities: [Ed25519.PrivateKey]
    let inputs: [ModularVector]
    let colluders: Set<UInt32>
    let workers: Int
    let placementCandidates: Int
    /// Each honest device's ledger of the round ids it signed in.
    var ledgers: [SignedRounds]
    /// The aggregator's own randomness (round ids, seeds, placement secrets).
    var random: SeededRandomSource
    var sessions = 0

    init(_ aggregator: AdversarialAggregator) throws(ScenarioError) {
        scenario = aggregator.scenario
        parameters = try SimulationEngine(scenario: scenario).graphParameters()
        policy = aggregator.devicePolicy
        colluders = aggregator.colluders
        workers = aggregator.workers
        placementCandidates = aggregator.placementCandidates
        let n = scenario.devices
        let data = SyntheticData(scenario: scenario)
        let seed = scenario.seed
        identities = (0..<n).map { d in
            var random = SeededRandomSource(seed: seed, label: "adversary-identity-\(d)")
            return Ed25519.PrivateKey(using: &random)
        }
        inputs = (0..<n).map { data.input(for: UInt32($0)) }
        ledgers = Array(repeating: SignedRounds(), count: n)
        random = SeededRandomSource(seed: seed, label: "adversary")
    }

    /// Runs one strategy.
    mutating func run(_ strategy: AdversaryStrategy) -> AdversaryStrategyReport {
        switch strategy {
        case .downgrade: return downgrade()
        case .roundIDReuse: return roundIDReuse()
        case .splitView: return splitView()
        case .targetedPlacement: return targetedPlacement()
        case .lowOrderKeyDevice: return lowOrderKeyDevice()
        case .bothShares: return bothShares()
        }
    }

    /// A fresh configuration; every parameter left out is what an honest aggregator would choose.
    /// Returns it with the placement secret its commitment commits to (committed placement only).
    mutating func makeConfiguration(
        cohort: Int? = nil, graph: GraphKind? = nil, threshold: Int? = nil, model: ThreatModel = .active
    ) throws(ConfigurationError) -> (RoundConfiguration, [UInt8]?) {
        let graph = graph ?? parameters.graph
        let secret = RoundConfiguration.requiresPlacementCommitment(threatModel: model, graph: graph) ? random.bytes(count: Placement.byteCount) : nil
        let configuration = try RoundConfiguration(
            roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: cohort ?? scenario.devices,
            dimension: scenario.dimension, bitWidth: scenario.bitWidth, prg: scenario.prg, graph: graph,
            threshold: threshold ?? parameters.threshold, threatModel: model, placementCommitment: secret.map(Placement.commitment(to:)))
        return (configuration, secret)
    }

    /// A new session of `configuration` with fresh device randomness (so fresh round keys).
    mutating func session(_ configuration: RoundConfiguration, placementSecret: [UInt8]?, silentBefore: [UInt32: Phase]) -> AdversarialSession {
        sessions += 1
        return AdversarialSession(
            configuration: configuration, placementSecret: placementSecret, label: "adversary-session-\(sessions)", seed: scenario.seed,
            inputs: inputs, identities: identities, colluders: colluders, policy: policy, colluderPolicy: colluderPolicy,
            silentBefore: silentBefore, workers: workers)
    }

    /// Which honest devices go silent before which phase, drawn from the scenario's dropout.
    func dropSchedule(_ label: String) -> [UInt32: Phase] {
        var random = SeededRandomSource(seed: scenario.seed, label: "adversary-dropout-\(label)")
        var schedule: [UInt32: Phase] = [:]
        for d in 0..<UInt32(scenario.devices) where !colluders.contains(d) {
            schedule[d] = scenario.dropout.dropPhase(among: Phase.allCases, drawing: { random.nextUnitDouble() })
        }
        return schedule
    }

    /// The honest survivor (after MaskedInputCollection closed) with the most colluding share
    /// holders, and its holders split for a share-kind split: the fewest honest survivors that,
    /// with the colluders, make t (told the victim dropped) and the rest (told it survived).
    /// `preferred` is taken when it is such a survivor.
    func victim(in session: AdversarialSession, preferred: UInt32? = nil) -> (victim: UInt32, colluding: [UInt32], claim: [UInt32], rest: [UInt32])? {
        let holders = session.view.holdersByOwner()
        let survivors = session.server.survivorSet
        let inSurvivors = Set(survivors)
        let candidates = survivors.filter { session.isHonest($0) && holders[$0] != nil }
        guard let victim = preferred.flatMap({ candidates.contains($0) ? $0 : nil }) ?? candidates.max(by: { a, b in
            let ca = holders[a]!.count(where: colluders.contains), cb = holders[b]!.count(where: colluders.contains)
            return ca != cb ? ca < cb : a > b
        }) else { return nil }
        let colluding = holders[victim]!.filter(colluders.contains)
        let honest = holders[victim]!.filter { !colluders.contains($0) && inSurvivors.contains($0) && !session.isSilent($0, before: .consistencyCheck) }
        let claimCount = min(honest.count, max(0, session.configuration.threshold - colluding.count))
        return (victim, colluding, Array(honest.prefix(claimCount)), Array(honest.dropFirst(claimCount)))
    }

    /// The oracle's findings over every honest device that sent a masked input in `views`.
    func findings(_ views: [SessionView]) -> [ExposureFinding] {
        let devices = Set(views.flatMap(\.maskedInputs.keys)).filter { !colluders.contains($0) }.sorted()
        return ExposureOracle.examine(views, devices: devices) { inputs[Int($0)] }
    }

    /// The report of one sub-round: `targeted` are the honest devices the deviation was aimed at,
    /// `victims` the devices whose findings are shown in full.
    func subRound(
        _ name: String, _ session: AdversarialSession, targeted: Set<UInt32>, victims: [UInt32] = [],
        findings: [ExposureFinding]? = nil, notes: [String] = []
    ) -> AdversarySubRound {
        let c = session.configuration
        let graph: String = { if case .complete = c.graph { return "complete k \(c.degree)" } else { return "harary k \(c.degree)" } }()
        let honest = (0..<UInt32(c.cohortSize)).filter(session.isHonest)
        let found = findings ?? self.findings([session.view])
        var refusals: [String: Int] = [:], examples: [String: String] = [:], removed: [String: Int] = [:]
        for (_, v) in session.refusals.sorted(by: { $0.key < $1.key }) {
            refusals[Self.kindName(v.kind), default: 0] += 1
            if examples[Self.kindName(v.kind)] == nil { examples[Self.kindName(v.kind)] = v.kind.description }
        }
        for (_, v) in session.removedByServer { removed[Self.kindName(v.kind), default: 0] += 1 }
        return AdversarySubRound(
            name: name, configuration: "n \(c.cohortSize), \(graph) / t \(c.threshold), \(c.threatModel.rawValue)",
            outcome: outcomeText(session), honestInvited: honest.count, targeted: targeted.count,
            targetedRefused: targeted.count(where: { session.refusals[$0] != nil }), refusals: refusals, refusalExamples: examples,
            removedByServer: removed, victims: victims.compactMap { v in found.first { $0.device == v } },
            devicesChecked: found.count, recovered: found.filter(\.recovered).map(\.device), notes: notes)
    }

    /// Whether the session's round finished with the exact sum of its survivors' inputs.
    func finishedCorrectly(_ session: AdversarialSession) -> Bool {
        guard case let .finished(result)? = session.outcome else { return false }
        var expected = ModularVector(zerosOfCount: scenario.dimension, bitWidth: scenario.bitWidth)
        for d in result.survivors { expected.add(inputs[Int(d)]) }
        return result.sum == expected
    }

    /// How the session ended, with the sum checked against the plaintext when it finished.
    func outcomeText(_ session: AdversarialSession) -> String {
        if session.stoppedByAdversary { return "the aggregator built consistency check and unmasking itself" }
        switch session.outcome {
        case let .finished(result)?:
            return "finished: \(result.survivors.count) survivors, sum \(finishedCorrectly(session) ? "correct" : "WRONG")"
        case let .aborted(reason)?:
            return "aborted: \(reason)"
        case nil:
            return "stopped by the aggregator"
        }
    }

    /// A violation's kind without its parameters; a policy violation with its rule, e.g.
    /// `policy(thresholdTooLow)`.
    static func kindName(_ kind: ProtocolViolation.Kind) -> String {
        if case let .policy(rule) = kind { return "policy(\(Mirror(reflecting: rule).children.first?.label ?? "\(rule)"))" }
        return RoundRun.category(kind)
    }
}
