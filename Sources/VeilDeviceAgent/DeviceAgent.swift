public import Foundation
public import Logging
import VeilCrypto
import VeilDevice
import VeilFeatures
public import VeilProtocol

/// The `veil-device` agent over one state directory (``AgentState``): enrols once, learns the
/// feature sets it may follow from the aggregator (SPEC.md §12.5), records observations by
/// feature name against the newest accepted version, and takes part in the rounds of the set the
/// aggregator's rounds aggregate.
public struct DeviceAgent: Sendable {
    /// The state directory.
    public let state: AgentState
    let logger: Logger

    /// An agent over `directory`.
    public init(directory: String, logger: Logger = Logger(label: "veil.device")) {
        state = AgentState(directory: directory)
        self.logger = logger
    }

    // MARK: Enrolment

    /// Enrols with `token` at `host:port`, trusting the CA at `caPath` (copied into the state
    /// directory). Idempotent: an agent already enrolled at the same aggregator returns its device
    /// id without using the token; one enrolled elsewhere is refused.
    public func enrol(host: String, port: Int, caPath: String, token: String, policy: DevicePolicy = DevicePolicy()) async throws(AgentError) -> String {
        try state.prepare()
        if let existing = try? state.configuration() {
            guard existing.host == host, existing.port == port else {
                throw .enrolmentConflict("this state directory is enrolled at \(existing.host):\(existing.port) as \(existing.deviceID); use another directory for another aggregator")
            }
            return existing.deviceID
        }
        guard let ca = FileManager.default.contents(atPath: caPath) else { throw .state("cannot read the CA certificate \(caPath)") }
        try state.writeAtomically(ca, to: state.caPath)
        let identity: DeviceIdentity
        do { identity = try DeviceIdentity.loadOrCreate(at: state.identityPath) } catch { throw .state("\(error)") }
        let endpoint = AggregatorEndpoint(host: host, port: port, security: .tls(caCertificatePath: state.caPath))
        let deviceID: String
        do {
            deviceID = try await withAggregatorConnection(to: endpoint) { connection in
                let device = VeilDevice(identity: identity, policy: DevicePolicy(), signedRounds: .inMemory(), connection: connection, logger: logger)
                do { return try await device.enrol(token: token) } catch let DeviceError.rejected(code, message) where code == "alreadyExists" {
                    throw AgentError.enrolmentConflict("the aggregator already knows this identity: \(message)")
                }
            }
        } catch let error as AgentError {
            throw error
        } catch {
            throw .aggregator("\(error)")
        }
        try state.save(AgentConfiguration(
            host: host, port: port, deviceID: deviceID, enrolledAt: Date().timeIntervalSince1970, retentionSeconds: 7 * 86_400,
            maximumDimension: FeatureSetPolicy().maximumDimension, allowedKinds: FeatureSetPolicy().allowedKinds.sorted(), requirePrivacy: false,
            minimumCohort: policy.minimumCohort, assumedDropout: policy.assumedDropout, assumedCorruptFraction: policy.assumedCorruptFraction,
            requiredThreatModel: policy.requiredThreatModel.rawValue))
        // Learn the feature sets now, so that observations can be recorded before the daemon runs.
        do { try await synchroniseFeatureSets() } catch {
            logger.warning("enrolled, but the feature sets could not be fetched yet; `run` fetches them", metadata: ["error": "\(error)"])
        }
        return deviceID
    }

    // MARK: Recording

    /// One observation as `record --jsonl` and the local socket take it: a feature name, one of
    /// `value`, `category` or `events`, and optionally `at` (seconds since the epoch; default now)
    /// and `featureSet` (needed only when two followed sets share the feature name).
    public struct ObservationRecord: Codable, Sendable, Equatable {
        /// The feature.
        public var feature: String
        /// A numeric or histogram value.
        public var value: Double?
        /// A categorical value.
        public var category: String?
        /// Occurrences of an eventCount feature.
        public var events: Int?
        /// When, in seconds since the epoch.
        public var at: Double?
        /// The feature set, when the feature name is ambiguous.
        public var featureSet: String?

        /// Creates a record.
        public init(feature: String, value: Double? = nil, category: String? = nil, events: Int? = nil, at: Double? = nil, featureSet: String? = nil) {
            self.feature = feature
            self.value = value
            self.category = category
            self.events = events
            self.at = at
            self.featureSet = featureSet
        }
    }

    /// Records `records` durably (all of each set's observations in one transaction) and returns
    /// only once they are on disk. Every record is checked first: an unknown or ambiguous
    /// feature, a missing or second value, a value of the wrong kind is refused and nothing of
    /// this call is stored.
    public func record(_ records: [ObservationRecord], now: Date = Date()) throws(AgentError) {
        do { try store(records, now: now) } catch let error as RecordError {
            throw .observation(records.count > 1 ? "record \(error.index + 1): \(error.reason)" : error.reason)
        } catch let error as AgentError {
            throw error
        } catch {
            throw .observation("\(error)")
        }
    }

    /// Why record `index` (0-based) of a batch was refused.
    struct RecordError: Error {
        let index: Int
        let reason: String
    }

    /// ``record(_:now:)``: checks every record, then writes them in one transaction per feature
    /// set. Throws the first bad record's ``RecordError``, or with `keepingGoodOnes` stores the
    /// good records and returns the bad ones.
    @discardableResult
    func store(_ records: [ObservationRecord], now: Date, keepingGoodOnes: Bool = false) throws -> [RecordError] {
        let configuration = try state.configuration()
        let sets = try state.acceptedFeatureSets().compactMapValues(\.last)
        var bySet: [String: [Observation]] = [:]
        var refused: [RecordError] = []
        for (i, r) in records.enumerated() {
            do throws(InvalidRecord) {
                let (set, observation) = try Self.observation(r, in: sets, now: now)
                bySet[set, default: []].append(observation)
            } catch {
                guard keepingGoodOnes else { throw RecordError(index: i, reason: error.reason) }
                refused.append(RecordError(index: i, reason: error.reason))
            }
        }
        let windowSeconds = try roundsWindowSeconds()
        for (name, observations) in bySet.sorted(by: { $0.key < $1.key }) {
            let store = try state.observations(sets[name]!, windowSeconds: windowSeconds[name] ?? 3600, retention: configuration.retentionSeconds)
            do { try store.record(observations) } catch { throw AgentError.observation("\(error)") }
        }
        return refused
    }

    /// Why one record cannot be stored.
    struct InvalidRecord: Error {
        let reason: String
    }

    /// The feature set `r` belongs to and its observation, or why it is refused: an unknown or
    /// ambiguous feature, a missing or second value, a value of the wrong kind or out of range.
    static func observation(_ r: ObservationRecord, in sets: [String: FeatureSet], now: Date) throws(InvalidRecord) -> (String, Observation) {
        func refuse(_ reason: String) -> InvalidRecord { InvalidRecord(reason: reason) }
        let candidates = sets.values.filter { set in set.features.contains { $0.name == r.feature } && (r.featureSet == nil || r.featureSet == set.name) }
        guard let set = candidates.first else { throw refuse("no followed feature set has a feature \"\(r.feature)\"\(r.featureSet.map { " in \($0)" } ?? "")") }
        guard candidates.count == 1 else { throw refuse("feature \"\(r.feature)\" is in \(candidates.map(\.name).sorted()); say which with featureSet") }
        let kind = set.features.first { $0.name == r.feature }!.kind
        guard [r.value != nil, r.category != nil, r.events != nil].filter({ $0 }).count == 1 else {
            throw refuse("give exactly one of value, category and events")
        }
        guard r.at.map({ $0.isFinite }) ?? true else { throw refuse("at must be a finite number of seconds") }
        let date = r.at.map(Date.init(timeIntervalSince1970:)) ?? now
        guard abs(date.timeIntervalSince(now)) <= 366 * 86_400 else { throw refuse("at must be within a year of now") }
        switch (kind, r.value, r.category, r.events) {
        case (.numeric, let value?, nil, nil), (.histogram, let value?, nil, nil):
            guard value.isFinite else { throw refuse("value must be a finite number") }
            return (set.name, .value(feature: r.feature, value, at: date))
        case (.categorical, nil, let category?, nil):
            guard !category.isEmpty, category.utf8.count <= 256 else { throw refuse("category must be 1...256 bytes") }
            return (set.name, .category(feature: r.feature, category, at: date))
        case (.eventCount, nil, nil, let events?):
            guard events >= 0, events <= 1_000_000 else { throw refuse("events must be in 0...1000000") }
            return (set.name, .events(feature: r.feature, count: events, at: date))
        default:
            throw refuse("feature \"\(r.feature)\" of \(set.name) takes \(Self.expectation(kind)), not what was given")
        }
    }

    static func expectation(_ kind: Feature.Kind) -> String {
        switch kind {
        case .numeric, .histogram: return "a value"
        case .categorical: return "a category"
        case .eventCount: return "events"
        }
    }

    /// The window length of each followed set: what the aggregator announced, kept with the
    /// definition (3600 when unknown).
    func roundsWindowSeconds() throws(AgentError) -> [String: Int] {
        guard let data = FileManager.default.contents(atPath: state.directory + "/feature-sets/windows.json") else { return [:] }
        return (try? JSONDecoder().decode([String: Int].self, from: data)) ?? [:]
    }
}
