import ArgumentParser
import Foundation
import VeilProtocol
import VeilSimulation

extension VeilSim {
    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Predict a fleet's round without running it: parameters, bytes, compute, duration and phase deadlines.",
            discussion: """
                Prints the k and t the aggregator would choose, the bytes each device sends and receives, device and \
                server compute at the limit of this machine's measured primitives, and on the network profile the \
                arrival times per phase, a suggested deadline per phase, the devices it would cut and the round's \
                length. --verify then runs the same fleet in simulated time with those deadlines and prints \
                predicted beside measured.
                """)

        @Option(help: "n: devices invited to the round.") var devices: Int
        @Option(help: "m: elements per vector.") var dimension: Int
        @Option(help: "The fraction of devices expected to drop, spread over the phases.") var dropout: Double
        @Option(name: .customLong("bit-width"), help: "b: inputs and the sum are integers modulo 2^b.") var bitWidth = 32
        @Option(name: .customLong("corrupt-fraction"), help: "γ: the fraction of devices assumed to collude with the server.") var corruptFraction = 0.0
        @Option(name: .customLong("threat-model"), help: "honest-but-curious or active.") var threatModel = "honest-but-curious"
        @Option(name: .customLong("protocol"), help: "secagg+ (sparse graph, chosen for the fleet) or secagg (complete graph).") var protocolName = "secagg+"
        @Option(help: "The network profile: lan, broadband, 4g or constrained-iot (Simulations/README.md).") var network = "lan"
        @Option(help: "The seed of the network sample and of --verify's round.") var seed: UInt64 = 1
        @Flag(help: "Run the fleet in simulated time with the suggested deadlines and print predicted beside measured.") var verify = false
        @Option(name: .customLong("report-json"), help: "Write the plan (and the verification's report) as JSON to this path.") var reportJSON: String?
        @Option(name: .customLong("report-html"), help: "Write a self-contained HTML page with the planned timeline, each phase's arrivals against its deadline, compute and bytes (and the verification's timeline) to this path.") var reportHTML: String?

        /// The fleet as a scenario: the flags a scenario file cannot give, then the same overrides
        /// (and checks) `veil-sim run` applies.
        func scenario() throws -> Scenario {
            let maximum = min(255, max(1, Int((Foundation.pow(2, Double(bitWidth)) - 1) / Double(max(1, devices)))))
            let base = Scenario(
                name: "plan", description: "veil-sim plan", devices: devices, dimension: dimension, bitWidth: bitWidth,
                graph: .init(kind: "auto", degree: nil, threshold: nil, corruptFraction: corruptFraction > 0 ? corruptFraction : nil),
                data: [.init(start: 0, end: dimension, kind: "uniform", value: Double(maximum))])
            guard let model = ThreatModel(rawValue: threatModel) else { throw ValidationError("--threat-model must be honest-but-curious or active, got \(threatModel)") }
            let overrides = ScenarioOverrides(dropout: dropout, protocolName: protocolName, threatModel: model, seed: seed, network: network)
            do { return try base.applying(overrides) } catch { throw ValidationError("\(error)") }
        }

        func run() async throws {
            let scenario = try scenario()
            let plan: RoundPlan
            do { plan = try RoundPlan.make(for: scenario) } catch { throw ValidationError("\(error)") }
            print(Self.text(plan))
            var verification: SimulationReport?
            if verify {
                var verified = scenario
                verified.deadlines = plan.deadlines()
                print("\nVerifying: \(devices) real device sessions and a real server in simulated time with these deadlines…")
                let report: SimulationReport
                do { report = try SimulationEngine(scenario: verified).run() } catch { throw ValidationError("\(error)") }
                print(Self.comparison(plan, report))
                verification = report
            }
            if let reportJSON {
                struct Output: Encodable { let plan: RoundPlan; let verification: SimulationReport? }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                try encoder.encode(Output(plan: plan, verification: verification)).write(to: URL(fileURLWithPath: reportJSON))
            }
            if let reportHTML { try Data(HTMLReport.page(plan, verification: verification).utf8).write(to: URL(fileURLWithPath: reportHTML)) }
            if let verification, !verification.correct { throw ExitCode(1) }
        }

        static func text(_ p: RoundPlan) -> String {
            let s = HTMLReport.readableSeconds
            var lines = ["Veil plan: \(p.devices) devices × \(p.dimension) elements of \(p.bitWidth) bits, \(percent(p.dropout)) dropout, \(p.threatModel), \(p.network) network"]
            func row(_ name: String, _ value: String) { lines.append("  \(name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(value)") }
            row("protocol", "\(p.protocol): k = \(p.neighbours) neighbours, t = \(p.threshold) (security 2^-\(Int(p.securityBits)), failure 2^-\(Int(p.correctnessBits)))")
            row("bit width", "with b = \(p.bitWidth) and n = \(p.devices), keep every element below \(Int(p.largestElementValue)) so the sum cannot wrap")
            row("bytes up / down per device", "\(Int(p.bytesUpPerDevice)) / \(Int(p.bytesDownPerDevice))")
            row("device compute (limit)", "\(s(p.deviceSeconds)) on one core of this machine, times the profile's compute factor")
            row("server compute (limit)", s(p.serverSeconds))
            row("round", "\(s(p.roundSeconds)) with the deadlines below")
            row("aggregator setting", "rounds.phaseTimeoutSeconds = \(p.phaseTimeoutSeconds) (one deadline for every phase: the largest)")
            lines.append("")
            lines.append("  phase                     answering  up B/device  down B/device  device   arrivals p50 / p99 / p99.9     deadline  cut     waits  lasts")
            for ph in p.phases {
                lines.append("  " + [
                    ph.phase.padding(toLength: 24, withPad: " ", startingAt: 0), pad("\(Int(ph.answering.rounded()))", 10),
                    pad("\(Int(ph.bytesUp))", 12), pad("\(Int(ph.bytesDown))", 14), pad(s(ph.deviceSeconds), 9),
                    pad("\(s(ph.arrivalP50)) / \(s(ph.arrivalP99)) / \(s(ph.arrivalP999))", 30), pad(s(ph.suggestedDeadlineSeconds), 9),
                    pad(percent(ph.expectedCutFraction), 6), pad(ph.waitsForDeadline ? "yes" : "no", 6), pad(s(ph.durationSeconds), 9),
                ].joined(separator: " "))
            }
            lines.append("  A phase waits for its deadline when a device it asked is expected to stay silent: with dropout, every phase does.")
            return lines.joined(separator: "\n")
        }

        static func comparison(_ p: RoundPlan, _ r: SimulationReport) -> String {
            let s = HTMLReport.readableSeconds
            var lines = ["  figure                         predicted        measured   measured ÷ predicted"]
            func row(_ name: String, _ predicted: Double, _ measured: Double, _ show: (Double) -> String) {
                let ratio = predicted > 0 ? String(format: "%.2f", measured / predicted) : "—"
                lines.append("  " + name.padding(toLength: 28, withPad: " ", startingAt: 0) + pad(show(predicted), 12) + pad(show(measured), 16) + pad(ratio, 23))
            }
            lines.insert("  result: \(r.correct ? "correct" : "NOT correct: \(r.outcome)"), \(r.survivors) of \(r.devices) counted; k = \(r.neighbors), t = \(r.threshold)", at: 0)
            row("bytes up per device", p.bytesUpPerDevice, r.bytesUpPerDevice) { "\(Int($0))" }
            row("bytes down per device", p.bytesDownPerDevice, r.bytesDownPerDevice) { "\(Int($0))" }
            row("device compute (limit)", p.deviceSeconds, r.deviceSecondsMean, s)
            row("server compute (limit)", p.serverSeconds, r.serverSeconds, s)
            if let simulated = r.simulated {
                row("round length", p.roundSeconds, simulated.roundSeconds, s)
                for (planned, run) in zip(p.phases, simulated.phases) where planned.phase == run.phase {
                    row("  \(run.phase)", planned.durationSeconds, run.durationSeconds, s)
                    let askedFraction = Double(run.cutByDeadline) / Double(max(1, run.inTime + run.cutByDeadline))
                    row("    cut by its deadline", planned.expectedCutFraction, askedFraction, percent)
                }
            }
            return lines.joined(separator: "\n")
        }

        static func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        static func percent(_ x: Double) -> String { String(format: x < 0.01 && x > 0 ? "%.2f%%" : "%.1f%%", 100 * x) }
    }
}
