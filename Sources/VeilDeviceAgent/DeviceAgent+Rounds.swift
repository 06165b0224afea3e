public import Foundation
import Logging
import VeilCrypto
public import VeilDevice
public import VeilFeatures
import VeilProtocol
#if canImport(Glibc)
import Glibc
#endif

extension DeviceAgent {
    /// The agent's feature-set policy, from `agent.json`.
    func policy(_ configuration: AgentConfiguration) -> FeatureSetPolicy {
        FeatureSetPolicy(maximumDimension: configuration.maximumDimension, allowedKinds: Set(configuration.allowedKinds), requirePrivacy: configuration.requirePrivacy)
    }

    /// The device policy of `agent.json` (SPEC.md §13.1).
    func devicePolicy(_ configuration: AgentConfiguration) throws(AgentError) -> DevicePolicy {
        guard let threatModel = ThreatModel(rawValue: configuration.requiredThreatModel) else {
            throw .state("agent.json: requiredThreatModel must be \"active\" or \"honest-but-curious\", got \"\(configuration.requiredThreatModel)\"")
        }
        return DevicePolicy(
            requiredThreatModel: threatModel, minimumCohort: configuration.minimumCohort, assumedDropout: configuration.assumedDropout,
            assumedCorruptFraction: configuration.assumedCorruptFraction)
    }

    /// Opens a device over the state's identity, CA and round ledger and runs `body` with it.
    func withDevice<T: Sendable>(_ body: @Sendable (VeilDevice) async throws -> T) async throws(AgentError) -> T {
        let configuration = try state.configuration()
        let identity: DeviceIdentity
        let ledger: SignedRoundLedger
        do {
            identity = try DeviceIdentity.loadOrCreate(at: state.identityPath)
            ledger = try SignedRoundLedger(at: state.ledgerPath)
        } catch { throw .state("\(error)") }
        let endpoint = AggregatorEndpoint(host: configuration.host, port: configuration.port, security: .tls(caCertificatePath: state.caPath))
        let logger = self.logger
        let policy = try devicePolicy(configuration)
        do {
            return try await withAggregatorConnection(to: endpoint) { connection in
                try await body(VeilDevice(identity: identity, policy: policy, signedRounds: ledger, connection: connection, logger: logger))
            }
        } catch let error as AgentError {
            throw error
        } catch {
            throw .aggregator("\(error)")
        }
    }

    /// Fetches the definitions the aggregator serves, keeps those the policy accepts and records
    /// the refusals (with their reasons) for `status`. Returns the accepted sets the aggregator's
    /// rounds aggregate now.
    @discardableResult
    public func synchroniseFeatureSets() async throws(AgentError) -> [FeatureSet] {
        let configuration = try state.configuration()
        let policy = self.policy(configuration)
        let served = try await withDevice { device in try await device.featureSets(policy: policy) }
        var refusals: [Refusal] = []
        var windows = try roundsWindowSeconds()
        var rounds: [FeatureSet] = []
        for entry in served {
            switch entry.decision {
            case let .accepted(layout):
                do { try state.accept(layout.featureSet) } catch let .definitionChanged(why) {
                    refusals.append(Refusal(name: entry.name, version: entry.version, reason: why))
                    logger.error("feature set refused", metadata: ["featureSet": "\(entry.name) v\(entry.version)", "reason": "\(why)"])
                    continue
                }
                windows[entry.name] = entry.windowSeconds
                if entry.rounds { rounds.append(layout.featureSet) }
            case let .refused(reason):
                refusals.append(Refusal(name: entry.name, version: entry.version, reason: reason))
                logger.warning("feature set refused by this device's policy", metadata: ["featureSet": "\(entry.name) v\(entry.version)", "reason": "\(reason)"])
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try state.writeAtomically((try? encoder.encode(refusals)) ?? Data(), to: state.refusalsPath)
        try state.writeAtomically((try? encoder.encode(windows)) ?? Data(), to: state.directory + "/feature-sets/windows.json")
        return rounds
    }

    /// A definition the device refused.
    public struct Refusal: Codable, Sendable, Equatable {
        /// The set.
        public let name: String
        /// The version.
        public let version: Int
        /// Why.
        public let reason: String
    }

    /// Takes part in one round of `set` (the window the aggregator names among those the device
    /// offers), logs the outcome to `rounds.jsonl` and purges observations past retention.
    public func participate(in set: FeatureSet, now: Date = Date()) async throws(AgentError) -> RoundParticipation {
        let configuration = try state.configuration()
        let store = try state.observations(set, windowSeconds: try roundsWindowSeconds()[set.name] ?? 3600, retention: configuration.retentionSeconds)
        let result = try await withDevice { device in try await device.participateInFeatureRound(store: store) }
        do { try store.purge(now: now) } catch { logger.warning("cannot purge old observations", metadata: ["error": "\(error)"]) }
        let entry = RoundLogEntry(
            at: now.timeIntervalSince1970, featureSet: "\(set.name)/v\(set.version)", task: result.task, outcome: "\(result.outcome)", reason: result.reason)
        appendRoundLog(entry)
        return result
    }

    /// glibc's `malloc_trim(0)`, looked up at run time (Swift's Glibc module does not export
    /// `malloc.h`): returns freed heap pages to the system.
    static func returnFreedHeap() {
        #if canImport(Glibc)
        typealias MallocTrim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        #endif
    }

    /// One line of `rounds.jsonl`.
    public struct RoundLogEntry: Codable, Sendable, Equatable {
        /// When (seconds since the epoch).
        public let at: Double
        /// The set and version.
        public let featureSet: String
        /// The task the aggregator named.
        public let task: String?
        /// How it ended.
        public let outcome: String
        /// The aggregator's or the device's reason.
        public let reason: String
    }

    /// Appends `entry`, keeping the last 50 lines.
    func appendRoundLog(_ entry: RoundLogEntry) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let line = try? encoder.encode(entry) else { return }
        let previous = (FileManager.default.contents(atPath: state.roundsLogPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let lines = previous.split(separator: "\n").suffix(49).map(String.init) + [String(decoding: line, as: UTF8.self)]
        try? state.writeAtomically(Data((lines.joined(separator: "\n") + "\n").utf8), to: state.roundsLogPath)
    }

    /// Runs until the task is cancelled (SIGTERM through ServiceLifecycle): synchronises the
    /// feature sets every `refreshInterval`, takes part in the rounds of the set the aggregator
    /// aggregates, and after a failure waits with exponential backoff and full jitter (1 s up to
    /// `maximumBackoff`). A round in flight when the task is cancelled is abandoned, a dropout to
    /// the aggregator; every observation recorded stays in the store.
    public func run(refreshInterval: Duration = .seconds(600), maximumBackoff: Duration = .seconds(300)) async {
        var failures = 0
        var lastRefresh: ContinuousClock.Instant?
        var roundSets: [FeatureSet] = []
        var generator = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            var wait = Duration.seconds(1)
            do {
                if lastRefresh.map({ ContinuousClock.now - $0 > refreshInterval }) ?? true {
                    roundSets = try await synchroniseFeatureSets()
                    lastRefresh = .now
                }
                if let set = roundSets.last {
                    let result = try await participate(in: set)
                    // A round's vectors are freed by now; hand the heap they used back to the
                    // system, so that an idle agent holds what it needs and not its last round's peak.
                    Self.returnFreedHeap()
                    logger.info("round", metadata: ["outcome": "\(result.outcome)", "task": "\(result.task ?? "-")"])
                    if case let .noRound(retry) = result.outcome { wait = .milliseconds(Int64(min(retry, 3_600_000))) }
                } else {
                    wait = refreshInterval
                }
                failures = 0
            } catch {
                // A shutdown cancels the round in flight: that is the dropout it should be, not a failure.
                if Task.isCancelled { break }
                failures += 1
                let ceiling = min(Double(maximumBackoff.components.seconds), pow(2, Double(min(failures, 16))))
                wait = .milliseconds(Int64(Double.random(in: 0...ceiling, using: &generator) * 1000) + 500)
                logger.warning("attempt failed; backing off", metadata: ["error": "\(error)", "wait": "\(wait)"])
                lastRefresh = nil
            }
            try? await Task.sleep(for: wait)
        }
    }
}
