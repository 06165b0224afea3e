import Foundation
public import VeilProtocol

/// The decoded aggregate of one feature over the devices in a round's sum.
public enum FeatureValue: Sendable, Equatable, Codable {
    /// A numeric feature: how many values, their sum, mean and population variance (of the
    /// clipped, fixed-point values), and how many values were clipped or dropped.
    case numeric(count: UInt64, sum: Double, mean: Double?, variance: Double?, clipped: UInt64)
    /// Per-bucket counts (bucket i is `edges[i] ..< edges[i+1]`) and the clipped count.
    case histogram(edges: [Double], counts: [UInt64], clipped: UInt64)
    /// Per-category counts and how many values were outside the vocabulary or over the limit.
    case categorical(counts: [String: UInt64], clipped: UInt64)
    /// The number of events, and how many were over the per-device limit.
    case eventCount(count: UInt64, clipped: UInt64)
}

/// A feature set's values decoded from one aggregated vector.
public struct FeatureSetValues: Sendable, Equatable, Codable {
    /// The number of devices whose contribution is in the sum.
    public let contributors: UInt64
    /// Each feature's value, by name.
    public let values: [String: FeatureValue]
}

/// An aggregated vector that does not fit the layout.
public enum FeatureDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The vector's shape differs from the layout's.
    case wrongShape(expectedCount: Int, count: Int, expectedBitWidth: Int, bitWidth: Int)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .wrongShape(ec, c, eb, b): return "the sum has \(c) elements of \(b) bits; the feature set needs \(ec) of \(eb)"
        }
    }
}

extension FeatureLayout {
    /// Decodes the sum of the devices' encoded vectors. Exact for counts; sums, means and
    /// variances are computed in Double from exact integer sums.
    public func decode(_ sum: ModularVector) throws(FeatureDecodingError) -> FeatureSetValues {
        guard sum.count == dimension, sum.bitWidth == featureSet.bitWidth else {
            throw .wrongShape(expectedCount: dimension, count: sum.count, expectedBitWidth: featureSet.bitWidth, bitWidth: sum.bitWidth)
        }
        let s = sum.elements
        var values: [String: FeatureValue] = [:]
        for (i, feature) in featureSet.features.enumerated() {
            let base = offsets[i]
            switch feature.kind {
            case let .numeric(minimum, _, precision):
                let n = s[base]
                let q1 = Double(s[base + 1])
                let q2 = Double(s[base + 2])
                let count = Double(n)
                let total = q1 * precision + count * minimum
                var mean: Double?
                var variance: Double?
                if n > 0 {
                    let meanQ = q1 / count
                    mean = minimum + meanQ * precision
                    variance = Swift.max(0, q2 / count - meanQ * meanQ) * precision * precision
                }
                values[feature.name] = .numeric(count: n, sum: total, mean: mean, variance: variance, clipped: s[base + 3])
            case let .histogram(edges):
                values[feature.name] = .histogram(edges: edges, counts: Array(s[base..<(base + edges.count - 1)]), clipped: s[base + edges.count - 1])
            case let .categorical(vocabulary):
                var counts: [String: UInt64] = [:]
                for (j, category) in vocabulary.enumerated() { counts[category] = s[base + j] }
                values[feature.name] = .categorical(counts: counts, clipped: s[base + vocabulary.count])
            case .eventCount:
                values[feature.name] = .eventCount(count: s[base], clipped: s[base + 1])
            }
        }
        return FeatureSetValues(contributors: s[0], values: values)
    }
}
