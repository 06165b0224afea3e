import Foundation

/// A named, versioned set of features that devices contribute to in one aggregation vector.
///
/// JSON form (every key documented in SPEC.md §12):
/// ```json
/// { "name": "fleet-usage", "version": 1, "bitWidth": 64, "maximumCohort": 100000,
///   "features": [
///     { "name": "session_seconds", "kind": "numeric", "minimum": 0, "maximum": 3600,
///       "precision": 0.1, "maximumValuesPerDevice": 200 },
///     { "name": "temperature_c", "kind": "histogram", "edges": [-20, 0, 10, 20, 30, 60],
///       "maximumValuesPerDevice": 1440 },
///     { "name": "app_category", "kind": "categorical", "vocabulary": ["maps", "music", "video"],
///       "maximumValuesPerDevice": 500 },
///     { "name": "crashes", "kind": "eventCount", "maximumValuesPerDevice": 50 } ] }
/// ```
public struct FeatureSet: Codable, Sendable, Equatable {
    /// Lower-case letters, digits, `-` and `_`, 1...64 characters.
    public var name: String
    /// Increases whenever the features or their encoding change; results of different versions
    /// are never combined.
    public var version: Int
    /// b: the aggregation vector's elements are integers modulo 2^b.
    public var bitWidth: Int
    /// The largest cohort any round of this set may have; the overflow check assumes it.
    public var maximumCohort: Int
    /// The features, in layout order.
    public var features: [Feature]
    /// Distributed differential privacy (SPEC.md §12.4); nil releases exact sums.
    public var privacy: FeaturePrivacy?

    /// Creates a feature set (call ``validate()`` or ``FeatureLayout/init(_:)`` before use).
    public init(name: String, version: Int, bitWidth: Int = 64, maximumCohort: Int, features: [Feature], privacy: FeaturePrivacy? = nil) {
        self.name = name
        self.version = version
        self.bitWidth = bitWidth
        self.maximumCohort = maximumCohort
        self.features = features
        self.privacy = privacy
    }
}

/// One feature of a set.
public struct Feature: Codable, Sendable, Equatable {
    /// The kinds of feature and their parameters.
    public enum Kind: Sendable, Equatable {
        /// Real values clipped to `minimum...maximum` and encoded in steps of `precision`;
        /// aggregates to count, sum, mean and variance.
        case numeric(minimum: Double, maximum: Double, precision: Double)
        /// Counts of values per bucket; `edges` ascending, bucket i is `edges[i] ..< edges[i+1]`
        /// (the last bucket includes its upper edge). Values outside are clipped into the outer buckets.
        case histogram(edges: [Double])
        /// Counts per value of `vocabulary`; other values are counted as clipped and nothing else.
        case categorical(vocabulary: [String])
        /// How many times an event happened.
        case eventCount
    }

    /// Lower-case letters, digits, `-` and `_`, 1...64 characters, unique in the set.
    public var name: String
    /// What is aggregated.
    public var kind: Kind
    /// The most values (events for `eventCount`) one device contributes per window; further
    /// values are dropped and counted as clipped.
    public var maximumValuesPerDevice: Int

    /// Creates a feature.
    public init(name: String, kind: Kind, maximumValuesPerDevice: Int) {
        self.name = name
        self.kind = kind
        self.maximumValuesPerDevice = maximumValuesPerDevice
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, minimum, maximum, precision, edges, vocabulary, maximumValuesPerDevice
    }

    /// Decodes the flat JSON form; an unknown `kind` is an error naming it.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        maximumValuesPerDevice = try c.decode(Int.self, forKey: .maximumValuesPerDevice)
        switch try c.decode(String.self, forKey: .kind) {
        case "numeric":
            kind = .numeric(
                minimum: try c.decode(Double.self, forKey: .minimum), maximum: try c.decode(Double.self, forKey: .maximum),
                precision: try c.decode(Double.self, forKey: .precision))
        case "histogram":
            kind = .histogram(edges: try c.decode([Double].self, forKey: .edges))
        case "categorical":
            kind = .categorical(vocabulary: try c.decode([String].self, forKey: .vocabulary))
        case "eventCount":
            kind = .eventCount
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown feature kind \"\(other)\"; use numeric, histogram, categorical or eventCount")
        }
    }

    /// Encodes the flat JSON form.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(maximumValuesPerDevice, forKey: .maximumValuesPerDevice)
        switch kind {
        case let .numeric(minimum, maximum, precision):
            try c.encode("numeric", forKey: .kind)
            try c.encode(minimum, forKey: .minimum)
            try c.encode(maximum, forKey: .maximum)
            try c.encode(precision, forKey: .precision)
        case let .histogram(edges):
            try c.encode("histogram", forKey: .kind)
            try c.encode(edges, forKey: .edges)
        case let .categorical(vocabulary):
            try c.encode("categorical", forKey: .kind)
            try c.encode(vocabulary, forKey: .vocabulary)
        case .eventCount:
            try c.encode("eventCount", forKey: .kind)
        }
    }
}

/// A feature-set definition the encoder refuses, naming the field at fault.
public struct FeatureDefinitionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The JSON path of the field, for example `features[2].precision`.
    public let field: String
    /// What is wrong.
    public let reason: String

    /// Creates an error.
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    /// "field: reason".
    public var description: String { "\(field): \(reason)" }
}
