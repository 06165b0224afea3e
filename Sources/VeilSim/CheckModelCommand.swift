import ArgumentParser
import Foundation
import VeilNetworkSimulation
import VeilSimulation

extension VeilSim {
    struct CheckModel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-model",
            abstract: "Check simulated time against real sockets: the same fleet predicted in-process and measured on loopback.",
            discussion: """
                Runs the scenario twice from the same draws: in-process in simulated time, then in network mode with \
                a real aggregator and every device's latency, bandwidth and compute factor emulated on loopback (devices \
                that drop go silent, as simulated time assumes). Prints each phase's length, arrival percentiles and \
                deadline cuts predicted beside measured. The scenario needs a network and one deadline for every phase; \
                keep the fleet small enough that the devices' compute, which shares this machine's cores on loopback, \
                is small beside their emulated links.
                """)

        @Argument(help: "A round scenario with a network, such as Simulations/model-check.json.") var scenario: String
        @Option(help: "Override the number of devices invited (n).") var devices: Int?
        @Option(help: "Override the dropout: a total fraction in [0, 1), spread evenly over the phases.") var dropout: Double?
        @Option(help: "Override the network profile: lan, broadband, 4g or constrained-iot.") var network: String?
        @Option(help: "Override every phase's deadline, seconds.") var deadline: Double?
        @Option(help: "Override the seed.") var seed: UInt64?
        @Option(name: .customLong("devices-per-connection"), help: "Devices sharing one HTTP/2 connection on loopback.") var devicesPerConnection = 50
        @Option(name: .customLong("report-json"), help: "Write both timings as JSON to this path.") var reportJSON: String?

        func run() async throws {
            let overrides = ScenarioOverrides(devices: devices, dropout: dropout, seed: seed, network: network, deadline: deadline)
            let loaded: Scenario
            do {
                guard case let .round(s) = try AnyScenario.load(path: scenario) else {
                    throw ValidationError("\(scenario): check-model runs round scenarios, not feature scenarios")
                }
                loaded = try s.applying(overrides)
            } catch let error as ScenarioError {
                throw ValidationError("\(scenario): \(error)")
            }
            let bar = ProgressBar()
            let report: ModelCheckReport
            do {
                report = try await ModelCheck(scenario: loaded, devicesPerConnection: devicesPerConnection).run { stage, done, total in
                    bar.update(label: stage, done: done, total: total)
                }
            } catch {
                bar.finish()
                throw ValidationError("\(scenario): \(error)")
            }
            bar.finish()
            print(report.table())
            if let reportJSON { try report.json().write(to: URL(fileURLWithPath: reportJSON)) }
            if !report.correct { throw ExitCode(1) }
        }
    }
}
