import Foundation
public import VeilProtocol

/// One device's raw observations for one window: they never leave the device; only the encoded
/// vector does, masked.
public struct WindowObservations: Sendable, Equatable {
    /// Values of numeric and histogram features, by feature name.
    public var values: [String: [Double]]
    /// Values of categorical features, by feature name.
    public var categories: [String: [String]]
    /// Event counts of eventCount features, by feature name.
    public var events: [String: Int]

    /// Creates a set of observations.
    public init(values: [String: [Double]] = [:], categories: [String: [String]] = [:], events: [String: Int] = [:]) {
        self.values = values
        self.categories = categories
        self.events = events
    }
}

/// Observations the encoder cannot use at all.
public enum FeatureEncodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Observations name a feature the set does not have, or give it the wrong kind of value.
    case unknownFeature(String)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .unknownFeature(name): return "no feature \"\(name)\" of that kind in the set"
        }
    }
}

extension FeatureLayout {
    /// Encodes one device's observations as its aggregation vector: values are clipped to their
    /// bounds and fixed-point encoded, at most `maximumValuesPerDevice` values count per feature,
    /// and every clipped, dropped or unusable value (NaN, out of vocabulary, over the limit) is
    /// counted in the feature's clipped slot (saturating at `maximumValuesPerDevice`).
    public func encode(_ observations: WindowObservations) throws(FeatureEncodingError) -> ModularVector {
        var slots = [UInt64](repeating: 0, count: dimension)
        slots[0] = 1
        for (i, feature) in featureSet.features.enumerated() {
            let base = offsets[i]
            let limit = feature.maximumValuesPerDevice
            var clipped = 0
            switch feature.kind {
            case let .numeric(minimum, maximum, precision):
                guard observations.categories[feature.name] == nil, observations.events[feature.name] == nil else { throw .unknownFeature(feature.name) }
                let values = observations.values[feature.name] ?? []
                var taken = 0
                for v in values {
                    guard !v.isNaN, taken < limit else { clipped += 1; continue }
                    let clamped = Swift.min(Swift.max(v, minimum), maximum)
                    if clamped != v { clipped += 1 }
                    let q = UInt64(((clamped - minimum) / precision).rounded())
                    slots[base] += 1
                    slots[base + 1] += q
                    slots[base + 2] += q * q
                    taken += 1
                }
                slots[base + 3] = UInt64(Swift.min(clipped, limit))
            case let .histogram(edges):
                guard observations.categories[feature.name] == nil, observations.events[feature.name] == nil else { throw .unknownFeature(feature.name) }
                let values = observations.values[feature.name] ?? []
                var taken = 0
                for v in values {
                    guard !v.isNaN, taken < limit else { clipped += 1; continue }
                    if v < edges[0] || v > edges[edges.count - 1] { clipped += 1 }
                    slots[base + Self.bucket(of: v, edges: edges)] += 1
                    taken += 1
                }
                slots[base + edges.count - 1] = UInt64(Swift.min(clipped, limit))
            case let .categorical(vocabulary):
                guard observations.values[feature.name] == nil, observations.events[feature.name] == nil else { throw .unknownFeature(feature.name) }
                let values = observations.categories[feature.name] ?? []
                var taken = 0
                for v in values {
                    guard taken < limit, let index = vocabulary.firstIndex(of: v) else { clipped += 1; continue }
                    slots[base + index] += 1
                    taken += 1
                }
                slots[base + vocabulary.count] = UInt64(Swift.min(clipped, limit))
            case .eventCount:
                guard observations.values[feature.name] == nil, observations.categories[feature.name] == nil else { throw .unknownFeature(feature.name) }
                let count = Swift.max(0, observations.events[feature.name] ?? 0)
                slots[base] = UInt64(Swift.min(count, limit))
                slots[base + 1] = UInt64(Swift.min(Swift.max(0, count - limit), limit))
            }
        }
        let named = Set(observations.values.keys).union(observations.categories.keys).union(observations.events.keys)
        if let unknown = named.subtracting(featureSet.features.map(\.name)).sorted().first { throw .unknownFeature(unknown) }
        // Each slot is at most its per-device maximum, below 2^b by the overflow check.
        return try! ModularVector(values: slots, bitWidth: featureSet.bitWidth)
    }

    /// The bucket of `v`: values below the first edge go to the first bucket, values at or above
    /// the last edge to the last.
    static func bucket(of v: Double, edges: [Double]) -> Int {
        var low = 0
        var high = edges.count - 2
        if v < edges[1] { return 0 }
        if v >= edges[high] { return high }
        while low < high {
            let mid = (low + high + 1) / 2
            if edges[mid] <= v { low = mid } else { high = mid - 1 }
        }
        return low
    }
}
