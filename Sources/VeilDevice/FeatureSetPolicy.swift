import Foundation
import VeilCrypto
public import VeilFeatures
import VeilTransport
import VeilWire

/// What a device accepts as a feature-set definition learned from its aggregator (SPEC.md
/// §12.5), set by its operator. A definition outside it is refused and reported, never followed
/// quietly: the device would otherwise encode, and contribute, whatever the aggregator defines.
public struct FeatureSetPolicy: Sendable, Hashable {
    /// The largest vector length m the device encodes (default 100,000).
    public var maximumDimension: Int
    /// The largest bit width b (default 64).
    public var maximumBitWidth: Int
    /// The feature kinds the device records (default: all four).
    public var allowedKinds: Set<String>
    /// Whether a definition must carry differential privacy (default false).
    public var requirePrivacy: Bool
    /// With privacy, the largest ε per window the device accepts (default: any).
    public var maximumEpsilonPerWindow: Double?

    /// Creates a policy; every argument has the documented default.
    public init(
        maximumDimension: Int = 100_000, maximumBitWidth: Int = 64,
        allowedKinds: Set<String> = ["numeric", "histogram", "categorical", "eventCount"],
        requirePrivacy: Bool = false, maximumEpsilonPerWindow: Double? = nil
    ) {
        self.maximumDimension = maximumDimension
        self.maximumBitWidth = maximumBitWidth
        self.allowedKinds = allowedKinds
        self.requirePrivacy = requirePrivacy
        self.maximumEpsilonPerWindow = maximumEpsilonPerWindow
    }

    /// The layout of `set` when the device accepts it, or why not.
    public func evaluate(_ set: FeatureSet) -> FeatureSetDecision {
        let layout: FeatureLayout
        do { layout = try FeatureLayout(set) } catch { return .refused("invalid definition: \(error)") }
        guard layout.dimension <= maximumDimension else {
            return .refused("\(layout.dimension) elements, above this device's maximum of \(maximumDimension)")
        }
        guard set.bitWidth <= maximumBitWidth else { return .refused("bit width \(set.bitWidth), above this device's maximum of \(maximumBitWidth)") }
        for feature in set.features {
            let kind = switch feature.kind {
            case .numeric: "numeric"
            case .histogram: "histogram"
            case .categorical: "categorical"
            case .eventCount: "eventCount"
            }
            guard allowedKinds.contains(kind) else { return .refused("feature \"\(feature.name)\" is \(kind), a kind this device does not record") }
        }
        if requirePrivacy, layout.privacy == nil { return .refused("no differential privacy, which this device requires") }
        if let limit = maximumEpsilonPerWindow, let plan = layout.privacy, plan.windowEpsilon > limit {
            return .refused("ε \(plan.windowEpsilon) per window, above this device's maximum of \(limit)")
        }
        return .accepted(layout)
    }
}

/// A device's decision on one definition.
public enum FeatureSetDecision: Sendable, Equatable {
    /// Followed, with its validated layout.
    case accepted(FeatureLayout)
    /// Refused, with the reason (reported to the operator, never silently ignored).
    case refused(String)
}

/// One definition an aggregator served, with the device's decision on it.
public struct ServedFeatureSet: Sendable, Equatable {
    /// The set's name, as the aggregator announced it.
    public let name: String
    /// Its version.
    public let version: Int
    /// The definition, when it parsed.
    public let definition: FeatureSet?
    /// The aggregator's window length for its rounds.
    public let windowSeconds: Int
    /// Whether the aggregator's rounds aggregate it now.
    public let rounds: Bool
    /// Whether the device follows it.
    public let decision: FeatureSetDecision
}

extension VeilDevice {
    /// Fetches the feature-set definitions the aggregator serves (SPEC.md §12.5), signing the
    /// device's clock, and decides on each with `policy`: a definition that does not parse, names
    /// another set or version than announced, or falls outside the policy is refused with the
    /// reason.
    public func featureSets(policy: FeatureSetPolicy = .init()) async throws(DeviceError) -> [ServedFeatureSet] {
        let service = Veil_V1_Aggregator.Client(wrapping: connection.client)
        let timestamp = Int64(clock().timeIntervalSince1970.rounded(.down))
        var request = Veil_V1_FeatureSetsRequest()
        request.identityKey = Data(identity.publicKey.rawRepresentation)
        request.timestamp = timestamp
        request.signature = Data(identity.privateKey.signature(for: TransportStatement.featureSets(timestamp: timestamp)).rawRepresentation)
        let response: Veil_V1_FeatureSetsResponse
        do { response = try await service.featureSets(request) } catch { throw DeviceError.from(error) }
        return response.featureSets.map { served in
            let version = Int(clamping: served.version)
            let windowSeconds = Int(clamping: served.windowSeconds)
            func refused(_ why: String, _ set: FeatureSet? = nil) -> ServedFeatureSet {
                ServedFeatureSet(name: served.name, version: version, definition: set, windowSeconds: windowSeconds, rounds: served.rounds, decision: .refused(why))
            }
            guard served.definition.utf8.count <= 2 << 20 else { return refused("definition larger than 2 MiB") }
            let set: FeatureSet
            do { set = try JSONDecoder().decode(FeatureSet.self, from: Data(served.definition.utf8)) } catch {
                return refused("definition does not parse: \(error)")
            }
            guard set.name == served.name, set.version == version else {
                return refused("definition names \(set.name) v\(set.version), announced as \(served.name) v\(version)", set)
            }
            guard windowSeconds >= 1, 86_400 % windowSeconds == 0 || windowSeconds % 86_400 == 0 else {
                return refused("window length \(windowSeconds) s neither divides a day nor is whole days", set)
            }
            return ServedFeatureSet(name: set.name, version: set.version, definition: set, windowSeconds: windowSeconds, rounds: served.rounds, decision: policy.evaluate(set))
        }
    }
}
