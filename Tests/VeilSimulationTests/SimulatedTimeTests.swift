import Foundation
import Testing
import VeilProtocol
@testable import VeilSimulation

/// Issue 16, item 1: rounds in simulated time over modelled networks, with deadlines.
@Suite struct SimulatedTimeTests {
    @Test func aLognormalPassesThroughItsMedianAndPercentile() {
        var random = SystemRandomNumberGenerator()
        for distribution in [Distribution.lognormal(median: 80, p99: 900), .lognormal(median: 5000, p1: 300)] {
            let draws = (0..<40_000).map { _ in distribution.sample(Double.random(in: 0..<1, using: &random), Double.random(in: 0..<1, using: &random)) }.sorted()
            let median = draws[draws.count / 2]
            #expect(abs(median / distribution.median! - 1) < 0.05, "median \(median)")
            if let p99 = distribution.p99 { #expect(abs(draws[draws.count * 99 / 100] / p99 - 1) < 0.1) }
            if let p1 = distribution.p1 { #expect(abs(draws[draws.count / 100] / p1 - 1) < 0.1) }
        }
    }

    @Test func networksAreAProfileNameOrAnObjectOverridingOne() throws {
        let named = try Scenario.decode(scenarioJSON { $0["network"] = "4g" })
        #expect(named.network == NetworkSpec.profiles["4g"])
        let edited = try Scenario.decode(scenarioJSON {
            $0["network"] = ["profile": "lan", "latencyMs": ["kind": "constant", "value": 100]]
            $0["deadlines"] = ["default": 10, "unmasking": 20]
        })
        #expect(edited.network?.latencyMs == .constant(100) && edited.network?.uplinkKbps == NetworkSpec.profiles["lan"]!.uplinkKbps)
        #expect(edited.deadlines?.seconds(for: .unmasking) == 20 && edited.deadlines?.seconds(for: .shareKeys) == 10)
        for profile in ["lan", "broadband", "4g", "constrained-iot"] { #expect(NetworkSpec.profiles[profile]?.problem() == nil) }
    }

    /// A scenario of 20 devices, a fifth of them stragglers whose latency alone passes the deadline.
    static func stragglerScenario(deadline: Double) throws -> Scenario {
        try Scenario.decode(scenarioJSON {
            $0["dropout"] = [String: Double]()
            $0["network"] = [
                "latencyMs": ["kind": "constant", "value": 100], "uplinkKbps": ["kind": "constant", "value": 10_000],
                "downlinkKbps": ["kind": "constant", "value": 10_000], "computeFactor": ["kind": "constant", "value": 1],
                "stragglers": ["fraction": 0.2, "factor": 50],
            ]
            $0["deadlines"] = ["default": deadline]
        })
    }

    @Test func answersPastTheDeadlineAreCutAndTheServerWaitsForIt() throws {
        let scenario = try Self.stragglerScenario(deadline: 3)
        let engine = SimulationEngine(scenario: scenario, workers: 2)
        let (report, _) = try engine.runRound()
        let timing = try #require(report.simulated)
        let stragglers = SimulatedClock(network: scenario.network!, deadlines: scenario.deadlines!, devices: 20, seed: scenario.seed).links.count { $0.latencySeconds > 1 }
        try #require(stragglers > 0 && stragglers <= 8, "the seed gives some stragglers: \(stragglers)")
        let first = try #require(timing.phases.first)
        // A straggler's two 5 s latencies pass 3 s: every one is cut in the first phase, nobody else.
        #expect(first.phase == "advertise-keys" && first.cutByDeadline == stragglers && first.inTime == 20 - stragglers)
        #expect(first.waitedForDeadline && first.durationSeconds >= 3 && first.durationSeconds < 3.5)
        #expect(timing.phases.dropFirst().allSatisfy { !$0.waitedForDeadline && $0.cutByDeadline == 0 && $0.durationSeconds < 1 }, "\(timing.phases)")
        #expect(report.correct && report.survivors == 20 - stragglers, "the round goes on without them")
        #expect(abs(timing.roundSeconds - timing.phases.reduce(0) { $0 + $1.durationSeconds }) < 1e-9)
        // One latency each way at least, and no more than that plus compute and transfer.
        #expect(timing.phases.dropFirst().allSatisfy { $0.arrivalP50 >= 0.2 })
    }

    @Test func aDeadlineTheStragglersMeetCutsNobody() throws {
        let (report, _) = try SimulationEngine(scenario: try Self.stragglerScenario(deadline: 30), workers: 2).runRound()
        let timing = try #require(report.simulated)
        #expect(timing.cutByDeadline == 0 && report.survivors == 20 && report.correct)
        // Nobody is silent, so every phase ends at its last answer: about two straggler latencies.
        #expect(timing.phases.allSatisfy { !$0.waitedForDeadline && $0.durationSeconds > 10 && $0.durationSeconds < 12 }, "\(timing.phases)")
    }

    @Test func aSilentDeviceMakesTheServerWaitForTheDeadline() throws {
        let scenario = try Scenario.decode(scenarioJSON {
            $0["dropout"] = ["shareKeys": 0.1]
            $0["network"] = "lan"
            $0["deadlines"] = ["default": 7]
        })
        let (report, _) = try SimulationEngine(scenario: scenario, workers: 2).runRound()
        let timing = try #require(report.simulated)
        let shareKeys = try #require(timing.phases.first { $0.phase == "share-keys" })
        let dropped = try #require(report.phases.first { $0.phase == "share-keys" }).dropped
        try #require(dropped > 0, "the seed drops someone before ShareKeys")
        #expect(shareKeys.waitedForDeadline && shareKeys.durationSeconds >= 7 && shareKeys.cutByDeadline == 0)
        #expect(timing.phases.first { $0.phase == "advertise-keys" }!.durationSeconds < 1, "on a LAN, a phase everyone answers is short")
    }

    /// As in the aggregator, a phase's deadline starts when its last request is built: a phase
    /// that waits for its deadline lasts the building time plus the deadline, and an answer inside
    /// that window is not late.
    @Test func aDeadlineStartsOnceEveryRequestIsBuilt() throws {
        var clock = SimulatedClock(network: NetworkSpec.profiles["lan"]!, deadlines: DeadlineSpec(default: 1), devices: 4, seed: 1)
        var events = SimulatedClock.PhaseEvents()
        events.requestsBuilt = 2
        events.silent = 1
        events.answers = [(arrival: 2.5, serverSeconds: 0.01)]
        events.arrivals = [2.5]
        clock.finish(.shareKeys, events: events, closeSeconds: 0.1)
        let phase = try #require(clock.timing.phases.first)
        #expect(abs(phase.durationSeconds - 3.1) < 1e-9)
        #expect(phase.waitedForDeadline && phase.inTime == 1)
    }
}

