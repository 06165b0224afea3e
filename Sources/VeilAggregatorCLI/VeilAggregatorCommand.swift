import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VeilAggregator
import VeilProtocol
import VeilStore

/// `veil-aggregator`: the Veil aggregation server.
@main
struct VeilAggregatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veil-aggregator",
        abstract: "The Veil secure-aggregation server: devices connect over gRPC with TLS and take part in rounds.",
        subcommands: [Serve.self, DevCertificates.self, EnrolmentToken.self, Revoke.self],
        defaultSubcommand: Serve.self)
}

/// Settings shared by the subcommands that open the store.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "A JSON configuration file (see README.md, \"Configuring the aggregator\"). Environment variables VEIL_* and the flags below override it.")
    var configPath: String?

    @Option(help: "The store: an SQLite file path, or a postgres://user@host:5432/database URL, password in VEIL_DATABASE_PASSWORD (VEIL_DATABASE).")
    var database: String?

    /// The configuration from the file, then the environment, then these flags.
    func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AggregatorConfiguration {
        var configuration = AggregatorConfiguration()
        if let configPath {
            do {
                configuration = try JSONDecoder().decode(AggregatorConfiguration.self, from: Data(contentsOf: URL(fileURLWithPath: configPath)))
            } catch {
                throw ValidationError("cannot read the configuration file \(configPath): \(error)")
            }
        }
        try configuration.applyEnvironment(environment)
        if let database { configuration.database = database }
        return configuration
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve devices until SIGTERM or SIGINT, then end rounds cleanly and stop.")

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "Listen address host:port for gRPC (VEIL_LISTEN).")
    var listen: String?

    @Option(help: "Listen address host:port for /healthz and /metrics (plain HTTP), or \"off\" (VEIL_HTTP_LISTEN).")
    var httpListen: String?

    @Option(help: "Listen address host:port for the /v1 API (TLS), or \"off\" (VEIL_API_LISTEN).")
    var apiListen: String?

    @Option(help: "PEM certificate chain for TLS (VEIL_TLS_CERTIFICATE).")
    var tlsCertificate: String?

    @Option(help: "PEM private key for TLS (VEIL_TLS_PRIVATE_KEY).")
    var tlsPrivateKey: String?

    @Flag(help: "Serve gRPC without TLS. For tests and debugging only; logs a warning.")
    var insecurePlaintext = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (VEIL_LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        var configuration = try options.load()
        if let listen { configuration.listen = try .parse(listen) }
        if let httpListen { configuration.httpListen = httpListen == "off" ? nil : try .parse(httpListen) }
        if let apiListen { configuration.apiListen = apiListen == "off" ? nil : try .parse(apiListen, field: "--api-listen") }
        if let tlsCertificate { configuration.tlsCertificatePath = tlsCertificate }
        if let tlsPrivateKey { configuration.tlsPrivateKeyPath = tlsPrivateKey }
        if insecurePlaintext { configuration.insecurePlaintext = true }
        let level = Logger.Level(rawValue: logLevel ?? ProcessInfo.processInfo.environment["VEIL_LOG_LEVEL"] ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "veil.aggregator")
        let aggregator: Aggregator
        do {
            aggregator = try await Aggregator(configuration: configuration, logger: logger)
        } catch let error as AggregatorConfigurationError {
            throw ValidationError(error.description)
        }
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: aggregator, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

struct DevCertificates: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-certificates",
        abstract: "Write a throwaway CA (ca.pem, ca-key.pem) and a localhost server certificate (server.pem, server-key.pem) into DIR. For local use only.")

    @Argument(help: "The directory to write into (created if missing).")
    var directory: String

    func run() throws {
        let paths = try DevelopmentCertificates.write(to: directory)
        print("""
        wrote \(paths.caCertificate) (pin this on devices), \(paths.serverCertificate), \(paths.serverPrivateKey)
        serve with: veil-aggregator serve --tls-certificate \(paths.serverCertificate) --tls-private-key \(paths.serverPrivateKey)
        """)
    }
}

struct EnrolmentToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enrolment-token",
        abstract: "Create one-time enrolment tokens. Each is printed once; only its hash is stored.")

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "How many tokens to create.")
    var count = 1

    @Option(help: "How long each token stays valid, in hours.")
    var validHours = 24.0

    func validate() throws {
        guard count >= 1, count <= 1_000_000 else { throw ValidationError("--count must be in 1...1000000") }
        guard validHours > 0 else { throw ValidationError("--valid-hours must be positive") }
    }

    func run() async throws {
        let store = try await openAggregatorStore(try options.load().database, logger: Logger(label: "veil-aggregator"))
        let audit = AuditLog()
        let target = "\(count) token(s) valid \(validHours) h"
        do {
            for _ in 0..<count { print(try await store.createEnrolmentToken(lifetime: validHours * 3600)) }
        } catch {
            audit.record(action: "enrolment-token", actor: "cli", target: target, outcome: 1)
            await store.close()
            throw error
        }
        audit.record(action: "enrolment-token", actor: "cli", target: target, outcome: 0)
        await store.close()
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke an enrolled device: it can no longer join rounds.")

    @OptionGroup var options: ConfigurationOptions

    @Argument(help: "The device id (dev-…), as enrolment returned it.")
    var deviceID: String

    func run() async throws {
        let store = try await openAggregatorStore(try options.load().database, logger: Logger(label: "veil-aggregator"))
        let revoked = try await store.revoke(deviceID: deviceID)
        AuditLog().record(action: "revoke", actor: "cli", target: deviceID, outcome: revoked ? 0 : 1)
        await store.close()
        guard revoked else { throw ValidationError("no active device \(deviceID)") }
        print("revoked \(deviceID)")
    }
}
