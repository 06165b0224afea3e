import Foundation
public import VeilFeatures

extension FeatureScenario {
    /// The ε values a run covers: `epsilons`, or nil (one run with the set's own privacy, or none).
    var privacyRuns: [Double?] {
        guard featureSet.privacy != nil, let epsilons else { return [nil] }
        return epsilons
    }

    /// The layout with the set's privacy targeting `epsilon` per window (its own settings when nil).
    public func privateLayout(epsilon: Double?) throws(ScenarioError) -> FeatureLayout {
        var set = featureSet
        if let epsilon {
            set.privacy?.epsilon = epsilon
            set.privacy?.noiseMultiplier = nil
        }
        do { return try FeatureLayout(set) } catch {
            throw ScenarioError(field: "featureSet.\(error.field)", reason: "\(error.reason)\(epsilon.map { " (at ε = \($0))" } ?? "")")
        }
    }
}

/// One statistic of a noised release against the plaintext (SPEC.md §12.4).
public struct EstimateCheck: Codable, Sendable, Equatable {
    /// The feature.
    public let feature: String
    /// The statistic (`count`, `sum`, `clipped`, `bucket:<edge>`, `category:<name>`).
    public let statistic: String
    /// The released estimate.
    public let estimate: Double
    /// The plaintext value over the same devices.
    public let exact: Double
    /// The stated half-width of the 95 % interval.
    public let bound: Double

    /// Whether the exact value is inside the stated interval.
    public var within: Bool { abs(estimate - exact) <= bound }
}

extension FeatureOracle {
    /// A statistic further than this many stated bounds (5.9 standard deviations) is a failure:
    /// correctly sized noise gets there with probability below 10⁻⁸.
    public static let hardLimitBounds = 3.0
    /// Of at least ``coverageSample`` statistics, at least this fraction must be inside their 95 %
    /// bound; noise larger than stated fails it.
    public static let minimumCoverage = 0.8
    /// The fewest statistics the coverage is judged on.
    public static let coverageSample = 20

    /// The plaintext statistics of `value`, named as ``FeatureEstimate`` names them.
    public static func statistics(_ value: FeatureValue) -> [String: Double] {
        switch value {
        case let .numeric(count, sum, _, _, clipped):
            return ["count": Double(count), "sum": sum, "clipped": Double(clipped)]
        case let .histogram(edges, counts, clipped):
            var s = ["clipped": Double(clipped)]
            for (edge, count) in zip(edges, counts) { s["bucket:\(edge)"] = Double(count) }
            return s
        case let .categorical(counts, clipped):
            var s = ["clipped": Double(clipped)]
            for (name, count) in counts { s["category:\(name)"] = Double(count) }
            return s
        case let .eventCount(count, clipped):
            return ["count": Double(count), "clipped": Double(clipped)]
        }
    }

    /// Checks noised `estimates` against the plaintext `expected` over the same devices: every
    /// statistic within ``hardLimitBounds`` of its stated bound (per feature), and the list of
    /// all statistics for the coverage check and the accuracy chart.
    public static func checkEstimates(_ estimates: [String: FeatureEstimate]?, expected: [String: FeatureValue], set: FeatureSet) -> (features: [FeatureCheck], statistics: [EstimateCheck]) {
        var features: [FeatureCheck] = []
        var all: [EstimateCheck] = []
        for feature in set.features {
            let want = expected[feature.name]!
            guard let estimate = estimates?[feature.name] else {
                features.append(FeatureCheck(feature: feature.name, ok: false, detail: "no estimate", decoded: nil, expected: want))
                continue
            }
            var checks: [EstimateCheck] = []
            for (statistic, exact) in statistics(want).sorted(by: { $0.key < $1.key }) {
                guard let value = estimate.values[statistic], let bound = estimate.errorBounds[statistic] else { continue }
                checks.append(EstimateCheck(feature: feature.name, statistic: statistic, estimate: value, exact: exact, bound: bound))
            }
            let complete = checks.count == statistics(want).count
            let worst = checks.map { abs($0.estimate - $0.exact) / max($0.bound, 1e-300) }.max() ?? 0
            let inside = checks.filter(\.within).count
            features.append(FeatureCheck(
                feature: feature.name, ok: complete && worst <= hardLimitBounds,
                detail: "\(inside)/\(checks.count) statistics inside their 95 % bound; worst error \(String(format: "%.2f", worst)) bounds\(complete ? "" : "; statistics missing")",
                decoded: nil, expected: want))
            all += checks
        }
        return (features, all)
    }

    /// Whether `statistics` cover the exact values as often as the stated 95 % bounds promise
    /// (at least ``minimumCoverage``, judged on at least ``coverageSample`` statistics).
    public static func coverageHolds(_ statistics: [EstimateCheck]) -> Bool {
        guard statistics.count >= coverageSample else { return true }
        return Double(statistics.filter(\.within).count) / Double(statistics.count) >= minimumCoverage
    }
}
