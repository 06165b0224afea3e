public import Foundation
public import VeilFeatures
public import VeilProtocol

/// One window of a feature set as stored: the running sum of its rounds, still encoded, and the
/// sum as it was last released (SPEC.md §12.1). Only the released sum is ever served.
public struct StoredWindow: Sendable, Equatable {
    /// The window's start, seconds since the Unix epoch (UTC).
    public let windowStart: Int
    /// The sum of every finished round of the window. Never served: it may differ from the last
    /// release by fewer devices than the minimum release cohort.
    public let sum: ModularVector
    /// Devices whose contributions are in the sum (over all its rounds).
    public let contributors: Int
    /// The rounds whose sums were added, oldest first.
    public let roundIDs: [String]
    /// The window as last released, or nil before its first release.
    public let release: WindowRelease?

    /// Creates a stored window.
    public init(windowStart: Int, sum: ModularVector, contributors: Int, roundIDs: [String], release: WindowRelease?) {
        self.windowStart = windowStart
        self.sum = sum
        self.contributors = contributors
        self.roundIDs = roundIDs
        self.release = release
    }

    /// The window with one more round added, refused when the window would exceed the feature
    /// set's maximum cohort. `stored` nil means the window's first round. The running sum becomes
    /// the release when ``WindowRelease/allows(contributors:previouslyReleased:minimumReleaseCohort:)`` says
    /// so. Both store implementations merge through this one function.
    static func merging(
        _ stored: StoredWindow?, _ set: FeatureSet, windowStart: Int, roundID: String, sum: ModularVector, contributors: Int,
        minimumReleaseCohort: Int
    ) throws -> StoredWindow {
        var total = sum
        var count = contributors
        var rounds = [roundID]
        if let stored {
            guard stored.sum.count == sum.count, stored.sum.bitWidth == sum.bitWidth else {
                throw AggregatorStoreError("window \(windowStart) of \(set.name) v\(set.version) holds a vector of \(stored.sum.count) × \(stored.sum.bitWidth) bits, the round \(sum.count) × \(sum.bitWidth)")
            }
            guard !stored.roundIDs.contains(roundID) else {
                throw AggregatorStoreError("round \(roundID) was already added to window \(windowStart)")
            }
            total.add(stored.sum)
            count += stored.contributors
            rounds = stored.roundIDs + rounds
        }
        guard count <= set.maximumCohort else {
            throw FeatureWindowError.windowOverflow(window: windowStart, contributors: count, maximum: set.maximumCohort)
        }
        var release = stored?.release
        if WindowRelease.allows(contributors: count, previouslyReleased: release?.contributors, minimumReleaseCohort: minimumReleaseCohort) {
            release = WindowRelease(sum: total, contributors: count, roundIDs: rounds, sequence: (release?.sequence ?? 0) + 1)
        }
        return StoredWindow(windowStart: windowStart, sum: total, contributors: count, roundIDs: rounds, release: release)
    }

    /// The round ids as stored: a JSON array of strings.
    static func json(_ roundIDs: [String]) -> String {
        String(decoding: (try? JSONEncoder().encode(roundIDs)) ?? Data("[]".utf8), as: UTF8.self)
    }

    /// Parses ``json(_:)``.
    static func roundIDs(fromJSON text: String) throws -> [String] {
        try JSONDecoder().decode([String].self, from: Data(text.utf8))
    }

    /// The window as served: the last release, decoded, when it has at least
    /// `minimumReleaseCohort` contributors; the running sum never. With differential privacy the
    /// release carries estimates with error bounds and its privacy (SPEC.md §12.4) instead of
    /// exact values.
    public func released(by layout: FeatureLayout, minimumReleaseCohort: Int) throws -> ReleasedWindow {
        let shown = release.flatMap { $0.contributors >= minimumReleaseCohort ? $0 : nil }
        var values: FeatureSetValues?
        var estimates: [String: FeatureEstimate]?
        var privacy: ReleasePrivacy?
        if let shown {
            if let plan = layout.privacy {
                estimates = try layout.estimate(shown.sum, contributors: shown.contributors)
                privacy = ReleasePrivacy(plan, contributors: shown.contributors)
            } else {
                values = try layout.decode(shown.sum)
            }
        }
        return ReleasedWindow(
            windowStart: windowStart, contributors: shown?.contributors ?? 0, roundIDs: shown?.roundIDs ?? [],
            values: values, releases: shown?.sequence ?? 0, pendingContributors: contributors - (shown?.contributors ?? 0),
            estimates: estimates, privacy: privacy)
    }
}

/// A window's sum as it was released. A release replaces the previous one only when at least the
/// minimum release cohort of new devices contributed since (SPEC.md §12.1), so that two releases
/// of a window never subtract to the sum of fewer devices than that.
public struct WindowRelease: Sendable, Equatable {
    /// The released sum.
    public let sum: ModularVector
    /// Devices in the released sum.
    public let contributors: Int
    /// The rounds in the released sum, oldest first.
    public let roundIDs: [String]
    /// 1 for the window's first release, then one more for each release that replaced it.
    public let sequence: Int

    /// Creates a release.
    public init(sum: ModularVector, contributors: Int, roundIDs: [String], sequence: Int) {
        self.sum = sum
        self.contributors = contributors
        self.roundIDs = roundIDs
        self.sequence = sequence
    }

    /// Whether a window whose running sum holds `contributors` devices may be released, when its
    /// last release held `previouslyReleased` (nil: never released): at least
    /// `minimumReleaseCohort` devices in all, and, when a release at or above that minimum
    /// exists, at least `minimumReleaseCohort` devices more than it.
    public static func allows(contributors: Int, previouslyReleased: Int?, minimumReleaseCohort: Int) -> Bool {
        guard contributors >= minimumReleaseCohort else { return false }
        guard let previous = previouslyReleased, previous >= minimumReleaseCohort else { return true }
        return contributors - previous >= minimumReleaseCohort
    }
}

/// One window of a feature set as served.
public struct ReleasedWindow: Sendable, Equatable, Codable {
    /// The window's start, seconds since the Unix epoch (UTC).
    public let windowStart: Int
    /// Devices whose contributions are in `values` (0 before the first release).
    public let contributors: Int
    /// The rounds whose sums make up `values`.
    public let roundIDs: [String]
    /// The decoded values of the last release, or nil before the first.
    public let values: FeatureSetValues?
    /// How many times the window was released (0, 1, or more when enough devices came later).
    public let releases: Int
    /// Devices counted in the window since its last release, whose contributions are not in
    /// `values` yet: released once they reach the minimum release cohort.
    public let pendingContributors: Int
    /// With differential privacy: each feature's estimates and 95 % error bounds (`values` is
    /// then nil).
    public let estimates: [String: FeatureEstimate]?
    /// With differential privacy: what the release cost and how noisy it is.
    public let privacy: ReleasePrivacy?
}

/// The privacy of one released window (SPEC.md §12.4).
public struct ReleasePrivacy: Sendable, Equatable, Codable {
    /// Always "distributedDiscreteGaussian".
    public let mechanism: String
    /// ε of the window's release at ``delta``, for noise sized for ``minimumSurvivors`` devices
    /// (a larger cohort carries more noise, and this ε still holds).
    public let epsilon: Double
    /// δ.
    public let delta: Double
    /// The noise multiplier z: the sum's noise over its L2 sensitivity.
    public let noiseMultiplier: Double
    /// The standard deviation of the released sum's noise per element, in the scaled units
    /// (one device's maximum per element is ``scale``).
    public let noiseStandardDeviation: Double
    /// s: integer steps per element's per-device maximum.
    public let scale: UInt64
    /// The fewest devices the noise is sized for.
    public let minimumSurvivors: Int
    /// The devices in the release.
    public let contributors: Int
    /// The probability each error bound holds: 0.95.
    public let confidence: Double

    /// The privacy of a release of `contributors` devices under `plan`.
    public init(_ plan: PrivacyPlan, contributors: Int) {
        mechanism = "distributedDiscreteGaussian"
        epsilon = plan.windowEpsilon
        delta = plan.settings.delta
        noiseMultiplier = plan.noiseMultiplier
        noiseStandardDeviation = plan.sumStandardDeviation(contributors: contributors)
        scale = plan.scale
        minimumSurvivors = plan.settings.minimumSurvivors
        self.contributors = contributors
        confidence = 0.95
    }
}

/// A window result the store refuses.
public enum FeatureWindowError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Adding the round would exceed the feature set's maximum cohort for one window.
    case windowOverflow(window: Int, contributors: Int, maximum: Int)
    /// Devices of the round are already counted in the window, or claimed by another round of it.
    case alreadyCounted(window: Int, devices: [String])
    /// Devices of the round were revoked while it ran: their input must not be released.
    case revokedDuringRound(window: Int, devices: [String])

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .windowOverflow(window, contributors, maximum):
            return "window \(window) would have \(contributors) contributors, above the feature set's maximumCohort \(maximum); its sums could wrap"
        case let .alreadyCounted(window, devices):
            return "window \(window) already counts (or another round claimed) \(devices.count) of the round's devices, for example \(devices.prefix(3).joined(separator: ", ")); a device counts at most once per window"
        case let .revokedDuringRound(window, devices):
            return "\(devices.count) of the round's devices were revoked while it ran, for example \(devices.prefix(3).joined(separator: ", ")); its sum is not added to window \(window)"
        }
    }
}

/// One device's entry in a window's contributor table: claimed by a round that is running, or
/// counted by the round whose sum holds its input.
struct ContributorEntry: Sendable, Equatable {
    /// The round that claimed or counted the device.
    var roundID: String
    /// Whether that round finished with the device's input in its sum.
    var counted: Bool
    /// When the round claimed the device (seconds since the epoch).
    var claimedAt: Double
    /// Whether the claiming round still holds its lease (SPEC.md §12.3): true when it is running
    /// and its lease has not expired in the database's time, false when it ended or its lease
    /// expired, nil when the store has no row for it (then `claimedAt` decides).
    var roundLive: Bool? = nil

    /// Whether the claim still reserves the device: its round holds its lease, or (a round
    /// without a history row) the claim is younger than `staleBefore`.
    func isLive(staleBefore: Double) -> Bool {
        roundLive ?? (claimedAt >= staleBefore)
    }
}

/// What a round about to start may do with each device of its cohort (SPEC.md §12.1).
public struct WindowClaims: Sendable, Equatable {
    /// Devices now claimed for the round, in the order asked.
    public var claimed: [String] = []
    /// Devices already counted in the window, with the round that counted each.
    public var alreadyCounted: [String: String] = [:]
    /// Devices claimed by another round of the window that is still running.
    public var busy: [String] = []
    /// Devices the window has no room for: its counted devices and live claims already reach
    /// the feature set's maximum cohort.
    public var full: [String] = []

    /// Creates an empty set of claims.
    public init() {}

    /// Decides from the entries already stored for `deviceIDs`: a device without an entry, or
    /// whose claim is no longer live (its round lost its lease, or ended), is claimed,
    /// while the window has room. `occupied` is the number of the window's entries that are
    /// counted or hold a live claim (over every device, not only these), `capacity` the feature
    /// set's maximum cohort. Both store implementations decide through this one function.
    static func deciding(
        _ deviceIDs: [String], existing: [String: ContributorEntry], staleBefore: Double, occupied: Int, capacity: Int
    ) -> WindowClaims {
        var claims = WindowClaims()
        var room = max(0, capacity - occupied)
        for id in deviceIDs {
            if let entry = existing[id] {
                if entry.counted {
                    claims.alreadyCounted[id] = entry.roundID
                    continue
                } else if entry.isLive(staleBefore: staleBefore) {
                    claims.busy.append(id)
                    continue
                }
            }
            if room > 0 {
                claims.claimed.append(id)
                room -= 1
            } else {
                claims.full.append(id)
            }
        }
        return claims
    }
}

extension ContributorEntry {
    /// The devices among `contributorIDs` that round `roundID` may not count: counted or claimed
    /// by another round. Both store implementations check through this one function.
    static func conflicts(_ contributorIDs: [String], existing: [String: ContributorEntry], roundID: String) -> [String] {
        var seen = Set<String>()
        return contributorIDs.filter { id in
            guard seen.insert(id).inserted else { return true }  // named twice by one round
            return existing[id].map { $0.roundID != roundID } ?? false
        }
    }
}

/// A feature set in the store's registry.
public struct RegisteredFeatureSet: Sendable, Equatable {
    /// The definition.
    public let featureSet: FeatureSet
    /// When it was first defined.
    public let definedAt: Date
    /// When it was retired, if it was.
    public let retiredAt: Date?

    /// Creates an entry.
    public init(featureSet: FeatureSet, definedAt: Date, retiredAt: Date?) {
        self.featureSet = featureSet
        self.definedAt = definedAt
        self.retiredAt = retiredAt
    }

    /// The canonical stored form of a definition: JSON with sorted keys, so that equal
    /// definitions compare equal as text.
    static func canonicalJSON(_ set: FeatureSet) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(set), as: UTF8.self)
    }

    /// Parses ``canonicalJSON(_:)``.
    static func definition(fromJSON text: String) throws -> FeatureSet {
        try JSONDecoder().decode(FeatureSet.self, from: Data(text.utf8))
    }
}

/// A feature-set definition the registry refuses.
public enum FeatureSetRegistryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// This name and version already hold a different definition.
    case conflictingDefinition(name: String, version: Int)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .conflictingDefinition(name, version):
            return "feature set \(name) v\(version) is already defined differently; a version never changes, define version \(version + 1) instead"
        }
    }
}
