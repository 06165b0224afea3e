public import Foundation
import CoreMetrics
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
public import Logging
public import ServiceLifecycle
import Synchronization
import VeilProtocol
public import VeilFeatures
import VeilWire
public import VeilStore

/// The aggregator server: the device-facing gRPC service over HTTP/2 (TLS unless explicitly
/// disabled), the round coordinator, the store (SQLite or PostgreSQL) and the HTTP API (`/healthz`,
/// `/metrics`, `/v1`), run as one swift-service-lifecycle `Service`.
///
/// On graceful shutdown (SIGTERM/SIGINT in a `ServiceGroup`, or ``shutDown()``) it refuses new
/// devices, tells waiting devices to come back, aborts running rounds (nothing is released from an
/// aborted round), lets the streams finish and stops.
public final class Aggregator: Service, Sendable {
    /// The validated configuration.
    public let configuration: AggregatorConfiguration
    /// The durable store (enrolments, round history, feature windows and feature sets).
    public let store: any AggregatorStore
    /// The newest window of each feature set, served from memory.
    let latestWindows = LatestWindows()
    /// The metrics `/metrics` renders.
    public let metrics: AggregatorMetrics
    private let coordinator: RoundCoordinator
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let logger: Logger
    /// Where administrative actions over the API are recorded.
    private let audit: AuditLog
    private let ports = Mutex<(grpc: Int?, http: Int?, api: Int?)>((nil, nil, nil))
    private let httpTasks = Mutex<[Task<Void, any Error>]>([])
    private let stopping = Atomic<Bool>(false)
    private let refresher = Mutex<Task<Void, Never>?>(nil)
    private let sweeper = Mutex<Task<Void, Never>?>(nil)

    /// Validates the configuration, opens (and migrates) the store its `database` names, then
    /// continues as ``init(configuration:store:logger:audit:clock:)``.
    public convenience init(
        configuration: AggregatorConfiguration, logger: Logger, audit: AuditLog = AuditLog(), clock: @escaping @Sendable () -> Date = { Date() }
    ) async throws {
        try configuration.validate()
        let store = try await openAggregatorStore(configuration.database, logger: logger)
        try await self.init(configuration: configuration, store: store, logger: logger, audit: audit, clock: clock)
    }

    /// Validates the configuration and, on `store` (already opened and migrated; the
    /// `database` setting is not read), ends the rounds a previous process of this instance
    /// left running, registers the configured feature set and prepares the servers. The
    /// aggregator owns the store from here: it closes it when this throws.
    public init(configuration: AggregatorConfiguration, store: any AggregatorStore, logger: Logger, audit: AuditLog = AuditLog(),
                clock: @escaping @Sendable () -> Date = { Date() }) async throws {
        self.audit = audit
        do { try configuration.validate() } catch {
            await store.close()
            throw error
        }
        self.configuration = configuration
        self.logger = logger
        self.store = store
        if let set = configuration.rounds.featureSet {
            do { try await store.define(set) } catch let error as FeatureSetRegistryError {
                await store.close()
                throw AggregatorConfigurationError.invalid("rounds.featureSet", "\(error)")
            }
        }
        metrics = AggregatorMetrics()
        // Rounds a previous process of this instance left running died with it: end them and
        // release their claims before any new round can claim their devices (SPEC.md §12.2).
        do {
            let recovered = try await store.recoverRounds(instance: configuration.instance, now: clock())
            for _ in recovered { metrics.roundEnded(outcome: "recovered") }
            if !recovered.isEmpty {
                logger.warning("ended rounds a previous process of this instance left running", metadata: [
                    "instance": "\(configuration.instance)", "rounds": "\(recovered.joined(separator: ","))"])
            }
        } catch {
            await store.close()
            throw error
        }
        let latest = latestWindows
        let minimumRelease = configuration.rounds.minimumReleaseCohort
        coordinator = RoundCoordinator(
            policy: configuration.rounds, maximumWaiting: configuration.maximumWaitingDevices,
            store: store, metrics: metrics, logger: logger, instance: configuration.instance, clock: clock,
            windowUpdated: { layout in
                await latest.refresh(layout, from: store, minimumReleaseCohort: minimumRelease)
            })
        let security: HTTP2ServerTransport.Posix.TransportSecurity
        if configuration.insecurePlaintext {
            logger.warning("serving gRPC WITHOUT TLS (insecurePlaintext): device traffic and enrolment tokens are readable on the network")
            security = .plaintext
        } else {
            security = .tls(
                certificateChain: [.file(path: configuration.tlsCertificatePath!, format: .pem)],
                privateKey: .file(path: configuration.tlsPrivateKeyPath!, format: .pem))
        }
        // The transport's limit is the largest message any round of this policy accepts; each
        // round then enforces its own exact limit before parsing.
        let largest = try RoundConfiguration(
            roundID: RoundID(bytes: [UInt8](repeating: 0, count: 16)), roundSeed: [UInt8](repeating: 0, count: 32),
            cohortSize: max(configuration.rounds.maximumCohort, 3), dimension: configuration.rounds.effectiveDimension,
            bitWidth: configuration.rounds.effectiveBitWidth, prg: configuration.rounds.prg, graph: .complete, threshold: 1,
            threatModel: configuration.rounds.threatModel)
        let limit = WireCodec.maximumDeviceMessageByteCount(largest) + 4096
        let service = AggregatorService(
            store: store, coordinator: coordinator, metrics: metrics, logger: logger,
            checkInTimeout: .milliseconds(Int64(configuration.checkInTimeoutSeconds * 1000)),
            enrolments: RateLimiter(perSecond: configuration.enrolmentsPerSecond, burst: max(1, Int(configuration.enrolmentsPerSecond * 2))),
            definitionRequests: RateLimiter(perSecond: 10 * configuration.enrolmentsPerSecond, burst: max(1, Int(configuration.enrolmentsPerSecond * 20))),
            clock: clock, windowSeconds: configuration.rounds.windowSeconds, roundsFeatureSet: configuration.rounds.featureSet)
        // Before check-in a client may hold little: connections per address, a deadline for the
        // first stream, and one check-in-sized message per stream until it is answered.
        let connectionGuard = ConnectionGuard(
            maximumConnectionsPerAddress: configuration.maximumConnectionsPerAddress,
            preAuthenticationDeadline: .milliseconds(Int64(configuration.checkInTimeoutSeconds * 1000)),
            firstMessageLimit: TransportCodec.maximumCheckInFrameByteCount,
            silenceLimit: .milliseconds(Int64((configuration.keepaliveSeconds + configuration.keepaliveTimeoutSeconds) * 1000)),
            onRefusal: { [metrics] refusal in metrics.rejected(reason: refusal.rawValue) })
        server = GRPCServer(
            transport: .http2NIOPosix(
                // An IPv6 literal binds as IPv6 ("::1", "::"); anything else as IPv4.
                address: configuration.listen.host.contains(":")
                    ? .ipv6(host: configuration.listen.host, port: configuration.listen.port)
                    : .ipv4(host: configuration.listen.host, port: configuration.listen.port),
                transportSecurity: security,
                config: .defaults {
                    $0.rpc.maxRequestPayloadSize = limit
                    $0.http2.maxConcurrentStreams = configuration.maximumStreamsPerConnection
                    $0.connection.maxIdleTime = .seconds(300)
                    $0.channelDebuggingCallbacks.onAcceptTCPConnection = { connectionGuard.acceptConnection($0) }
                    $0.channelDebuggingCallbacks.onAcceptHTTP2Stream = { connectionGuard.acceptStream($0) }
                    // Pings devices every keepaliveSeconds (30 s) and drops a connection that does
                    // not answer in keepaliveTimeoutSeconds (10 s): a half-open device holds no
                    // waiting-room place or round for long. Accepts the devices' own pings every
                    // 20 s or slower.
                    $0.connection.keepalive = .init(
                        time: .milliseconds(Int64(configuration.keepaliveSeconds * 1000)),
                        timeout: .milliseconds(Int64(configuration.keepaliveTimeoutSeconds * 1000)),
                        clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(20), allowWithoutCalls: true))
                }),
            services: [service])
    }

    /// Serves until cancelled or gracefully shut down.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    do { try await self.server.serve() } catch {
                        await self.closeHTTPServers()
                        throw error
                    }
                    await self.closeHTTPServers()
                }
                refresher.withLock { $0 = Task { await self.refreshLatestWindows() } }
                sweeper.withLock { $0 = Task { await self.maintain() } }
                let address = try await server.listeningAddress
                let grpcPort = address?.ipv4?.port ?? address?.ipv6?.port
                let api = ServingAPI(
                    aggregator: self, adminToken: configuration.apiToken, readToken: configuration.apiReadToken, audit: audit)
                if let h = configuration.httpListen {
                    try await serveHTTP("operations (/healthz, /metrics)", on: h, router: api.operationsRouter(), server: .http1()) { port in
                        self.ports.withLock { $0.http = port }
                    }
                }
                if let a = configuration.apiListen {
                    try await serveHTTP("API (/v1)", on: a, router: api.apiRouter(), server: try apiServer()) { port in
                        self.ports.withLock { $0.api = port }
                    }
                }
                let (httpPort, apiPort) = ports.withLock { ($0.http, $0.api) }
                ports.withLock { $0.grpc = grpcPort }
                logger.info("veil-aggregator listening", metadata: [
                    "grpc": "\(configuration.listen.host):\(grpcPort ?? 0)",
                    "api": "\(apiPort.map { "\(configuration.apiListen!.host):\($0)" } ?? "off")",
                    "metrics": "\(httpPort.map { "\(configuration.httpListen!.host):\($0)" } ?? "off")",
                    "tls": "\(!configuration.insecurePlaintext)",
                ])
            }
        } onGracefulShutdown: {
            Task { await self.shutDown() }
        }
    }

    /// Refuses new devices, ends waiting devices and running rounds, then stops the servers.
    public func shutDown() async {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        refresher.withLock { $0?.cancel() }
        sweeper.withLock { $0?.cancel() }
        logger.info("shutting down: ending rounds")
        await coordinator.shutDown(grace: .milliseconds(Int64(configuration.shutdownGraceSeconds * 1000)))
        server.beginGracefulShutdown()
    }

    /// Whether the aggregator accepts devices (false once shutdown began).
    public var isServing: Bool { !stopping.load(ordering: .relaxed) }

    /// Stops the maintenance tasks and every HTTP listener (operations and API).
    private func closeHTTPServers() async {
        refresher.withLock { $0?.cancel() }
        sweeper.withLock { $0?.cancel() }
        let tasks = httpTasks.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in tasks {
            task.cancel()
            _ = try? await task.value
        }
    }

    /// The HTTP server of the `/v1` listener: TLS with the gRPC certificate and key, unless the
    /// aggregator runs with `insecurePlaintext`.
    private func apiServer() throws -> HTTPServerBuilder {
        guard !configuration.insecurePlaintext else {
            logger.warning("serving the /v1 API WITHOUT TLS (insecurePlaintext): bearer tokens are readable on the network")
            return .http1()
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(configuration.tlsCertificatePath!).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: configuration.tlsPrivateKeyPath!, format: .pem)))
        tls.minimumTLSVersion = .tlsv12
        return try .tls(.http1(), tlsConfiguration: tls)
    }

    /// Starts an HTTP server for `router` on `endpoint` and returns once it listens (its port
    /// handed to `listening`). A listener that cannot bind (address in use, no permission) is
    /// fatal and named, not a start-up that waits forever.
    private func serveHTTP(
        _ name: String, on endpoint: AggregatorConfiguration.Endpoint, router: Router<BasicRequestContext>, server builder: HTTPServerBuilder,
        listening: @escaping @Sendable (Int?) -> Void
    ) async throws {
        let bound = OnceFlag()
        let app = Application(
            router: router, server: builder,
            configuration: .init(address: .hostname(endpoint.host, port: endpoint.port), serverName: "veil-aggregator"),
            onServerRunning: { channel in
                listening(channel.localAddress?.port)
                bound.set()
            },
            logger: logger)
        let failed = StartupFailure()
        httpTasks.withLock {
            $0.append(Task {
                do { try await app.run() } catch {
                    failed.record(error)
                    throw error
                }
            })
        }
        while !bound.isSet && !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(5))
            if let failure = failed.description {
                logger.critical("cannot serve the HTTP \(name)", metadata: ["listen": "\(endpoint.host):\(endpoint.port)", "error": "\(failure)"])
                server.beginGracefulShutdown()
                throw AggregatorStartupError("cannot serve the HTTP \(name) on \(endpoint.host):\(endpoint.port): \(failure)")
            }
        }
    }

    /// Waits until the servers listen; then ``grpcPort`` and ``httpPort`` are set.
    public func waitUntilListening() async {
        while grpcPort == nil && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// The port gRPC listens on, once listening.
    public var grpcPort: Int? { ports.withLock { $0.grpc } }

    /// The port of the operations listener (`/healthz`, `/metrics`), once listening (nil when disabled).
    public var httpPort: Int? { ports.withLock { $0.http } }

    /// The port of the `/v1` API listener, once listening (nil when disabled).
    public var apiPort: Int? { ports.withLock { $0.api } }

    /// Starts a round now with the devices waiting (at least `minimumCohort`); false otherwise.
    public func startRoundNow() async -> Bool { await coordinator.startRoundNow() }

    /// The devices waiting for a round.
    public func waitingDeviceCount() async -> Int { await coordinator.waitingCount }

    /// The privacy budget of feature set `name` (its highest registered version with privacy):
    /// spent and remaining ε from the store's ledger, and the last round this instance refused
    /// for it. Nil when no version of the set has differential privacy.
    func budgetStatus(of name: String) async throws -> BudgetStatus? {
        let versions = try await store.featureSets(includingRetired: true).map(\.featureSet).filter { $0.name == name && $0.privacy != nil }
        guard let set = versions.max(by: { $0.version < $1.version }), let layout = try? FeatureLayout(set), let plan = layout.privacy else { return nil }
        let refusal = configuration.rounds.featureSet?.name == name ? await coordinator.lastBudgetRefusal : nil
        return BudgetStatus(layout, plan: plan, ledger: try await store.privacyLedger(featureSet: name), lastRefusal: refusal)
    }

    /// The rounds in flight.
    public func activeRoundCount() async -> Int { await coordinator.activeRoundCount }

    /// The released windows of `set` starting in `from ..< to` (seconds since the epoch).
    public func featureWindows(of set: FeatureSet, from: Int, to: Int) async throws -> [ReleasedWindow] {
        try await store.windows(of: try FeatureLayout(set), from: from, to: to, minimumReleaseCohort: configuration.rounds.minimumReleaseCohort)
    }

    /// The newest stored window of feature set `name` (its highest version with a window when
    /// `version` is nil), from memory: refreshed when this instance adds a round
    /// into a window, and every ``latestRefreshInterval`` from the store, which catches the
    /// rounds of other instances sharing it.
    public func latestWindow(name: String, version: Int?) -> (version: Int, window: ReleasedWindow)? {
        latestWindows.window(name: name, version: version)
    }

    /// How often the in-memory latest windows are re-read from the store.
    public static let latestRefreshInterval = Duration.seconds(2)

    private func refreshLatestWindows() async {
        while isServing && !Task.isCancelled {
            do {
                for entry in try await store.featureSets(includingRetired: false) {
                    guard let layout = try? FeatureLayout(entry.featureSet) else { continue }
                    await latestWindows.refresh(layout, from: store, minimumReleaseCohort: configuration.rounds.minimumReleaseCohort)
                }
            } catch {
                logger.warning("cannot refresh the latest feature windows", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: Self.latestRefreshInterval)
        }
    }

    /// Every lease length, ends the rounds of any instance sharing the store whose lease expired
    /// (their instance died and is not back), so their history is complete and their claims free;
    /// once a minute after start and then every hour, applies the retention.
    private func maintain() async {
        let period = Duration.milliseconds(Int64(configuration.rounds.leaseSeconds * 1000))
        var nextRetention = ContinuousClock.now + .seconds(60)
        while isServing && !Task.isCancelled {
            try? await Task.sleep(for: period)
            guard isServing, !Task.isCancelled else { return }
            if ContinuousClock.now >= nextRetention {
                nextRetention = ContinuousClock.now + .seconds(3600)
                do { try await applyRetention(now: Date()) } catch {
                    metrics.storeError(operation: "retention")
                    logger.warning("cannot apply the retention", metadata: ["error": "\(error)"])
                }
            }
            do {
                let recovered = try await store.recoverRounds(instance: nil, now: Date())
                for _ in recovered { metrics.roundEnded(outcome: "recovered") }
                if !recovered.isEmpty {
                    logger.warning("ended rounds whose lease expired", metadata: ["rounds": "\(recovered.joined(separator: ","))"])
                }
            } catch {
                metrics.storeError(operation: "recover-rounds")
                logger.warning("cannot recover rounds whose lease expired", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Deletes what the retention (`retentionDays`) no longer keeps: rounds that ended longer
    /// ago, with their results; enrolment tokens created or expired longer ago; and which devices
    /// contributed to windows whose horizon passed longer ago (such a window takes no more rounds,
    /// so nothing needs them). Windows' sums and devices are kept.
    @discardableResult
    public func applyRetention(now: Date) async throws -> RetentionReport {
        let keep = TimeInterval(configuration.retentionDays) * 86_400
        let rounds = configuration.rounds
        let windowsBefore = Int((now.timeIntervalSince1970 - keep).rounded(.down)) - rounds.effectiveWindowHorizonSeconds - rounds.windowSeconds
        let report = try await store.applyRetention(Retention(
            roundsEndedBefore: now.addingTimeInterval(-keep), tokensBefore: now.addingTimeInterval(-keep), windowsStartedBefore: windowsBefore))
        if report != RetentionReport(rounds: 0, tokens: 0, contributors: 0) {
            logger.info("retention applied", metadata: [
                "rounds": "\(report.rounds)", "tokens": "\(report.tokens)", "contributors": "\(report.contributors)"])
        }
        return report
    }

    /// Every round that ends from the time of the call, with its outcome.
    public func completedRounds() async -> AsyncStream<CompletedRound> { await coordinator.completedRounds() }
}

/// The aggregator could not start serving (for example a listener could not bind).
public struct AggregatorStartupError: Error, CustomStringConvertible, Sendable {
    /// What failed.
    public let description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// Why a server task ended before it started listening, as text (set once, read by start-up).
final class StartupFailure: Sendable {
    private let text = Mutex<String?>(nil)
    /// Records `error`.
    func record(_ error: any Error) { text.withLock { $0 = String(describing: error) } }
    /// The recorded failure, if any.
    var description: String? { text.withLock { $0 } }
}
