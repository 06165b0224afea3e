import Foundation
public import VeilFeatures

/// One feature's check in a window: the value decoded from the secure sum against the plaintext
/// computation over the raw observations of exactly the devices the aggregator counted.
public struct FeatureCheck: Codable, Sendable, Equatable {
    /// The feature's name.
    public let feature: String
    /// Whether the decoded value matches (counts exactly; sums, means and variances within the
    /// fixed-point rounding the feature's precision allows).
    public let ok: Bool
    /// What was compared, in one line.
    public let detail: String
    /// The value decoded from the aggregate.
    public let decoded: FeatureValue?
    /// The plaintext value (true sums, means and variances of the clipped values, unrounded).
    public let expected: FeatureValue
}

/// The feature oracle: computes each feature from raw observations in plaintext, independently
/// of the encoder (its own clipping, bucketing and limits, on unquantized values), and compares
/// with what the aggregate decodes to.
public enum FeatureOracle {
    /// The plaintext value of every feature over `devices`' observations.
    public static func expected(_ devices: [WindowObservations], set: FeatureSet) -> [String: FeatureValue] {
        var result: [String: FeatureValue] = [:]
        for feature in set.features {
            let limit = feature.maximumValuesPerDevice
            switch feature.kind {
            case let .numeric(minimum, maximum, _):
                var count: UInt64 = 0, clipped: UInt64 = 0
                var taken: [Double] = []
                for d in devices {
                    var used = 0, clips = 0
                    for v in d.values[feature.name] ?? [] {
                        if v.isNaN || used == limit { clips += 1; continue }
                        let c = min(max(v, minimum), maximum)
                        if c != v { clips += 1 }
                        taken.append(c)
                        used += 1
                    }
                    count += UInt64(used)
                    clipped += UInt64(min(clips, limit))
                }
                let sum = taken.reduce(0, +)
                let mean = count > 0 ? sum / Double(count) : nil
                let variance = mean.map { m in taken.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(count) }
                result[feature.name] = .numeric(count: count, sum: sum, mean: mean, variance: variance, clipped: clipped)
            case let .histogram(edges):
                var counts = [UInt64](repeating: 0, count: edges.count - 1)
                var clipped: UInt64 = 0
                for d in devices {
                    var used = 0, clips = 0
                    for v in d.values[feature.name] ?? [] {
                        if v.isNaN || used == limit { clips += 1; continue }
                        if v < edges[0] || v > edges[edges.count - 1] { clips += 1 }
                        var bucket = 0
                        for i in 0..<(edges.count - 1) where v >= edges[i] { bucket = i }
                        counts[bucket] += 1
                        used += 1
                    }
                    clipped += UInt64(min(clips, limit))
                }
                result[feature.name] = .histogram(edges: edges, counts: counts, clipped: clipped)
            case let .categorical(vocabulary):
                var counts = Dictionary(uniqueKeysWithValues: vocabulary.map { ($0, UInt64(0)) })
                var clipped: UInt64 = 0
                for d in devices {
                    var used = 0, clips = 0
                    for v in d.categories[feature.name] ?? [] {
                        if used == limit || counts[v] == nil { clips += 1; continue }
                        counts[v]! += 1
                        used += 1
                    }
                    clipped += UInt64(min(clips, limit))
                }
                result[feature.name] = .categorical(counts: counts, clipped: clipped)
            case .eventCount:
                var count: UInt64 = 0, clipped: UInt64 = 0
                for d in devices {
                    let e = max(0, d.events[feature.name] ?? 0)
                    count += UInt64(min(e, limit))
                    clipped += UInt64(min(max(0, e - limit), limit))
                }
                result[feature.name] = .eventCount(count: count, clipped: clipped)
            }
        }
        return result
    }

    /// Compares `decoded` with `expected` feature by feature.
    public static func check(_ decoded: FeatureSetValues?, expected: [String: FeatureValue], set: FeatureSet) -> [FeatureCheck] {
        set.features.map { feature in
            let want = expected[feature.name]!
            guard let got = decoded?.values[feature.name] else {
                return FeatureCheck(feature: feature.name, ok: false, detail: "no decoded value", decoded: nil, expected: want)
            }
            let (ok, detail) = compare(got, want, feature)
            return FeatureCheck(feature: feature.name, ok: ok, detail: detail, decoded: got, expected: want)
        }
    }

    private static func compare(_ got: FeatureValue, _ want: FeatureValue, _ feature: Feature) -> (Bool, String) {
        switch (got, want, feature.kind) {
        case let (.numeric(c1, s1, m1, v1, k1), .numeric(c2, s2, m2, v2, k2), .numeric(_, _, precision)):
            // Each value is rounded to the nearest multiple of precision: at most p/2 off.
            let half = precision / 2
            let sd = (v2 ?? 0).squareRoot()
            let sumOK = abs(s1 - s2) <= Double(c2) * half * (1 + 1e-9) + 1e-9 * abs(s2)
            let meanOK = (m1 == nil && m2 == nil) || (m1 != nil && m2 != nil && abs(m1! - m2!) <= half * (1 + 1e-9) + 1e-9 * abs(m2!))
            let varianceBound = sd * precision + precision * precision / 4
            let varianceOK = (v1 == nil && v2 == nil) || (v1 != nil && v2 != nil && abs(v1! - v2!) <= varianceBound * (1 + 1e-9) + 1e-9 * abs(v2!))
            let ok = c1 == c2 && k1 == k2 && sumOK && meanOK && varianceOK
            return (ok, "count \(c1)/\(c2), clipped \(k1)/\(k2), mean \(fmt(m1))/\(fmt(m2)) (±\(fmt(half))), variance \(fmt(v1))/\(fmt(v2)) (±\(fmt(varianceBound)))")
        case let (.histogram(_, a, k1), .histogram(_, b, k2), _):
            return (a == b && k1 == k2, "buckets \(a == b ? "equal" : "\(a) vs \(b)"), clipped \(k1)/\(k2)")
        case let (.categorical(a, k1), .categorical(b, k2), _):
            return (a == b && k1 == k2, "categories \(a == b ? "equal" : "differ"), clipped \(k1)/\(k2)")
        case let (.eventCount(a, k1), .eventCount(b, k2), _):
            return (a == b && k1 == k2, "events \(a)/\(b), clipped \(k1)/\(k2)")
        default:
            return (false, "decoded a value of another kind")
        }
    }

    private static func fmt(_ x: Double?) -> String {
        guard let x else { return "-" }
        return String(format: "%.6g", x)
    }
}
