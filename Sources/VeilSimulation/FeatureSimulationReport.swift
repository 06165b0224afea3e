public import Foundation
public import VeilFeatures

/// One round of a feature simulation, in short.
public struct FeatureRoundSummary: Codable, Sendable, Equatable {
    /// Which round of its window (0 first).
    public let attempt: Int
    /// The round id (network mode), or the in-process round's scenario name.
    public let round: String
    /// Devices in the cohort.
    public let devices: Int
    /// Devices counted (|U3|), 0 when it aborted.
    public let survivors: Int
    /// "finished", or "aborted: …".
    public let outcome: String
    /// Whether the round's sum equals the plaintext sum of its counted devices' encoded vectors.
    public let sumCorrect: Bool
    /// k: neighbours per device in the round's graph.
    public let neighbors: Int
    /// t: shares needed to rebuild a device's secret.
    public let threshold: Int
    /// Wall seconds of the round.
    public let seconds: Double
    /// Aggregator compute seconds.
    public let serverSeconds: Double
    /// Mean protocol bytes a device sent.
    public let bytesUpPerDevice: Double

    /// Creates a summary.
    public init(attempt: Int, round: String, devices: Int, survivors: Int, outcome: String, sumCorrect: Bool, neighbors: Int,
                threshold: Int, seconds: Double, serverSeconds: Double, bytesUpPerDevice: Double) {
        self.attempt = attempt
        self.round = round
        self.devices = devices
        self.survivors = survivors
        self.outcome = outcome
        self.sumCorrect = sumCorrect
        self.neighbors = neighbors
        self.threshold = threshold
        self.seconds = seconds
        self.serverSeconds = serverSeconds
        self.bytesUpPerDevice = bytesUpPerDevice
    }
}

/// One window of a feature simulation: who contributed, and every feature checked.
public struct FeatureWindowReport: Codable, Sendable, Equatable {
    /// The window's start, seconds since the epoch (UTC).
    public let windowStart: Int
    /// Devices that recorded observations in the window.
    public let activeDevices: Int
    /// Devices whose input is in the window's sum (over all its rounds).
    public let contributors: Int
    /// Whether the values were released (at least the minimum release cohort contributed).
    public let released: Bool
    /// The window's rounds.
    public let rounds: [FeatureRoundSummary]
    /// Each feature, decoded and checked (checked even below the release minimum: the
    /// simulator reads the sum the aggregator stored, which it never serves).
    public let features: [FeatureCheck]
    /// Network mode: devices the aggregator counted that never heard it (their stream broke
    /// after their masked input) and so still hold the window as pending.
    public let countedUnaware: Int?
    /// Network mode: devices told ALREADY_COUNTED when they offered the window again.
    public let alreadyCounted: Int?
    /// Whether every round's sum and every feature matched, the release rule held, and (network
    /// mode) the served window agreed with the stored one and no device counted twice.
    public let correct: Bool
    /// What went wrong, if anything.
    public let problems: [String]
    /// With differential privacy: the window's ε, the budget, and every statistic's error.
    public let privacy: WindowPrivacy?
    /// Network mode: devices in the values the API serves (the window's last release).
    public let releasedContributors: Int?

    /// Creates a window report.
    public init(windowStart: Int, activeDevices: Int, contributors: Int, released: Bool, rounds: [FeatureRoundSummary],
                features: [FeatureCheck], countedUnaware: Int?, alreadyCounted: Int?, problems: [String], privacy: WindowPrivacy? = nil,
                releasedContributors: Int? = nil) {
        self.privacy = privacy
        self.releasedContributors = releasedContributors
        self.windowStart = windowStart
        self.activeDevices = activeDevices
        self.contributors = contributors
        self.released = released
        self.rounds = rounds
        self.features = features
        self.countedUnaware = countedUnaware
        self.alreadyCounted = alreadyCounted
        self.problems = problems
        correct = problems.isEmpty && features.allSatisfy(\.ok) && rounds.allSatisfy { $0.sumCorrect || $0.outcome != "finished" }
    }
}

/// What `veil-sim run` reports for a feature scenario (`--report-json` writes it).
public struct FeatureSimulationReport: Codable, Sendable {
    /// The scenario's name.
    public let scenario: String
    /// "in-process" or "network".
    public let mode: String
    /// Whether every window is correct.
    public let correct: Bool
    /// Devices in the fleet.
    public let devices: Int
    /// The feature set's name.
    public let featureSet: String
    /// The feature set's version.
    public let version: Int
    /// m: the layout's vector length.
    public let dimension: Int
    /// b: the feature set's bit width.
    public let bitWidth: Int
    /// The release minimum.
    public let minimumReleaseCohort: Int
    /// Wall seconds of the whole run.
    public let totalSeconds: Double
    /// Peak resident memory of the process.
    public let peakRSSBytes: Int
    /// Network mode: HTTP/2 connections the devices used.
    public let connections: Int?
    /// Network mode: feature reads served over the HTTP API and checked (windows, latest, export).
    public let apiReads: Int?
    /// Each window (of every ε run, in order).
    public let windows: [FeatureWindowReport]
    /// With differential privacy: per ε run and feature, the error against its stated bound.
    public let accuracy: [AccuracyPoint]?

    /// Creates a report.
    public init(scenario: FeatureScenario, mode: String, layout: FeatureLayout, totalSeconds: Double, connections: Int?,
                apiReads: Int?, windows: [FeatureWindowReport]) {
        self.scenario = scenario.name
        self.mode = mode
        devices = scenario.devices
        featureSet = scenario.featureSet.name
        version = scenario.featureSet.version
        dimension = layout.dimension
        bitWidth = scenario.featureSet.bitWidth
        minimumReleaseCohort = scenario.minimumReleaseCohort
        self.totalSeconds = totalSeconds
        peakRSSBytes = ResourceUsage.peakResidentBytes()
        self.connections = connections
        self.apiReads = apiReads
        self.windows = windows
        let accuracy = AccuracyPoint.points(windows, featureSet: scenario.featureSet)
        self.accuracy = accuracy.isEmpty ? nil : accuracy
        // Each ε run's statistics must be covered by their bounds as often as promised.
        let runs = Dictionary(grouping: windows.compactMap(\.privacy), by: \.targetEpsilon)
        correct = !windows.isEmpty && windows.allSatisfy(\.correct) && runs.values.allSatisfy { FeatureOracle.coverageHolds($0.flatMap(\.statistics)) }
    }

    /// The report as pretty-printed JSON with sorted keys.
    public func json() -> Data { Self.reportJSON(self) }

    /// A human-readable table: one line per window, then the last window's features.
    public func table() -> String {
        var lines = ["feature simulation \(scenario) (\(mode)): \(featureSet) v\(version), \(devices) devices, \(dimension) elements × \(bitWidth) bits",
                     "window start (UTC)      active  counted  released  rounds (counted/cohort)         checks  correct"]
        let formatter = ISO8601DateFormatter()
        for w in windows {
            let rounds = w.rounds.map { "\($0.survivors)/\($0.devices)" }.joined(separator: " + ")
            let passed = w.features.filter(\.ok).count
            lines.append([
                formatter.string(from: Date(timeIntervalSince1970: Double(w.windowStart))).padding(toLength: 22, withPad: " ", startingAt: 0),
                String(w.activeDevices).leftPad(7), String(w.contributors).leftPad(8),
                (w.privacy?.refused == true ? "budget" : w.released ? "yes" : "no").leftPad(9),
                "  " + rounds.padding(toLength: 30, withPad: " ", startingAt: 0), "\(passed)/\(w.features.count)".leftPad(7),
                (w.correct ? "yes" : "NO").leftPad(8),
            ].joined(separator: " "))
            for problem in w.problems { lines.append("    problem: \(problem)") }
            for check in w.features where !check.ok { lines.append("    \(check.feature) MISMATCH: \(check.detail)") }
        }
        if let accuracy {
            lines.append("differential privacy: mean |error| beside the stated 95 % bound, by ε per window")
            for p in accuracy {
                lines.append(String(format: "  ε %-8.3g %@ error %10.4g  bound %10.4g  inside %5.1f %%  windows released %d, refused %d",
                                    p.windowEpsilon, p.feature.padding(toLength: 18, withPad: " ", startingAt: 0), p.meanAbsoluteError, p.meanBound,
                                    p.coverage * 100, p.windowsReleased, p.windowsRefused))
            }
        }
        if let last = windows.last {
            lines.append("last window, decoded vs plaintext:")
            for check in last.features { lines.append("  \(check.feature.padding(toLength: 20, withPad: " ", startingAt: 0)) \(check.ok ? "ok" : "MISMATCH")  \(check.detail)") }
        }
        lines.append(String(format: "total %.2f s, peak RSS %d MiB%@", totalSeconds, peakRSSBytes >> 20,
                            connections.map { ", \($0) connections, \(apiReads ?? 0) API reads checked" } ?? ""))
        if accuracy != nil {
            lines.append(correct ? "CORRECT: every released estimate lies within the bounds it states of the plaintext over the released devices, and windows past the budget were refused"
                                 : "INCORRECT: see the problems above")
        } else {
            lines.append(correct ? "CORRECT: every window's features equal the plaintext computation over the counted devices"
                                 : "INCORRECT: see the problems above")
        }
        return lines.joined(separator: "\n")
    }
}

/// One window's privacy in a feature simulation (SPEC.md §12.4).
public struct WindowPrivacy: Codable, Sendable, Equatable {
    /// The ε per window the run targeted (nil: the set's own settings).
    public let targetEpsilon: Double?
    /// ε of this window's release at the set's δ.
    public let windowEpsilon: Double
    /// ε spent over the run's windows after this one (before it, when refused).
    public let spentEpsilon: Double
    /// The budget, if any.
    public let budgetEpsilon: Double?
    /// Whether the budget refused the window's rounds (the aggregator's ledger, or the devices'
    /// own budgets).
    public let refused: Bool
    /// Network mode: devices that refused the window themselves, their own budget spent.
    public let devicesRefusing: Int
    /// Each released statistic against the plaintext.
    public let statistics: [EstimateCheck]

    /// Creates a window's privacy record.
    public init(
        targetEpsilon: Double?, windowEpsilon: Double, spentEpsilon: Double, budgetEpsilon: Double?, refused: Bool, statistics: [EstimateCheck],
        devicesRefusing: Int = 0
    ) {
        self.devicesRefusing = devicesRefusing
        self.targetEpsilon = targetEpsilon
        self.windowEpsilon = windowEpsilon
        self.spentEpsilon = spentEpsilon
        self.budgetEpsilon = budgetEpsilon
        self.refused = refused
        self.statistics = statistics
    }
}

/// Accuracy of one feature in one ε run: mean absolute error of its statistics over the released
/// windows beside the mean stated 95 % bound (the chart in the HTML report).
public struct AccuracyPoint: Codable, Sendable, Equatable {
    /// The run's target ε per window (nil: the set's own).
    public let targetEpsilon: Double?
    /// ε of one window's release.
    public let windowEpsilon: Double
    /// The feature.
    public let feature: String
    /// Statistics compared.
    public let statistics: Int
    /// Mean |estimate − exact|.
    public let meanAbsoluteError: Double
    /// Mean stated half-width of the 95 % interval.
    public let meanBound: Double
    /// Fraction of statistics inside their bound.
    public let coverage: Double
    /// Windows of the run released and refused by the budget.
    public let windowsReleased: Int
    /// Windows the budget refused.
    public let windowsRefused: Int

    static func points(_ windows: [FeatureWindowReport], featureSet: FeatureSet) -> [AccuracyPoint] {
        var runs: [(Double?, [WindowPrivacy])] = []
        for p in windows.compactMap(\.privacy) {
            if let last = runs.indices.last, runs[last].0 == p.targetEpsilon { runs[last].1.append(p) } else { runs.append((p.targetEpsilon, [p])) }
        }
        return runs.flatMap { target, run in
            featureSet.features.compactMap { feature -> AccuracyPoint? in
                let stats = run.flatMap(\.statistics).filter { $0.feature == feature.name }
                guard !stats.isEmpty else { return nil }
                let n = Double(stats.count)
                return AccuracyPoint(
                    targetEpsilon: target, windowEpsilon: run[0].windowEpsilon, feature: feature.name, statistics: stats.count,
                    meanAbsoluteError: stats.reduce(0) { $0 + abs($1.estimate - $1.exact) } / n,
                    meanBound: stats.reduce(0) { $0 + $1.bound } / n, coverage: Double(stats.filter(\.within).count) / n,
                    windowsReleased: run.filter { !$0.refused && !$0.statistics.isEmpty }.count, windowsRefused: run.filter(\.refused).count)
            }
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
