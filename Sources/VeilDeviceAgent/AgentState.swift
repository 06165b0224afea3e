import Foundation
import VeilDevice
import VeilFeatures

/// The state directory of a `veil-device` agent (default `/var/lib/veil-device`, mode 0700, or
/// 0710 so that the ingest socket's group can reach `ingest.sock`):
///
///     agent.json                   where to reach the aggregator and the device id
///     identity.key                 the Ed25519 seed (0600, VeilDevice.DeviceIdentity)
///     ca.pem                       the CA that signed the aggregator's certificate
///     signed-rounds.ledger         round ids signed in (SPEC.md §13.2)
///     feature-sets/NAME/vN.json    definitions accepted under the agent's policy
///     refused-feature-sets.json    definitions refused, with the reason
///     observations/NAME-vN.sqlite  raw observations and counted windows (ObservationStore)
///     rounds.jsonl                 the last rounds and their outcomes
///     ingest.sock                  the local ingest socket while `run` runs (0660)
///     run.lock                     held (flock) while a round loop runs (RunLock)
public struct AgentState: Sendable {
    /// The directory.
    public let directory: String

    /// The state at `directory` (nothing is read or created).
    public init(directory: String) { self.directory = directory }

    /// The default state directory.
    public static let defaultDirectory = "/var/lib/veil-device"

    var configurationPath: String { directory + "/agent.json" }
    var identityPath: String { directory + "/identity.key" }
    var caPath: String { directory + "/ca.pem" }
    var ledgerPath: String { directory + "/signed-rounds.ledger" }
    var refusalsPath: String { directory + "/refused-feature-sets.json" }
    var roundsLogPath: String { directory + "/rounds.jsonl" }

    /// Creates the directory (and its subdirectories) with mode 0700, or checks an existing one
    /// is not open to group or others.
    func prepare() throws(AgentError) {
        let manager = FileManager.default
        for path in [directory, directory + "/feature-sets", directory + "/observations"] {
            var isDirectory: ObjCBool = false
            if manager.fileExists(atPath: path, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw .state("\(path) is not a directory") }
                continue
            }
            do { try manager.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                throw .state("cannot create \(path): \(error.localizedDescription)")
            }
        }
        guard let attributes = try? manager.attributesOfItem(atPath: directory), let mode = attributes[.posixPermissions] as? Int else {
            throw .state("cannot read the mode of \(directory)")
        }
        // Group members may traverse it (0710) to reach the ingest socket; nothing more.
        guard mode & 0o067 == 0 else { throw .state("\(directory) has mode \(String(mode, radix: 8)); it must not be readable or writable by group or open to others (chmod 700, or 710 for the ingest socket's group)") }
    }

    /// Writes `data` to `path` durably: a temporary file, fsync, then rename over the target.
    func writeAtomically(_ data: Data, to path: String) throws(AgentError) {
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: temporary) else { throw .state("cannot write \(temporary)") }
        do {
            try handle.synchronize()
            try handle.close()
        } catch { throw .state("cannot flush \(temporary): \(error.localizedDescription)") }
        guard rename(temporary, path) == 0 else { throw .state("cannot rename \(temporary) to \(path)") }
    }

    /// The agent's configuration, once enrolled.
    func configuration() throws(AgentError) -> AgentConfiguration {
        guard let data = FileManager.default.contents(atPath: configurationPath) else {
            throw .notEnrolled("no \(configurationPath): run `veil-device enrol` first")
        }
        do { return try JSONDecoder().decode(AgentConfiguration.self, from: data) } catch { throw .state("\(configurationPath) does not parse: \(error)") }
    }

    /// Saves `configuration`.
    func save(_ configuration: AgentConfiguration) throws(AgentError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try writeAtomically((try? encoder.encode(configuration)) ?? Data(), to: configurationPath)
    }

    // MARK: Feature sets

    /// The accepted definitions, each set's versions in ascending order.
    func acceptedFeatureSets() throws(AgentError) -> [String: [FeatureSet]] {
        let root = directory + "/feature-sets"
        var result: [String: [FeatureSet]] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        for name in names.sorted() {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + name)) ?? []
            for file in files where file.hasPrefix("v") && file.hasSuffix(".json") {
                guard let data = FileManager.default.contents(atPath: "\(root)/\(name)/\(file)") else { continue }
                do { result[name, default: []].append(try JSONDecoder().decode(FeatureSet.self, from: data)) } catch {
                    throw .state("\(root)/\(name)/\(file) does not parse: \(error)")
                }
            }
            result[name]?.sort { $0.version < $1.version }
        }
        return result
    }

    /// Keeps an accepted definition. A version never changes (SPEC.md §12): a different copy of
    /// a version already kept is refused.
    func accept(_ set: FeatureSet) throws(AgentError) {
        let folder = directory + "/feature-sets/" + set.name
        let path = "\(folder)/v\(set.version).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        if let existing = FileManager.default.contents(atPath: path) {
            guard (try? JSONDecoder().decode(FeatureSet.self, from: existing)) == set else {
                throw .definitionChanged("\(set.name) v\(set.version) differs from the copy this device accepted; a version never changes")
            }
            return
        }
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw .state("cannot create \(folder)")
        }
        try writeAtomically((try? encoder.encode(set)) ?? Data(), to: path)
    }

    /// The observation store of `set` (created on first use).
    func observations(_ set: FeatureSet, windowSeconds: Int, retention: TimeInterval) throws(AgentError) -> ObservationStore {
        do {
            return try ObservationStore(
                path: "\(directory)/observations/\(set.name)-v\(set.version).sqlite", layout: FeatureLayout(set),
                windowSeconds: windowSeconds, retention: retention)
        } catch { throw .state("cannot open the observations of \(set.name) v\(set.version): \(error)") }
    }
}

/// What `agent.json` holds.
public struct AgentConfiguration: Codable, Sendable, Equatable {
    /// The aggregator's device endpoint host.
    public var host: String
    /// Its port.
    public var port: Int
    /// The id the aggregator gave this device.
    public var deviceID: String
    /// When the device enrolled (seconds since the epoch).
    public var enrolledAt: Double
    /// How long raw observations are kept, in seconds (default 7 days).
    public var retentionSeconds: Double
    /// The feature-set policy: the largest vector length accepted.
    public var maximumDimension: Int
    /// The feature kinds recorded.
    public var allowedKinds: [String]
    /// Whether definitions must carry differential privacy.
    public var requirePrivacy: Bool
    /// The device policy (SPEC.md §13.1): the smallest cohort joined.
    public var minimumCohort: Int
    /// The dropout fraction δ the device assumes when it checks (k, t).
    public var assumedDropout: Double
    /// The corrupt fraction γ it assumes.
    public var assumedCorruptFraction: Double
    /// The weakest threat model accepted: "active" or "honest-but-curious".
    public var requiredThreatModel: String
}

/// Why an agent command failed.
public enum AgentError: Error, CustomStringConvertible, Equatable {
    /// The state directory is unusable.
    case state(String)
    /// The device has not enrolled yet.
    case notEnrolled(String)
    /// Enrolment conflicts with the state (another aggregator, another identity).
    case enrolmentConflict(String)
    /// The aggregator refused or could not be reached.
    case aggregator(String)
    /// An observation was refused; nothing from it was stored.
    case observation(String)
    /// A definition the device accepted before came back different.
    case definitionChanged(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .state(why): return "state directory: \(why)"
        case let .notEnrolled(why): return "not enrolled: \(why)"
        case let .enrolmentConflict(why): return "enrolment: \(why)"
        case let .aggregator(why): return "aggregator: \(why)"
        case let .observation(why): return "observation refused: \(why)"
        case let .definitionChanged(why): return "feature set: \(why)"
        }
    }
}
