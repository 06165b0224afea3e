public import Foundation
import VeilCrypto
import VeilDevice
import VeilFeatures

extension DeviceAgent {
    /// What `veil-device status` shows.
    public struct Status: Codable, Sendable {
        /// One followed feature set.
        public struct FollowedSet: Codable, Sendable {
            /// Its name.
            public let name: String
            /// The newest accepted version (observations are recorded against it).
            public let version: Int
            /// Window length, seconds.
            public let windowSeconds: Int
            /// Raw observations held.
            public let observations: Int
            /// Closed windows not yet contributed, oldest first.
            public let pendingWindows: [Int]
            /// Windows counted in a finished round.
            public let countedWindows: Int
            /// The newest counted window, if any.
            public let lastCountedWindow: Int?
            /// Windows whose input was sent without hearing COUNTED (never contributed again).
            public let spentUnconfirmedWindows: [Int]
        }
        /// The id the aggregator gave the device.
        public let deviceID: String
        /// The start of the identity key, hex.
        public let identityKey: String
        /// host:port.
        public let aggregator: String
        /// Followed sets.
        public let featureSets: [FollowedSet]
        /// Definitions refused, with the reason.
        public let refused: [Refusal]
        /// The last rounds, oldest first.
        public let lastRounds: [RoundLogEntry]
    }

    /// The agent's state, read from its directory (no network).
    public func status(now: Date = Date()) throws(AgentError) -> Status {
        let configuration = try state.configuration()
        let identity: DeviceIdentity
        do { identity = try DeviceIdentity.loadOrCreate(at: state.identityPath) } catch { throw .state("\(error)") }
        let windows = try roundsWindowSeconds()
        var followed: [Status.FollowedSet] = []
        for (name, versions) in try state.acceptedFeatureSets().sorted(by: { $0.key < $1.key }) {
            guard let set = versions.last else { continue }
            let seconds = windows[name] ?? 3600
            let store = try state.observations(set, windowSeconds: seconds, retention: configuration.retentionSeconds)
            do {
                let counted = try store.countedWindows()
                followed.append(Status.FollowedSet(
                    name: name, version: set.version, windowSeconds: seconds, observations: try store.observationCount(),
                    pendingWindows: try store.pendingWindows(now: now), countedWindows: counted.count, lastCountedWindow: counted.last?.window,
                    spentUnconfirmedWindows: try store.spentUnconfirmedWindows()))
            } catch { throw .state("cannot read the observations of \(name): \(error)") }
        }
        let refusals = FileManager.default.contents(atPath: state.refusalsPath).flatMap { try? JSONDecoder().decode([Refusal].self, from: $0) } ?? []
        let rounds = (FileManager.default.contents(atPath: state.roundsLogPath).map { String(decoding: $0, as: UTF8.self) } ?? "")
            .split(separator: "\n").compactMap { try? JSONDecoder().decode(RoundLogEntry.self, from: Data($0.utf8)) }
        return Status(
            deviceID: configuration.deviceID, identityKey: Hex.encode(identity.publicKey.rawRepresentation.prefix(8)),
            aggregator: "\(configuration.host):\(configuration.port)", featureSets: followed, refused: refusals, lastRounds: Array(rounds.suffix(10)))
    }

    /// The status as lines for a person.
    public static func describe(_ status: Status) -> String {
        var lines = ["device \(status.deviceID) (key \(status.identityKey)…), aggregator \(status.aggregator)"]
        if status.featureSets.isEmpty { lines.append("no feature sets followed yet: `veil-device run` fetches them") }
        for set in status.featureSets {
            lines.append("\(set.name) v\(set.version): \(set.observations) observations, \(set.pendingWindows.count) windows pending, \(set.countedWindows) counted"
                + (set.spentUnconfirmedWindows.isEmpty ? "" : ", \(set.spentUnconfirmedWindows.count) sent without hearing the outcome"))
        }
        for refusal in status.refused { lines.append("refused \(refusal.name) v\(refusal.version): \(refusal.reason)") }
        for round in status.lastRounds { lines.append("round \(round.task ?? round.featureSet): \(round.outcome)\(round.reason.isEmpty ? "" : " (\(round.reason))")") }
        return lines.joined(separator: "\n")
    }
}
