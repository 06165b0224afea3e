public import Foundation
import VeilProtocol
public import VeilSimulation

/// Checks simulated time against real sockets (issue 16, item 5): runs one scenario with a
/// network twice, in-process in simulated time and in network mode with every device's link
/// emulated on loopback, from the same draws, and sets the predicted phases beside the measured.
/// What differs is what the model leaves out: HTTP/2 and TLS, the aggregator's real scheduling,
/// and the devices' compute sharing this machine's cores.
public struct ModelCheck: Sendable {
    /// The scenario; it must have a network and one deadline for every phase.
    public let scenario: Scenario
    /// Devices sharing one HTTP/2 connection in network mode.
    public let devicesPerConnection: Int

    /// Creates a check.
    public init(scenario: Scenario, devicesPerConnection: Int = 50) {
        self.scenario = scenario
        self.devicesPerConnection = devicesPerConnection
    }

    /// Runs both rounds, in-process first; `progress` receives (stage, done, total).
    public func run(progress: (@Sendable (String, Int, Int) -> Void)? = nil) async throws -> ModelCheckReport {
        guard scenario.network != nil else {
            throw ScenarioError(field: "network", reason: "a model check needs a network (a profile name, or --network)")
        }
        let predicted = try SimulationEngine(scenario: scenario).run { progress?("simulated: \($0.phase.rawValue)", $0.done, $0.total) }
        let measured = try await NetworkSimulation(scenario: scenario, devicesPerConnection: devicesPerConnection).run { stage, done, total in
            progress?("loopback: \(stage)", done, total)
        }
        guard let prediction = predicted.simulated, let measurement = measured.simulated else {
            throw ScenarioError(field: "network", reason: "a round ended without phase timings (predicted: \(predicted.outcome); measured: \(measured.outcome))")
        }
        return ModelCheckReport(
            scenario: scenario.name, devices: scenario.devices, predictedCorrect: predicted.correct, measuredCorrect: measured.correct,
            predicted: prediction, measured: measurement)
    }
}

/// Predicted beside measured, phase by phase: what `veil-sim check-model` prints and writes.
public struct ModelCheckReport: Codable, Sendable {
    /// The scenario's name.
    public let scenario: String
    /// Devices invited.
    public let devices: Int
    /// Whether each round's sum matched its plaintext sum.
    public let predictedCorrect: Bool
    /// Whether the loopback round's sum matched.
    public let measuredCorrect: Bool
    /// The round in simulated time.
    public let predicted: SimulatedTiming
    /// The same round on loopback with the same links emulated.
    public let measured: SimulatedTiming

    /// The measured round's length over the predicted, minus one (0.05 is 5 % longer).
    public var roundDifference: Double { predicted.roundSeconds > 0 ? measured.roundSeconds / predicted.roundSeconds - 1 : 0 }

    /// Both rounds were correct.
    public var correct: Bool { predictedCorrect && measuredCorrect }

    /// A text table, one line per phase and one for the round.
    public func table() -> String {
        func fixed(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        func percent(_ measured: Double, _ predicted: Double) -> String {
            predicted > 0 ? (measured >= predicted ? "+" : "") + fixed(100 * (measured / predicted - 1), 1) + " %" : "—"
        }
        var lines = [
            "model check \(scenario): \(devices) devices on the \(predicted.network) network, predicted in simulated time beside measured on loopback",
            "sums: predicted round \(predictedCorrect ? "correct" : "WRONG"), loopback round \(measuredCorrect ? "correct" : "WRONG")",
            "",
            "phase                     predicted s  measured s  difference  p50 pred / meas s  p99 pred / meas s  cut pred / meas",
        ]
        let measuredByName = Dictionary(uniqueKeysWithValues: measured.phases.map { ($0.phase, $0) })
        for p in predicted.phases {
            guard let m = measuredByName[p.phase] else {
                lines.append(p.phase.padding(toLength: 24, withPad: " ", startingAt: 0) + pad(fixed(p.durationSeconds), 13) + "  (did not run on loopback)")
                continue
            }
            lines.append(p.phase.padding(toLength: 24, withPad: " ", startingAt: 0) + [
                pad(fixed(p.durationSeconds), 13), pad(fixed(m.durationSeconds), 11), pad(percent(m.durationSeconds, p.durationSeconds), 11),
                pad("\(fixed(p.arrivalP50)) / \(fixed(m.arrivalP50))", 18), pad("\(fixed(p.arrivalP99)) / \(fixed(m.arrivalP99))", 18),
                pad("\(p.cutByDeadline) / \(m.cutByDeadline)", 16),
            ].joined(separator: " "))
        }
        lines.append("round".padding(toLength: 24, withPad: " ", startingAt: 0) + [
            pad(fixed(predicted.roundSeconds), 13), pad(fixed(measured.roundSeconds), 11), pad(percent(measured.roundSeconds, predicted.roundSeconds), 11),
            pad("", 18), pad("", 18), pad("\(predicted.cutByDeadline) / \(measured.cutByDeadline)", 16),
        ].joined(separator: " "))
        lines.append("")
        lines.append("Arrivals are seconds after a phase opened. Simulated time counts late arrivals; the aggregator no longer hears a device it cut.")
        return lines.joined(separator: "\n")
    }

    /// The report as one pretty-printed JSON object.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
