public import Foundation
public import VeilCrypto
public import VeilProtocol
public import VeilFeatures
import VeilStore

/// Everything `veil-aggregator serve` needs, read from a JSON file, then `VEIL_*` environment
/// variables, then command-line flags (later sources win), and validated by ``validate()`` before
/// anything starts. Every field and its default is documented in README.md ("Configuring the
/// aggregator").
public struct AggregatorConfiguration: Sendable, Codable, Equatable {
    /// Where devices connect (gRPC over HTTP/2).
    public var listen = Endpoint(host: "127.0.0.1", port: 7443)
    /// Where operations endpoints are served: `/healthz` and `/metrics`, plain HTTP, no secrets
    /// (keep it on loopback or a private interface). Port 0 picks a free port; nil turns it off.
    public var httpListen: Endpoint? = Endpoint(host: "127.0.0.1", port: 9464)
    /// Where the `/v1` API (feature sets, windows, exports, rounds) is served, over TLS with the
    /// gRPC certificate (plain only with `insecurePlaintext`), so that bearer tokens never cross
    /// the network in the clear. Port 0 picks a free port; nil turns it off.
    public var apiListen: Endpoint? = Endpoint(host: "127.0.0.1", port: 7444)
    /// PEM server certificate chain and key. Both are required unless `insecurePlaintext` is set.
    public var tlsCertificatePath: String?
    /// PEM private key of the server certificate.
    public var tlsPrivateKeyPath: String?
    /// The admin bearer token: every `/v1` route, including those that change state (define or
    /// retire a feature set, start a round), each of which is written to the audit log. With no
    /// token set, `/v1` refuses every request. Prefer `VEIL_API_TOKEN` to writing it in a file.
    public var apiToken: String?
    /// The read-only bearer token: the `/v1` routes that only read (GET), for training jobs and
    /// services (`VEIL_API_READ_TOKEN`).
    public var apiReadToken: String?
    /// Days to keep what is no longer needed: ended rounds' history and results, used or
    /// expired enrolment tokens, and which devices contributed to windows past their horizon.
    /// Windows' sums (the feature store) are kept.
    public var retentionDays = 90
    /// Serve gRPC without TLS. Only for tests and debugging; the server logs a warning.
    public var insecurePlaintext = false
    /// The store (created and migrated at start): the path of an SQLite file, the embedded
    /// default, or a `postgres://user@host:5432/database?sslmode=verify-full|verify-ca|require|disable`
    /// URL for PostgreSQL, which several aggregator instances can share.
    public var database = "veil-aggregator.sqlite"
    /// How rounds are formed and run.
    public var rounds = RoundPolicy()
    /// The most devices that may wait for a round at once; more get RESOURCE_EXHAUSTED.
    public var maximumWaitingDevices = 100_000
    /// How long a device may take to answer the check-in challenge, in seconds; also how long a
    /// new connection may take (TLS handshake included) to open its first stream.
    public var checkInTimeoutSeconds = 10.0
    /// Open connections one client address may hold; more are closed as they are accepted.
    /// Devices behind one NAT share an address, so this is a bound on abuse, not one per device.
    public var maximumConnectionsPerAddress = 256
    /// Concurrent streams one HTTP/2 connection may carry (a device needs one at a time).
    public var maximumStreamsPerConnection = 16
    /// How often the server pings a connection (HTTP/2 keepalive), in seconds; with
    /// `keepaliveTimeoutSeconds`, how soon a device whose connection went silent (power lost, a
    /// NAT mapping dropped) loses its place in the waiting room or its round.
    public var keepaliveSeconds = 30.0
    /// How long a ping may go unanswered before the connection is closed, in seconds.
    public var keepaliveTimeoutSeconds = 10.0
    /// This instance's name in the round history. At start the instance ends the rounds its
    /// previous process left running, found by this name, so it must be stable across restarts
    /// and distinct for every instance sharing one store. Defaults to the host name.
    public var instance = ProcessInfo.processInfo.hostName
    /// How long a shutdown (SIGTERM) waits for round ends being written to the store.
    public var shutdownGraceSeconds = 10.0
    /// Enrolment requests accepted per second, on average (bursts of twice that); more get
    /// RESOURCE_EXHAUSTED before they reach the store.
    public var enrolmentsPerSecond = 50.0

    /// A host and TCP port.
    public struct Endpoint: Sendable, Codable, Equatable {
        /// Host name or address to bind.
        public var host: String
        /// TCP port; 0 lets the system pick one.
        public var port: Int
        /// Creates an endpoint.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// Creates the default configuration.
    public init() {}

    /// Decodes a configuration, filling absent keys with defaults.
    public init(from decoder: any Decoder) throws {
        try refuseUnknownKeys(decoder, known: CodingKeys.self, in: "")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AggregatorConfiguration()
        listen = try c.decodeIfPresent(Endpoint.self, forKey: .listen) ?? d.listen
        httpListen = c.contains(.httpListen) ? try c.decodeIfPresent(Endpoint.self, forKey: .httpListen) : d.httpListen
        tlsCertificatePath = try c.decodeIfPresent(String.self, forKey: .tlsCertificatePath)
        tlsPrivateKeyPath = try c.decodeIfPresent(String.self, forKey: .tlsPrivateKeyPath)
        insecurePlaintext = try c.decodeIfPresent(Bool.self, forKey: .insecurePlaintext) ?? d.insecurePlaintext
        apiListen = c.contains(.apiListen) ? try c.decodeIfPresent(Endpoint.self, forKey: .apiListen) : d.apiListen
        apiToken = try c.decodeIfPresent(String.self, forKey: .apiToken)
        apiReadToken = try c.decodeIfPresent(String.self, forKey: .apiReadToken)
        retentionDays = try c.decodeIfPresent(Int.self, forKey: .retentionDays) ?? d.retentionDays
        database = try c.decodeIfPresent(String.self, forKey: .database) ?? d.database
        rounds = try c.decodeIfPresent(RoundPolicy.self, forKey: .rounds) ?? d.rounds
        maximumWaitingDevices = try c.decodeIfPresent(Int.self, forKey: .maximumWaitingDevices) ?? d.maximumWaitingDevices
        checkInTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .checkInTimeoutSeconds) ?? d.checkInTimeoutSeconds
        instance = try c.decodeIfPresent(String.self, forKey: .instance) ?? d.instance
        shutdownGraceSeconds = try c.decodeIfPresent(Double.self, forKey: .shutdownGraceSeconds) ?? d.shutdownGraceSeconds
        enrolmentsPerSecond = try c.decodeIfPresent(Double.self, forKey: .enrolmentsPerSecond) ?? d.enrolmentsPerSecond
        maximumConnectionsPerAddress = try c.decodeIfPresent(Int.self, forKey: .maximumConnectionsPerAddress) ?? d.maximumConnectionsPerAddress
        maximumStreamsPerConnection = try c.decodeIfPresent(Int.self, forKey: .maximumStreamsPerConnection) ?? d.maximumStreamsPerConnection
        keepaliveSeconds = try c.decodeIfPresent(Double.self, forKey: .keepaliveSeconds) ?? d.keepaliveSeconds
        keepaliveTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .keepaliveTimeoutSeconds) ?? d.keepaliveTimeoutSeconds
    }

    /// Refuses inconsistent settings, naming the field.
    public func validate() throws(AggregatorConfigurationError) {
        if !insecurePlaintext && (tlsCertificatePath == nil || tlsPrivateKeyPath == nil) {
            throw .invalid("tlsCertificatePath/tlsPrivateKeyPath", "TLS needs a certificate and a key (run `veil-aggregator dev-certificates DIR` for local use), or set insecurePlaintext")
        }
        for (name, path) in [("tlsCertificatePath", tlsCertificatePath), ("tlsPrivateKeyPath", tlsPrivateKeyPath)] {
            if let path, !insecurePlaintext, !FileManager.default.isReadableFile(atPath: path) {
                throw .invalid(name, "cannot read \(path)")
            }
        }
        // The server's private key must be readable by its owner only.
        if let path = tlsPrivateKeyPath, !insecurePlaintext,
           let mode = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber,
           mode.uint16Value & 0o077 != 0 {
            throw .invalid("tlsPrivateKeyPath", "\(path) is readable by group or others (mode \(String(mode.uint16Value, radix: 8))); chmod 600 it")
        }
        guard (0...65535).contains(listen.port) else { throw .invalid("listen.port", "must be in 0...65535") }
        if let m = httpListen, !(0...65535).contains(m.port) { throw .invalid("httpListen.port", "must be in 0...65535") }
        if let m = apiListen, !(0...65535).contains(m.port) { throw .invalid("apiListen.port", "must be in 0...65535") }
        if let apiToken, apiToken.utf8.count < 16 { throw .invalid("apiToken", "must be at least 16 characters") }
        if let apiReadToken {
            guard apiReadToken.utf8.count >= 16 else { throw .invalid("apiReadToken", "must be at least 16 characters") }
            guard apiReadToken != apiToken else { throw .invalid("apiReadToken", "must differ from apiToken, or reading would grant admin") }
        }
        guard (1...3650).contains(retentionDays) else { throw .invalid("retentionDays", "must be in 1...3650") }
        guard !database.isEmpty else { throw .invalid("database", "must not be empty") }
        do { _ = try PostgresLocation(parsing: database) } catch { throw .invalid("database", error.reason) }
        guard maximumWaitingDevices >= 1 else { throw .invalid("maximumWaitingDevices", "must be at least 1") }
        try requireDuration(checkInTimeoutSeconds, "checkInTimeoutSeconds", in: 0.001...300)
        guard !instance.isEmpty, instance.utf8.count <= 255 else { throw .invalid("instance", "must be 1...255 bytes") }
        try requireDuration(shutdownGraceSeconds, "shutdownGraceSeconds", in: 0...300)
        guard (1...1_000_000).contains(maximumConnectionsPerAddress) else { throw .invalid("maximumConnectionsPerAddress", "must be in 1...1000000") }
        try requireDuration(keepaliveSeconds, "keepaliveSeconds", in: 1...3600)
        try requireDuration(keepaliveTimeoutSeconds, "keepaliveTimeoutSeconds", in: 1...600)
        guard (1...1_000_000).contains(maximumStreamsPerConnection) else { throw .invalid("maximumStreamsPerConnection", "must be in 1...1000000") }
        guard enrolmentsPerSecond.isFinite, (0.01...100_000).contains(enrolmentsPerSecond) else {
            throw .invalid("enrolmentsPerSecond", "must be in 0.01...100000")
        }
        try rounds.validate()
    }
}

/// How the aggregator forms and runs rounds.
public struct RoundPolicy: Sendable, Codable, Equatable {
    /// A name for what the rounds aggregate, sent to devices in the assignment.
    public var task = "default"
    /// m: elements per device vector.
    public var dimension = 1000
    /// b: inputs and the sum are integers modulo 2^b.
    public var bitWidth = 32
    /// The mask expansion cipher: "aes-128-ctr" or "chacha20".
    public var prg = PRGAlgorithm.aes128CTR
    /// "active" (the default, and what a device's default policy requires) or "honest-but-curious".
    public var threatModel = ThreatModel.active
    /// Fewest devices a round starts with.
    public var minimumCohort = 10
    /// Most devices one round takes; further devices wait for the next round.
    public var maximumCohort = 1000
    /// How long to gather devices after the first one waits before starting with at least
    /// `minimumCohort`, in seconds.
    public var gatherSeconds = 2.0
    /// How long each phase waits for answers before continuing with those that arrived, in seconds.
    public var phaseTimeoutSeconds = 30.0
    /// How long a device may wait without being placed in a round before it is told to come back.
    public var maximumWaitSeconds = 300.0
    /// The dropout fraction the graph and threshold are planned for.
    public var expectedDropout = 0.05
    /// The fraction of devices assumed to collude with the server.
    public var corruptFraction = 0.0
    /// log2 of the candidate placements an active server could try before revealing one (SPEC.md
    /// §5.1): active rounds on a sparse graph are planned for 2^-(40 + this); it must be at least
    /// what the fleet's device policy assumes (both default to 40).
    public var placementGrindingBits = CohortAssumptions.defaultPlacementGrindingBits
    /// "auto" (SecAgg+ where it is cheaper, chosen by the parameter finder), "complete" (SecAgg) or
    /// "harary" with explicit `degree` and `threshold`.
    public var graph = "auto"
    /// Explicit Harary degree when `graph` is "harary".
    public var degree: Int?
    /// Explicit threshold (with "complete" or "harary"); the finder picks it when absent.
    public var threshold: Int?
    /// Rounds that may run at once.
    public var maximumConcurrentRounds = 4
    /// When set, rounds aggregate this feature set: the vector's length and bit width come from
    /// its layout, each round names one open window in its task (one its devices offered), and
    /// finished rounds add into that window's stored result.
    public var featureSet: FeatureSet?
    /// The tumbling window length in seconds (UTC), for feature rounds.
    public var windowSeconds = 3600
    /// How long after a window closes rounds still run for it (SPEC.md §12.1), so that an
    /// aggregator outage or an offline device delays a window's contributions instead of losing
    /// them. Nil: one day or one window, whichever is longer. At least one window.
    public var windowHorizonSeconds: Int?
    /// A window's values are released only once at least this many devices contributed to it,
    /// and released again only once at least this many more did (SPEC.md §12.1); the same
    /// minimum applies to a plain round's sum. At least ``minimumReleaseCohortFloor``.
    public var minimumReleaseCohort = 100
    /// The smallest ``minimumReleaseCohort`` the configuration accepts: below it one release,
    /// or the difference of two, is the sum of a handful of devices.
    public static let minimumReleaseCohortFloor = 10

    /// Creates the default policy.
    public init() {}

    /// Decodes a policy, filling absent keys with defaults.
    public init(from decoder: any Decoder) throws {
        try refuseUnknownKeys(decoder, known: CodingKeys.self, in: "rounds.")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RoundPolicy()
        task = try c.decodeIfPresent(String.self, forKey: .task) ?? d.task
        dimension = try c.decodeIfPresent(Int.self, forKey: .dimension) ?? d.dimension
        bitWidth = try c.decodeIfPresent(Int.self, forKey: .bitWidth) ?? d.bitWidth
        prg = try c.decodeIfPresent(PRGAlgorithm.self, forKey: .prg) ?? d.prg
        threatModel = try c.decodeIfPresent(ThreatModel.self, forKey: .threatModel) ?? d.threatModel
        minimumCohort = try c.decodeIfPresent(Int.self, forKey: .minimumCohort) ?? d.minimumCohort
        maximumCohort = try c.decodeIfPresent(Int.self, forKey: .maximumCohort) ?? d.maximumCohort
        gatherSeconds = try c.decodeIfPresent(Double.self, forKey: .gatherSeconds) ?? d.gatherSeconds
        phaseTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .phaseTimeoutSeconds) ?? d.phaseTimeoutSeconds
        maximumWaitSeconds = try c.decodeIfPresent(Double.self, forKey: .maximumWaitSeconds) ?? d.maximumWaitSeconds
        expectedDropout = try c.decodeIfPresent(Double.self, forKey: .expectedDropout) ?? d.expectedDropout
        corruptFraction = try c.decodeIfPresent(Double.self, forKey: .corruptFraction) ?? d.corruptFraction
        placementGrindingBits = try c.decodeIfPresent(Double.self, forKey: .placementGrindingBits) ?? d.placementGrindingBits
        graph = try c.decodeIfPresent(String.self, forKey: .graph) ?? d.graph
        degree = try c.decodeIfPresent(Int.self, forKey: .degree)
        threshold = try c.decodeIfPresent(Int.self, forKey: .threshold)
        maximumConcurrentRounds = try c.decodeIfPresent(Int.self, forKey: .maximumConcurrentRounds) ?? d.maximumConcurrentRounds
        featureSet = try c.decodeIfPresent(FeatureSet.self, forKey: .featureSet)
        windowSeconds = try c.decodeIfPresent(Int.self, forKey: .windowSeconds) ?? d.windowSeconds
        windowHorizonSeconds = try c.decodeIfPresent(Int.self, forKey: .windowHorizonSeconds)
        minimumReleaseCohort = try c.decodeIfPresent(Int.self, forKey: .minimumReleaseCohort) ?? d.minimumReleaseCohort
    }

    /// The layout of `featureSet`, when set and valid.
    public var featureLayout: FeatureLayout? {
        guard let featureSet else { return nil }
        return try? FeatureLayout(featureSet)
    }

    /// m for every round: the feature layout's when there is a feature set.
    public var effectiveDimension: Int { featureLayout?.dimension ?? dimension }

    /// How long a round's lease lasts, in seconds of the store's clock (SPEC.md §12.3): the
    /// phase timeout, kept within 5...60 s. The instance renews it every third of that; a round
    /// whose instance stops renewing loses its claims to other rounds within one lease.
    public var leaseSeconds: Double { min(max(phaseTimeoutSeconds, 5), 60) }

    /// How long a window claim of a round without a history row reserves its device: twice the
    /// longest a round can run. Rounds with a row are governed by their lease instead.
    public var claimLifetimeSeconds: Double { 2 * Double(Phase.allCases.count + 1) * phaseTimeoutSeconds }

    /// How long after it closes a window stays open for rounds, in seconds.
    public var effectiveWindowHorizonSeconds: Int { windowHorizonSeconds ?? max(86_400, windowSeconds) }

    /// The most recent window that has closed at `now`.
    public func latestClosedWindow(at now: Date) -> Int {
        FeatureSet.windowStart(of: Int(now.timeIntervalSince1970.rounded(.down)), windowSeconds: windowSeconds) - windowSeconds
    }

    /// Whether window `start` is open for rounds at `now`: aligned, closed, and closed for less
    /// than the horizon.
    public func isOpen(window start: Int, at now: Date) -> Bool {
        let seconds = Int(now.timeIntervalSince1970.rounded(.down))
        guard start >= 0, start % windowSeconds == 0, start <= Int.max - windowSeconds - effectiveWindowHorizonSeconds else { return false }
        let end = start + windowSeconds
        return end <= seconds && seconds < end + effectiveWindowHorizonSeconds
    }

    /// b for every round: the feature set's when there is one.
    public var effectiveBitWidth: Int { featureSet?.bitWidth ?? bitWidth }

    /// Refuses inconsistent settings, naming the field.
    public func validate() throws(AggregatorConfigurationError) {
        guard !task.isEmpty, task.utf8.count <= 1024 else { throw .invalid("rounds.task", "must be 1...1024 bytes") }
        guard dimension >= 1, dimension <= 1 << 26 else { throw .invalid("rounds.dimension", "must be in 1...\(1 << 26)") }
        guard (1...64).contains(bitWidth) else { throw .invalid("rounds.bitWidth", "must be in 1...64") }
        guard minimumCohort >= 3 else { throw .invalid("rounds.minimumCohort", "must be at least 3") }
        guard maximumCohort >= minimumCohort else { throw .invalid("rounds.maximumCohort", "must be at least minimumCohort (\(minimumCohort))") }
        // Every duration is bounded, so none overflows when converted to milliseconds or a
        // Duration (an infinite phase timeout used to crash the first round).
        try requireDuration(gatherSeconds, "rounds.gatherSeconds", in: 0...86_400)
        try requireDuration(phaseTimeoutSeconds, "rounds.phaseTimeoutSeconds", in: 0.001...3_600)
        try requireDuration(maximumWaitSeconds, "rounds.maximumWaitSeconds", in: 0.001...86_400)
        guard (0..<1).contains(expectedDropout) else { throw .invalid("rounds.expectedDropout", "must be in [0, 1)") }
        guard (0..<0.5).contains(corruptFraction) else { throw .invalid("rounds.corruptFraction", "must be in [0, 0.5)") }
        guard (0...128).contains(placementGrindingBits) else { throw .invalid("rounds.placementGrindingBits", "must be in 0...128") }
        guard maximumConcurrentRounds >= 1 else { throw .invalid("rounds.maximumConcurrentRounds", "must be at least 1") }
        if let featureSet {
            do { _ = try FeatureLayout(featureSet) } catch { throw .invalid("rounds.featureSet.\(error.field)", error.reason) }
            if let privacy = featureSet.privacy, minimumCohort < privacy.minimumSurvivors {
                throw .invalid("rounds.minimumCohort", "must be at least the feature set's privacy.minimumSurvivors (\(privacy.minimumSurvivors)): smaller rounds could never release")
            }
            guard maximumCohort <= featureSet.maximumCohort else {
                throw .invalid("rounds.maximumCohort", "must not exceed the feature set's maximumCohort (\(featureSet.maximumCohort)), which its overflow check assumes")
            }
            guard windowSeconds >= 1, 86_400 % windowSeconds == 0 || windowSeconds % 86_400 == 0 else {
                throw .invalid("rounds.windowSeconds", "must divide a day or be a whole number of days, got \(windowSeconds)")
            }
            if let horizon = windowHorizonSeconds {
                guard horizon >= windowSeconds, horizon <= 366 * 86_400 else {
                    throw .invalid("rounds.windowHorizonSeconds", "must be at least one window (\(windowSeconds) s) and at most 366 days, got \(horizon)")
                }
            }
        }
        guard minimumReleaseCohort >= Self.minimumReleaseCohortFloor else {
            throw .invalid(
                "rounds.minimumReleaseCohort",
                "must be at least \(Self.minimumReleaseCohortFloor), got \(minimumReleaseCohort): a release, or the difference of two releases of a window, must be the sum of at least that many devices")
        }
        switch graph {
        case "auto":
            guard degree == nil, threshold == nil else { throw .invalid("rounds.graph", "\"auto\" chooses degree and threshold; use \"harary\" or \"complete\" to set them") }
        case "complete":
            guard degree == nil else { throw .invalid("rounds.degree", "the complete graph has degree n - 1") }
        case "harary":
            guard degree != nil else { throw .invalid("rounds.degree", "\"harary\" needs an explicit degree") }
        default:
            throw .invalid("rounds.graph", "must be \"auto\", \"complete\" or \"harary\", got \"\(graph)\"")
        }
        // The largest cohort must be plannable: this runs the same checks a round will.
        _ = try parameters(forCohortOf: maximumCohort)
    }

    /// The graph and threshold for a round of `n` devices.
    public func parameters(forCohortOf n: Int) throws(AggregatorConfigurationError) -> (graph: GraphKind, threshold: Int) {
        let assumptions = CohortAssumptions(
            cohortSize: n, dropoutFraction: expectedDropout, corruptFraction: corruptFraction, threatModel: threatModel,
            placementGrindingBits: placementGrindingBits)
        do {
            switch graph {
            case "complete":
                if let threshold {
                    _ = try ParameterFinder.validate(degree: n - 1, threshold: threshold, for: assumptions)
                    return (.complete, threshold)
                }
                let p = try ParameterFinder.find(degree: n - 1, for: assumptions)
                return (.complete, p.threshold)
            case "harary":
                let k = degree ?? 0
                if let threshold {
                    _ = try ParameterFinder.validate(degree: k, threshold: threshold, for: assumptions)
                    return (k >= n - 1 ? .complete : .harary(degree: k), threshold)
                }
                let p = try ParameterFinder.find(degree: k, for: assumptions)
                return (p.graph, p.threshold)
            default:
                let p = try ParameterFinder.find(for: assumptions)
                return (p.graph, p.threshold)
            }
        } catch {
            throw .invalid("rounds.graph", "no safe parameters for a cohort of \(n): \(error)")
        }
    }
}

/// A configuration the aggregator refuses to start with.
public enum AggregatorConfigurationError: Error, Equatable, CustomStringConvertible {
    /// `field` is wrong for `reason`.
    case invalid(_ field: String, _ reason: String)

    /// A one-line explanation naming the field.
    public var description: String {
        switch self {
        case let .invalid(field, reason): return "configuration error in \(field): \(reason)"
        }
    }
}

/// Any JSON object key.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Refuses a configuration object with a key `known` does not name, so that a misspelt setting
/// is an error naming it rather than silently left at its default.
private func refuseUnknownKeys<Key: CodingKey>(_ decoder: any Decoder, known: Key.Type, in prefix: String) throws {
    let all = try decoder.container(keyedBy: AnyKey.self)
    if let unknown = all.allKeys.map(\.stringValue).sorted().first(where: { Key(stringValue: $0) == nil }) {
        throw AggregatorConfigurationError.invalid(prefix + unknown, "unknown setting (README.md, \"Configuring the aggregator\", lists them)")
    }
}

/// Refuses a duration in seconds that is not finite or lies outside `range`, naming the field.
func requireDuration(_ seconds: Double, _ name: String, in range: ClosedRange<Double>) throws(AggregatorConfigurationError) {
    guard seconds.isFinite, range.contains(seconds) else {
        throw .invalid(name, "must be a number of seconds in \(range.lowerBound)...\(range.upperBound), got \(seconds)")
    }
}
