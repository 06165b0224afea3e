public import Foundation
import VeilProtocol

/// One session (or one branch of a session) a strategy ran, as reported.
public struct AdversarySubRound: Codable, Sendable, Equatable {
    /// What the aggregator did in it.
    public let name: String
    /// "n …, complete k … / t …, active": the configuration the devices were offered.
    public let configuration: String
    /// How the session ended.
    public let outcome: String
    /// Honest devices invited.
    public let honestInvited: Int
    /// Honest devices the deviation was aimed at.
    public let targeted: Int
    /// How many of them refused.
    public let targetedRefused: Int
    /// Every honest device's refusal, by `ProtocolViolation` kind (a `PolicyViolation` as
    /// `policy(rule)`), with counts.
    public let refusals: [String: Int]
    /// One description per refusal kind, for the reader.
    public let refusalExamples: [String: String]
    /// Devices the real server removed, by kind.
    public let removedByServer: [String: Int]
    /// The exposure oracle's findings for the named victims.
    public let victims: [ExposureFinding]
    /// Honest devices whose masked input the aggregator saw, all checked by the oracle.
    public let devicesChecked: Int
    /// Those whose input it recovered.
    public let recovered: [UInt32]
    /// What else the strategy observed.
    public let notes: [String]
}

/// What targeted-placement achieved against a committed placement.
public struct PlacementGrindingReport: Codable, Sendable, Equatable {
    /// Colluding devices in the cohort.
    public let colluders: Int
    /// k and t of the round.
    public let degree: Int
    /// t.
    public let threshold: Int
    /// 2t − k: colluding neighbours a victim needs before a lying aggregator can collect t shares
    /// of both kinds (`SPEC.md` §9).
    public let neededForExposure: Int
    /// The hypergeometric mean of an honest device's colluding neighbours on a uniform ring.
    public let expectedColludingNeighbours: Double
    /// The most colluding neighbours any honest device had on the placement without grinding.
    public let ungroundBest: Int
    /// Placement secrets ground after seeing the contributions (refused when revealed).
    public let secretCandidates: Int
    /// The most colluding neighbours the best ground secret would have given a victim.
    public let secretBest: Int
    /// Drop sets tried within the commitment.
    public let dropCandidates: Int
    /// The most devices it may claim dropped (the scenario's dropout).
    public let dropBudget: Int
    /// The most colluding neighbours the best drop set gave a victim.
    public let dropBest: Int
    /// log2 of P[a given honest device has at least ``dropBest`` colluding neighbours] on a
    /// uniform ring: what 2^g candidates buy.
    public let dropBestLog2Probability: Double
    /// Devices the chosen drop set removed.
    public let dropped: Int
    /// Whether the revealed placement root was the one the aggregator predicted.
    public let predictionMatched: Bool
}

/// One strategy's result.
public struct AdversaryStrategyReport: Codable, Sendable {
    /// The strategy's name (`AdversaryStrategy` raw value).
    public let strategy: String
    /// What the aggregator tried.
    public let summary: String
    /// Whether honest devices refused the deviation (in some sub-round).
    public let refusedByDevices: Bool
    /// Honest refusals of the deviation, over all sub-rounds.
    public let refusals: Int
    /// Whether the oracle recovered any honest input.
    public let inputRecovered: Bool
    /// Whether the defence held as `SPEC.md` says it must (see ``verdict``).
    public let defended: Bool
    /// One sentence: what stopped the attack, or what did not.
    public let verdict: String
    /// Each session.
    public let subRounds: [AdversarySubRound]
    /// targeted-placement only.
    public let placement: PlacementGrindingReport?
    /// Wall seconds the strategy took.
    public internal(set) var seconds: Double

    init(strategy: AdversaryStrategy, subRounds: [AdversarySubRound], placement: PlacementGrindingReport? = nil, expectationMet: Bool, verdict: String) {
        self.strategy = strategy.rawValue
        summary = strategy.summary
        self.subRounds = subRounds
        self.placement = placement
        refusals = subRounds.reduce(0) { $0 + $1.targetedRefused }
        refusedByDevices = refusals > 0
        inputRecovered = subRounds.contains { !$0.recovered.isEmpty }
        defended = expectationMet && !inputRecovered
        self.verdict = inputRecovered ? "INPUT RECOVERED: " + verdict : verdict
        seconds = 0
    }
}

/// What `veil-sim run` reports for a scenario with an adversary (`--report-json` writes it).
public struct AdversaryReport: Codable, Sendable {
    /// The scenario's name.
    public let scenario: String
    /// Always "in-process".
    public let mode: String
    /// n.
    public let devices: Int
    /// m.
    public let dimension: Int
    /// b.
    public let bitWidth: Int
    /// The honest configuration's k.
    public let neighbors: Int
    /// The honest configuration's t.
    public let threshold: Int
    /// Colluding devices (⌈γn⌉).
    public let colluders: Int
    /// The policy every honest device enforces, in words.
    public let policy: String
    /// Each strategy.
    public let strategies: [AdversaryStrategyReport]
    /// Whether every strategy was defended and no input recovered.
    public let defended: Bool
    /// Wall seconds of the whole run.
    public let totalSeconds: Double
    /// Peak resident memory of the process.
    public let peakRSSBytes: Int

    init(scenario: Scenario, parameters: GraphParameters, policy: DevicePolicy, colluders: Int, strategies: [AdversaryStrategyReport], totalSeconds: Double) {
        self.scenario = scenario.name
        mode = "in-process"
        devices = scenario.devices
        dimension = scenario.dimension
        bitWidth = scenario.bitWidth
        neighbors = parameters.degree
        threshold = parameters.threshold
        self.colluders = colluders
        self.policy = "requires \(policy.requiredThreatModel.rawValue), n ≥ \(policy.minimumCohort), "
            + String(format: "δ = %.3g, γ = %.3g, ", policy.assumedDropout, policy.assumedCorruptFraction) + "2^-\(Int(policy.securityBits)) with 2^\(Int(policy.assumedGrindingBits)) placements charged, round-id ledger"
        self.strategies = strategies
        defended = strategies.allSatisfy(\.defended)
        self.totalSeconds = totalSeconds
        peakRSSBytes = ResourceUsage.peakResidentBytes()
    }

    /// The report as pretty-printed JSON with sorted keys.
    public func json() -> Data { Self.reportJSON(self) }

    /// A human-readable table: one line per strategy, then each sub-round.
    public func table() -> String {
        var lines = [
            "malicious aggregator \(scenario) (\(mode)): \(devices) devices × \(dimension) elements of \(bitWidth) bits, k \(neighbors) / t \(threshold), \(colluders) colluding devices",
            "device policy: \(policy)",
            "strategy                refused by devices  input recovered  defended  seconds",
        ]
        for s in strategies {
            lines.append([
                s.strategy.padding(toLength: 22, withPad: " ", startingAt: 0),
                (s.refusedByDevices ? "yes (\(s.refusals))" : "no").leftPad(18), (s.inputRecovered ? "YES" : "no").leftPad(16),
                (s.defended ? "yes" : "NO").leftPad(9), String(format: "%.2f", s.seconds).leftPad(8),
            ].joined(separator: "  "))
        }
        for s in strategies {
            lines.append("")
            lines.append("\(s.strategy): \(s.summary)")
            lines.append("  verdict: \(s.verdict)")
            if let p = s.placement {
                lines.append("  placement: expected \(String(format: "%.2f", p.expectedColludingNeighbours)) colluding neighbours, 2t − k = \(p.neededForExposure) needed; "
                    + "best without grinding \(p.ungroundBest); \(p.secretCandidates) ground secrets best \(p.secretBest) (refused); "
                    + "\(p.dropCandidates) drop sets (≤ \(p.dropBudget) devices) best \(p.dropBest), P = 2^\(String(format: "%.1f", p.dropBestLog2Probability)) per device")
            }
            for r in s.subRounds {
                lines.append("  - \(r.name) [\(r.configuration)]")
                lines.append("    \(r.outcome); targeted \(r.targeted) honest devices, \(r.targetedRefused) refused")
                if !r.refusals.isEmpty {
                    lines.append("    honest refusals: " + r.refusals.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; "))
                }
                for (kind, example) in r.refusalExamples.sorted(by: { $0.key < $1.key }) { lines.append("      \(kind): \(example)") }
                if !r.removedByServer.isEmpty {
                    lines.append("    removed by the server: " + r.removedByServer.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; "))
                }
                for v in r.victims { lines.append("    victim \(v.device): \(v.verdict) (\(v.detail))") }
                lines.append("    exposure oracle: \(r.recovered.count) of \(r.devicesChecked) honest inputs recovered\(r.recovered.isEmpty ? "" : ": \(r.recovered)")")
                for note in r.notes { lines.append("    note: \(note)") }
            }
        }
        lines.append("")
        lines.append(String(format: "total %.2f s, peak RSS %d MiB", totalSeconds, peakRSSBytes >> 20))
        lines.append(defended ? "DEFENDED: every strategy was stopped and no honest input was recovered"
                              : "NOT DEFENDED: see the strategies marked NO above")
        return lines.joined(separator: "\n")
    }
}
