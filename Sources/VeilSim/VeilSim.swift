import ArgumentParser
import Foundation
import VeilProtocol
import VeilFeatures
import VeilNetworkSimulation
import VeilSimulation

@main
struct VeilSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veil-sim",
        abstract: "Simulate secure aggregation rounds with thousands of real protocol sessions.",
        discussion: """
            Every device is a real DeviceSession with its own keys; the server is a real AggregationSession;
            every message crosses the real wire encoding. The result is checked against the plaintext sum.
            With --mode network the server is a real veil-aggregator on loopback (TLS, SQLite) and every
            device a real VeilDevice client with its own stream. A scenario with a featureSet is a feature
            scenario: devices record observations over several windows and every decoded feature is checked.
            A scenario with an adversary (or --adversary) runs a malicious aggregator against honest devices
            and checks that they refuse it and that no honest input can be recovered from what it saw.
            """,
        subcommands: [Run.self, Plan.self, CheckModel.self, Scenarios.self, Soak.self],
        defaultSubcommand: Run.self)
}

extension VeilSim {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one scenario and report time, bytes, memory and correctness.")

        @Argument(help: "A scenario file (see Simulations/README.md): a round scenario such as Simulations/quickstart.json, or a feature scenario such as Simulations/fleet-features.json.")
        var scenario: String

        @Option(help: "Override the number of devices invited (n).")
        var devices: Int?

        @Option(help: "Override the number of elements per vector (m).")
        var dimension: Int?

        @Option(name: .customLong("bit-width"), help: "Override the bit width b: inputs and the sum are integers modulo 2^b.")
        var bitWidth: Int?

        @Option(help: "Override the dropout: a total fraction in [0, 1), spread evenly over the phases.")
        var dropout: Double?

        @Option(name: .customLong("protocol"), help: "secagg (complete graph) or secagg+ (sparse Harary graph, degree and threshold chosen automatically).")
        var protocolName: String?

        @Option(name: .customLong("threat-model"), help: "honest-but-curious, or active (signed keys, consistency check).")
        var threatModel: String?

        @Option(help: "Override the seed of every random choice (runs are reproducible).")
        var seed: UInt64?

        @Option(help: "in-process (sessions driven directly, the fastest) or network (a real veil-aggregator on loopback with TLS and SQLite, every device a real VeilDevice client with its own gRPC stream).")
        var mode: String = "in-process"

        @Option(name: .customLong("devices-per-connection"), help: "Network mode: devices sharing one HTTP/2 connection (each still has its own stream).")
        var devicesPerConnection: Int = 50

        @Option(help: "Network mode: use an aggregator already running on this machine (host:port, e.g. localhost:7443) instead of starting one. Needs --ca and --aggregator-database; its rounds.minimumCohort and maximumCohort must equal the device count.")
        var aggregator: String?

        @Option(help: "With --aggregator: the CA certificate that signed the aggregator's certificate (ca.pem from dev-certificates).")
        var ca: String?

        @Option(name: .customLong("aggregator-database"), help: "With --aggregator: the aggregator's store (its `database` setting: an SQLite path or a postgres:// URL), where the simulator creates enrolment tokens and reads the round's result.")
        var aggregatorDatabase: String?

        @Option(help: "Feature scenarios in network mode: keep the aggregator's store here (an SQLite path, or a postgres:// URL) to serve it afterwards with `veil-aggregator serve --database …`.")
        var database: String?

        @Option(help: "Run a malicious aggregator against honest devices instead of an honest round: downgrade, round-id-reuse, split-view, targeted-placement, low-order-key-device, both-shares, or all (in-process only; the scenario must use the active threat model).")
        var adversary: String?

        @Option(help: "Run the round on this network profile (lan, broadband, 4g, constrained-iot; Simulations/README.md): in simulated time in-process, or emulated on loopback in network mode.")
        var network: String?

        @Option(help: "With a network: every phase's deadline, seconds (default the scenario's, or the aggregator's 30 s).")
        var deadline: Double?

        @Option(name: .customLong("report-json"), help: "Write the full report as one JSON object to this path.")
        var reportJSON: String?

        @Option(name: .customLong("report-html"), help: "Write a self-contained HTML page with SVG charts to this path.")
        var reportHTML: String?

        func validate() throws {
            guard ["in-process", "network"].contains(mode) else { throw ValidationError("--mode must be in-process or network, got \(mode)") }
            guard devicesPerConnection >= 1 else { throw ValidationError("--devices-per-connection must be at least 1") }
            if aggregator != nil || ca != nil || aggregatorDatabase != nil {
                guard mode == "network" else { throw ValidationError("--aggregator needs --mode network") }
                guard aggregator != nil, ca != nil, aggregatorDatabase != nil else {
                    throw ValidationError("--aggregator, --ca and --aggregator-database go together")
                }
            }
        }

        func run() async throws {
            var model: ThreatModel?
            if let threatModel {
                guard let parsed = ThreatModel(rawValue: threatModel) else {
                    throw ValidationError("--threat-model must be honest-but-curious or active, got \(threatModel)")
                }
                model = parsed
            }
            let overrides = ScenarioOverrides(
                devices: devices, dimension: dimension, bitWidth: bitWidth, dropout: dropout, protocolName: protocolName,
                threatModel: model, seed: seed, adversary: adversary, network: network, deadline: deadline)
            let loaded: Scenario
            do {
                switch try AnyScenario.load(path: scenario) {
                case let .round(s):
                    guard database == nil else { throw ValidationError("--database is for feature scenarios; round scenarios use --aggregator-database with --aggregator") }
                    loaded = try s.applying(overrides)
                case let .features(s):
                    guard adversary == nil else { throw ValidationError("--adversary runs round scenarios only") }
                    return try await runFeatures(s.applying(overrides))
                }
            } catch let error as ScenarioError {
                throw ValidationError("\(scenario): \(error)")
            }
            if loaded.adversary != nil { return try runAdversary(loaded) }
            let bar = ProgressBar()
            let report: SimulationReport
            do {
                if mode == "network" {
                    var external: NetworkSimulation.ExternalAggregator?
                    if let aggregator, let ca, let aggregatorDatabase {
                        guard let colon = aggregator.lastIndex(of: ":"), let port = Int(aggregator[aggregator.index(after: colon)...]) else {
                            throw ValidationError("--aggregator must be host:port, got \(aggregator)")
                        }
                        external = .init(host: String(aggregator[..<colon]), port: port, caCertificatePath: ca, database: aggregatorDatabase)
                    }
                    report = try await NetworkSimulation(scenario: loaded, devicesPerConnection: devicesPerConnection, external: external).run { phase, done, total in
                        bar.update(label: phase, done: done, total: total)
                    }
                } else {
                    report = try SimulationEngine(scenario: loaded).run { bar.update($0) }
                }
            } catch {
                bar.finish()
                throw ValidationError("\(scenario): \(error)")
            }
            bar.finish()
            print(HumanReport.table(report))
            if let reportJSON { try report.json().write(to: URL(fileURLWithPath: reportJSON)) }
            if let reportHTML { try Data(HTMLReport.page(report).utf8).write(to: URL(fileURLWithPath: reportHTML)) }
            if !report.correct {
                throw ExitCode(1)
            }
        }

        /// A malicious aggregator against honest devices: every strategy reported, and the exit
        /// status is 1 unless every one was defended.
        func runAdversary(_ loaded: Scenario) throws {
            guard mode == "in-process" else { throw ValidationError("--adversary and scenarios with an adversary run in-process only") }
            let report: AdversaryReport
            do {
                report = try AdversarialAggregator(scenario: loaded).run { strategy in
                    FileHandle.standardError.write(Data("running \(strategy.rawValue)…\n".utf8))
                }
            } catch {
                throw ValidationError("\(scenario): \(error)")
            }
            print(report.table())
            if let reportJSON { try report.json().write(to: URL(fileURLWithPath: reportJSON)) }
            if let reportHTML { try Data(HTMLReport.page(report).utf8).write(to: URL(fileURLWithPath: reportHTML)) }
            if !report.defended { throw ExitCode(1) }
        }

        /// A feature scenario: windows of rounds, every decoded feature checked.
        func runFeatures(_ loaded: FeatureScenario) async throws {
            let bar = ProgressBar()
            let report: FeatureSimulationReport
            do {
                if mode == "network" {
                    guard aggregator == nil else { throw ValidationError("--aggregator runs round scenarios only; feature scenarios start their own aggregator") }
                    report = try await FeatureNetworkSimulation(scenario: loaded, devicesPerConnection: devicesPerConnection, database: database).run { label, done, total in
                        bar.update(label: label, done: done, total: total)
                    }
                } else {
                    guard database == nil else { throw ValidationError("--database needs --mode network (the in-process mode has no aggregator store)") }
                    report = try FeatureSimulation(scenario: loaded).run { window, total in
                        bar.update(label: "window \(window + 1)/\(total)", done: window, total: total)
                    }
                }
            } catch {
                bar.finish()
                throw ValidationError("\(scenario): \(error)")
            }
            bar.finish()
            print(report.table())
            if let reportJSON { try report.json().write(to: URL(fileURLWithPath: reportJSON)) }
            if let reportHTML { try Data(HTMLReport.page(report).utf8).write(to: URL(fileURLWithPath: reportHTML)) }
            if !report.correct { throw ExitCode(1) }
        }
    }

    struct Soak: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a bounded soak: a fleet of real devices over many windows against a real aggregator, restarted once.",
            discussion: "Reports counted vs expected contributors and exact values per window, resident memory after each window, and round-time percentiles. Release builds only give meaningful figures.")

        @Argument(help: "A soak plan, such as Simulations/soak/10k-devices.json.")
        var plan: String

        @Option(name: .customLong("report-json"), help: "Write the report as JSON to this path.")
        var reportJSON: String?

        func run() async throws {
            let soak = try SoakSimulation(path: plan)
            print("soak \(soak.plan.name): \(soak.plan.devices) devices, \(soak.plan.windows) windows; enrolling")
            let report = try await soak.run { window in
                print("window \(window.index): \(window.counted)/\(window.expected) counted, \(window.rounds) rounds, \(String(format: "%.1f", window.seconds)) s, RSS \(window.residentBytes / 1_048_576) MiB\(window.restarted ? " (aggregator restarted)" : "")")
            }
            print(report.text)
            if let reportJSON {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: reportJSON))
            }
            if !report.windows.allSatisfy(\.sumExact) { throw ExitCode(1) }
        }
    }

    struct Scenarios: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the scenarios in a folder, one line each.")

        @Option(help: "The folder to list.")
        var directory: String = "Simulations"

        func run() throws {
            let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
            for file in files {
                let path = directory + "/" + file
                do {
                    let column = path.padding(toLength: 40, withPad: " ", startingAt: 0)
                    switch try AnyScenario.load(path: path) {
                    case let .round(s):
                        let adversary = s.adversary.map { ", adversary \($0)" } ?? ""
                        print("\(column) \(s.devices) devices × \(s.dimension) elements, \(s.graph.kind) graph, \(s.threatModel.rawValue)\(adversary): \(s.description)")
                    case let .features(s):
                        print("\(column) \(s.devices) devices, feature set \(s.featureSet.name) v\(s.featureSet.version) over \(s.windows) windows: \(s.description)")
                    }
                } catch {
                    print("\(path): invalid: \(error)")
                }
            }
        }
    }
}
