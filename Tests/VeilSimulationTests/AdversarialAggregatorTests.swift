import Foundation
import Testing
import VeilCrypto
import VeilProtocol
@testable import VeilSimulation

/// 60 devices of which 3 collude, a sparse active graph the finder chooses (k 24, t 14, so
/// 2t − k = 4 > 3 colluders), a little dropout: every strategy runs in seconds in a debug build.
func adversaryScenario(_ strategy: String = "all", edit: (inout [String: Any]) -> Void = { _ in }) throws(ScenarioError) -> Scenario {
    try Scenario.decode(scenarioJSON { o in
        o["devices"] = 60
        o["threatModel"] = "active"
        o["graph"] = ["kind": "auto", "corruptFraction": 0.05]
        o["dropout"] = ["shareKeys": 0.01, "maskedInputCollection": 0.01, "unmasking": 0.01]
        o["adversary"] = strategy
        edit(&o)
    })
}

/// Issue 12, item 8: each strategy of a malicious aggregator is refused by honest devices that
/// enforce their operator's policy, and the exposure oracle recovers no honest input.
@Suite struct AdversarialAggregatorTests {
    /// Runs one strategy on the test scenario with a small placement budget.
    static func run(_ strategy: AdversaryStrategy) throws -> AdversaryStrategyReport {
        let aggregator = AdversarialAggregator(scenario: try adversaryScenario(strategy.rawValue), workers: 2, placementCandidates: 256)
        return try #require(aggregator.run().strategies.first)
    }

    @Test(arguments: AdversaryStrategy.allCases)
    func everyStrategyIsRefusedAndRecoversNothing(strategy: AdversaryStrategy) throws {
        let report = try Self.run(strategy)
        #expect(report.strategy == strategy.rawValue)
        #expect(report.refusedByDevices, "\(strategy): no honest device refused")
        #expect(!report.inputRecovered, "\(strategy): \(report.verdict)")
        #expect(report.defended, "\(strategy): \(report.verdict)")
        for round in report.subRounds {
            #expect(round.recovered.isEmpty)
            for victim in round.victims { #expect(victim.verdict == "not recovered") }
        }
        #expect(report.subRounds.contains { $0.devicesChecked > 0 } || strategy == .downgrade, "the oracle must have had inputs to try")
    }

    @Test func downgradedRoundsAreRefusedByTheRuleTheyBreak() throws {
        let report = try Self.run(.downgrade)
        let kinds = report.subRounds.map { Set($0.refusals.keys) }
        #expect(kinds == [
            ["policy(threatModel)"], ["policy(thresholdTooLow)"], ["policy(thresholdNotAboveHalfDegree)"], ["policy(cohortTooSmall)"],
            ["policy(missesSecurityTarget)"],
        ])
        for round in report.subRounds {
            #expect(round.targeted > 0 && round.targetedRefused == round.targeted)
            #expect(round.devicesChecked == 0, "no honest device may send a masked input in a downgraded round")
        }
    }

    @Test func aReusedRoundIDIsRefusedByTheLedgerAndReplayedSignaturesByTheStatement() throws {
        let report = try Self.run(.roundIDReuse)
        #expect(report.subRounds.count == 3)
        #expect(report.subRounds[1].refusals.keys.sorted() == ["policy(roundReused)"])
        #expect(report.subRounds[2].refusals["invalidSignature"] == report.subRounds[2].targeted)
        #expect(report.subRounds[2].notes.contains { $0.hasPrefix("0 of them verify") })
    }

    @Test func splitViewsAreRefusedOrLeaveTheAggregatorShort() throws {
        let report = try Self.run(.splitView)
        let claimed = report.subRounds[1]
        #expect(claimed.refusals["inconsistentSurvivorSet"] == claimed.targeted)
        #expect(report.subRounds[0].targetedRefused > 0)
    }

    @Test func bothSharesAreNeverRevealed() throws {
        let round = try Self.run(.bothShares).subRounds[0]
        #expect(round.refusals["requestedBothShares"] == round.targeted)
    }

    @Test func aSmallOrderKeyIsRemovedByTheServerAndBlamedOnItsDevice() throws {
        let report = try Self.run(.lowOrderKeyDevice)
        #expect(report.subRounds[0].removedByServer == ["unusableKey": 1])
        #expect(report.subRounds[0].outcome.hasSuffix("sum correct"))
        #expect(report.subRounds[0].targeted == 0 && report.subRounds[0].refusals.isEmpty)
        #expect(report.subRounds[1].refusals["unusableKey"] == report.subRounds[1].targeted)
    }

    @Test func targetedPlacementIsBoundedByTheCommitment() throws {
        let report = try Self.run(.targetedPlacement)
        let placement = try #require(report.placement)
        #expect(placement.secretCandidates == 256 && placement.dropCandidates == 256)
        #expect(placement.predictionMatched, "the aggregator's offline tree must be the protocol's")
        #expect(placement.dropBest < placement.neededForExposure)
        #expect(placement.dropBest >= placement.ungroundBest, "candidate 0 is the placement without grinding")
        #expect(report.subRounds[0].refusals.keys.sorted() == ["placementRefused"])
        #expect(report.subRounds[0].targetedRefused == report.subRounds[0].targeted)
    }

    @Test func theOfflineMerkleTreeMatchesThePlacementTree() throws {
        let scenario = try adversaryScenario()
        var run = try AdversaryRun(AdversarialAggregator(scenario: scenario, workers: 1))
        let (configuration, _) = try run.makeConfiguration()
        var random = SeededRandomSource(seed: 9, label: "merkle")
        var contributions: [UInt32: [UInt8]] = [:]
        for d in 0..<UInt32(scenario.devices) where d % 7 != 3 { contributions[d] = random.bytes(count: Placement.byteCount) }
        let candidates = PlacementCandidates(configuration: configuration, contributions: contributions, colluders: [1, 2])
        for dropped in [[], [0], [5, 17], [59, 4, 33]] as [[UInt32]] {
            let kept = contributions.filter { !dropped.contains($0.key) }
            #expect(candidates.root(dropping: dropped) == Placement.Tree(cohortSize: scenario.devices, contributions: kept).root)
        }
        #expect(abs(PlacementCandidates.log2Tail(atLeast: 0, population: 59, successes: 3, draws: 24)) < 1e-9)
        #expect(PlacementCandidates.log2Tail(atLeast: 4, population: 59, successes: 3, draws: 24) == -.infinity)
    }

    @Test func theReportHasEveryFormat() throws {
        let aggregator = AdversarialAggregator(scenario: try adversaryScenario("both-shares"), workers: 2)
        let report = try aggregator.run()
        #expect(report.defended && report.colluders == 3 && report.strategies.count == 1)
        let json = try JSONSerialization.jsonObject(with: report.json()) as! [String: Any]
        for key in ["defended", "devices", "colluders", "policy", "strategies", "totalSeconds"] { #expect(json[key] != nil, "missing \(key)") }
        let strategy = (json["strategies"] as! [[String: Any]])[0]
        for key in ["refusedByDevices", "inputRecovered", "defended", "verdict", "subRounds"] { #expect(strategy[key] != nil, "missing \(key)") }
        let table = report.table()
        #expect(table.contains("both-shares") && table.contains("not recovered") && table.contains("DEFENDED"))
        let html = HTMLReport.page(report)
        #expect(html.contains("<svg") && html.contains("both-shares") && html.contains("not recovered"))
    }
}

@Suite struct AdversaryScenarioTests {
    @Test func theShippedScenarioLoadsAndNamesEveryStrategy() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Simulations/malicious-aggregator.json").standardized.path
        guard case let .round(scenario) = try AnyScenario.load(path: path) else { Issue.record("not a round scenario"); return }
        #expect(scenario.adversary == "all")
        #expect(scenario.adversary.flatMap(AdversaryStrategy.parse) == AdversaryStrategy.allCases)
        #expect(scenario.threatModel == .active && (scenario.graph.corruptFraction ?? 0) > 0)
        let parameters = try SimulationEngine(scenario: scenario).graphParameters()
        guard case .harary = parameters.graph else { Issue.record("targeted-placement needs a sparse graph, got \(parameters.graph)"); return }
        #expect(AdversarialAggregator(scenario: scenario).devicePolicy.requiredThreatModel == .active)
    }

    @Test func badAdversaryFieldsAreNamed() throws {
        for (edit, field) in [
            ({ (o: inout [String: Any]) in o["adversary"] = "bribery" }, "adversary"),
            ({ (o: inout [String: Any]) in o["threatModel"] = "honest-but-curious" }, "threatModel"),
            ({ (o: inout [String: Any]) in o["devices"] = 9; o["graph"] = ["kind": "complete"] }, "devices"),
            ({ (o: inout [String: Any]) in o["misbehaving"] = [["kind": "wrong-share", "count": 1]] }, "misbehaving"),
        ] as [((inout [String: Any]) -> Void, String)] {
            #expect(throws: ScenarioError.self) { try adversaryScenario(edit: edit) }
            do { _ = try adversaryScenario(edit: edit) } catch { #expect(error.field == field, "\(error)") }
        }
        var overrides = ScenarioOverrides()
        overrides.adversary = "split-view"
        #expect(try adversaryScenario().applying(overrides).adversary == "split-view")
        #expect(AdversaryStrategy.parse("all") == AdversaryStrategy.allCases && AdversaryStrategy.parse("none") == nil)
    }
}
