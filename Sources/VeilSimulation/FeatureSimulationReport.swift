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

    /// Creates a window report.
    public init(windowStart: Int, activeDevices: Int, contributors: Int, released: Bool, rounds: [FeatureRoundSummary],
                features: [FeatureCheck], countedUnaware: Int?, alreadyCounted: Int?, problems: [String]) {
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
    /// Each window.
    public let windows: [FeatureWindowReport]

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
        correct = !windows.isEmpty && windows.allSatisfy(\.correct)
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
                String(w.activeDevices).leftPad(7), String(w.contributors).leftPad(8), (w.released ? "yes" : "no").leftPad(9),
                "  " + rounds.padding(toLength: 30, withPad: " ", startingAt: 0), "\(passed)/\(w.features.count)".leftPad(7),
                (w.correct ? "yes" : "NO").leftPad(8),
            ].joined(separator: " "))
            for problem in w.problems { lines.append("    problem: \(problem)") }
            for check in w.features where !check.ok { lines.append("    \(check.feature) MISMATCH: \(check.detail)") }
        }
        if let last = windows.last {
            lines.append("last window, decoded vs plaintext:")
            for check in last.features { lines.append("  \(check.feature.padding(toLength: 20, withPad: " ", startingAt: 0)) \(check.ok ? "ok" : "MISMATCH")  \(check.detail)") }
        }
        lines.append(String(format: "total %.2f s, peak RSS %d MiB%@", totalSeconds, peakRSSBytes >> 20,
                            connections.map { ", \($0) connections, \(apiReads ?? 0) API reads checked" } ?? ""))
        lines.append(correct ? "CORRECT: every window's features equal the plaintext computation over the counted devices"
                             : "INCORRECT: see the problems above")
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
