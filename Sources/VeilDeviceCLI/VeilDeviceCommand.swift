import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VeilDeviceAgent
import VeilProtocol

/// `veil-device`: the agent a Linux edge node runs (README.md, "Running veil-device on a node").
@main
struct VeilDeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veil-device",
        abstract: "The Veil edge agent: enrol once, record observations, take part in secure aggregation rounds.",
        subcommands: [Enrol.self, Run.self, Record.self, Status.self])
}

/// The state directory option every command takes.
struct StateOption: ParsableArguments {
    @Option(name: .customLong("state"), help: "The agent's state directory (mode 0700).")
    var directory: String = AgentState.defaultDirectory
}

/// Splits HOST:PORT (an IPv6 literal in brackets).
func endpoint(_ text: String) throws -> (host: String, port: Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
        throw ValidationError("--aggregator must be HOST:PORT, got \"\(text)\"")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { throw ValidationError("--aggregator must name a host") }
    return (host, port)
}

func fail(_ error: AgentError) -> ExitCode {
    FileHandle.standardError.write(Data("veil-device: \(error)\n".utf8))
    return ExitCode(2)
}

struct Enrol: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enrol this node with an aggregator, once (idempotent for the same aggregator).")
    @OptionGroup var state: StateOption
    @Option(help: "The aggregator's device endpoint, HOST:PORT.") var aggregator: String
    @Option(help: "The CA certificate (PEM) that signed the aggregator's certificate.") var ca: String
    @Option(help: "The one-time enrolment token from `veil-aggregator enrolment-token`.") var token: String
    @Option(help: "Device policy: the smallest cohort this device joins (SPEC.md §13.1).") var minimumCohort = 10
    @Option(help: "Device policy: the dropout fraction the device assumes when it checks the round's graph.") var assumedDropout = 0.05
    @Option(help: "Device policy: the fraction of the cohort the device assumes colludes with the aggregator.") var assumedCorruptFraction = 0.0
    @Option(help: "Device policy: the weakest threat model accepted, active or honest-but-curious.") var threatModel = "active"

    func run() async throws {
        let (host, port) = try endpoint(aggregator)
        guard let model = ThreatModel(rawValue: threatModel) else { throw ValidationError("--threat-model must be active or honest-but-curious") }
        let policy = DevicePolicy(requiredThreatModel: model, minimumCohort: minimumCohort, assumedDropout: assumedDropout, assumedCorruptFraction: assumedCorruptFraction)
        do {
            let id = try await DeviceAgent(directory: state.directory).enrol(host: host, port: port, caPath: ca, token: token, policy: policy)
            print("enrolled as \(id)")
        } catch { throw fail(error) }
    }
}

struct Record: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record one observation, or JSON Lines from standard input (--jsonl). Durable when the command returns.")
    @OptionGroup var state: StateOption
    @Argument(help: "The feature's name.") var feature: String?
    @Argument(help: "A numeric or histogram value.") var value: Double?
    @Option(help: "A categorical value instead.") var category: String?
    @Option(help: "Occurrences of an eventCount feature instead.") var events: Int?
    @Option(name: .customLong("feature-set"), help: "The feature set, when two followed sets share the feature name.") var featureSet: String?
    @Option(help: "When, in seconds since the Unix epoch (default now).") var at: Double?
    @Flag(help: "Read observations from standard input, one JSON object a line: {\"feature\": …, \"value\" | \"category\" | \"events\": …, \"at\": …}.")
    var jsonl = false

    func run() async throws {
        let agent = DeviceAgent(directory: state.directory)
        if jsonl {
            guard feature == nil, value == nil, category == nil, events == nil else { throw ValidationError("--jsonl takes its observations from standard input only") }
            let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            do {
                let (stored, problems) = try agent.recordJSONLines(input, mode: .eachLine)
                for problem in problems { FileHandle.standardError.write(Data("veil-device: \(problem)\n".utf8)) }
                print("stored \(stored) observations\(problems.isEmpty ? "" : ", refused \(problems.count) lines")")
                if !problems.isEmpty { throw ExitCode(1) }
            } catch let error as AgentError { throw fail(error) }
            return
        }
        guard let feature else { throw ValidationError("name a feature, or pass --jsonl") }
        let record = DeviceAgent.ObservationRecord(feature: feature, value: value, category: category, events: events, at: at, featureSet: featureSet)
        do { try agent.record([record]) } catch { throw fail(error) }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the identity, the aggregator, the feature sets followed or refused, pending and counted windows, and the last rounds.")
    @OptionGroup var state: StateOption
    @Flag(help: "As JSON.") var json = false

    func run() async throws {
        do {
            let status = try DeviceAgent(directory: state.directory).status()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                print(String(decoding: try encoder.encode(status), as: UTF8.self))
            } else {
                print(DeviceAgent.describe(status))
            }
        } catch let error as AgentError { throw fail(error) }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon: follow the aggregator's feature sets and take part in their rounds until SIGTERM.")
    @OptionGroup var state: StateOption
    @Option(help: "Seconds between fetches of the feature-set definitions.") var refreshSeconds: Int = 600
    @Option(help: "trace, debug, info, notice, warning or error.") var logLevel: String = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "veil.device")
        let agent = DeviceAgent(directory: state.directory, logger: logger)
        let lock: RunLock
        do {
            _ = try agent.status()
            lock = try RunLock(agent.state)
        } catch { throw fail(error) }
        let service = AgentService(agent: agent, refresh: .seconds(refreshSeconds))
        let ingest = IngestServer(agent: agent).application(logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: ingest, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        withExtendedLifetime(lock) {}
    }
}

/// The agent's round loop as a service: a graceful shutdown (SIGTERM) cancels it, which closes a
/// round's stream mid-round (a dropout to the aggregator); nothing recorded is lost.
struct AgentService: Service {
    let agent: DeviceAgent
    let refresh: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await agent.run(refreshInterval: refresh)
        }
    }
}
