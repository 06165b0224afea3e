import Foundation

/// Where each feature's aggregates sit in the aggregation vector, and the checks that make the
/// secure sum decode correctly (SPEC.md §12).
///
/// Slot 0 counts contributing devices. Then, per feature in order:
/// - numeric: count, Σq, Σq², clipped — where q = round((clamp(v) − minimum) / precision);
/// - histogram: one count per bucket (edges.count − 1), clipped;
/// - categorical: one count per vocabulary entry, clipped (values outside the vocabulary);
/// - eventCount: count, clipped.
///
/// Creating a layout validates the definition and refuses any whose worst-case sum over
/// `maximumCohort` devices could wrap modulo 2^b.
public struct FeatureLayout: Sendable, Equatable {
    /// The validated definition.
    public let featureSet: FeatureSet
    /// The first slot of each feature, in `featureSet.features` order.
    public let offsets: [Int]
    /// m: the aggregation vector's length.
    public let dimension: Int
    /// The largest value one device can put in each slot.
    let perDeviceMaximum: [UInt64]
    /// The noise plan, when the set has distributed differential privacy (SPEC.md §12.4).
    public let privacy: PrivacyPlan?

    /// Validates `featureSet` and lays it out.
    public init(_ featureSet: FeatureSet) throws(FeatureDefinitionError) {
        try Self.validateNames(featureSet)
        guard featureSet.version >= 1 else { throw .init(field: "version", reason: "must be at least 1") }
        guard (1...64).contains(featureSet.bitWidth) else { throw .init(field: "bitWidth", reason: "must be in 1...64, got \(featureSet.bitWidth)") }
        guard featureSet.maximumCohort >= 1 else { throw .init(field: "maximumCohort", reason: "must be at least 1") }
        var offsets: [Int] = []
        var maxima: [UInt64] = [1]
        // Bounds on the squared L2 and the L1 norm of a device's vector scaled slot by slot to
        // [0, 1] (SPEC.md §12.4): the contributor slot, then per feature its groups of slots.
        var groupBounds = (l2Squared: 1.0, l1: 1.0)
        for (i, feature) in featureSet.features.enumerated() {
            let path = "features[\(i)]"
            guard (1...1_000_000_000).contains(feature.maximumValuesPerDevice) else {
                throw .init(field: "\(path).maximumValuesPerDevice", reason: "must be in 1...1000000000")
            }
            let m = UInt64(feature.maximumValuesPerDevice)
            offsets.append(maxima.count)
            switch feature.kind {
            case let .numeric(minimum, maximum, precision):
                guard minimum.isFinite, maximum.isFinite, minimum < maximum else {
                    throw .init(field: "\(path).minimum", reason: "minimum and maximum must be finite with minimum < maximum")
                }
                guard precision.isFinite, precision > 0 else { throw .init(field: "\(path).precision", reason: "must be a positive number") }
                let steps = ((maximum - minimum) / precision).rounded()
                guard steps >= 1, steps <= 4_294_967_295 else {
                    throw .init(field: "\(path).precision", reason: "(maximum − minimum) / precision must be in 1...2^32 − 1 steps, got \(steps)")
                }
                let q = UInt64(steps)
                let (sumMax, o1) = m.multipliedReportingOverflow(by: q)
                let (squareMax, o2) = sumMax.multipliedReportingOverflow(by: q)
                guard !o1, !o2 else { throw Self.overflow(featureSet, feature, path, "sum of squares") }
                maxima += [m, sumMax, squareMax, m]
                groupBounds.l2Squared += 4
                groupBounds.l1 += 4
            case let .histogram(edges):
                guard edges.count >= 2, edges.allSatisfy(\.isFinite), zip(edges, edges.dropFirst()).allSatisfy({ $0 < $1 }) else {
                    throw .init(field: "\(path).edges", reason: "needs at least two finite, strictly increasing edges")
                }
                guard edges.count <= 10_001 else { throw .init(field: "\(path).edges", reason: "at most 10,000 buckets") }
                maxima += [UInt64](repeating: m, count: edges.count - 1) + [m]
                groupBounds.l2Squared += 2
                groupBounds.l1 += 2
            case let .categorical(vocabulary):
                guard !vocabulary.isEmpty, vocabulary.count <= 10_000 else {
                    throw .init(field: "\(path).vocabulary", reason: "needs 1...10,000 entries")
                }
                guard Set(vocabulary).count == vocabulary.count, !vocabulary.contains("") else {
                    throw .init(field: "\(path).vocabulary", reason: "entries must be non-empty and distinct")
                }
                maxima += [UInt64](repeating: m, count: vocabulary.count) + [m]
                groupBounds.l2Squared += 2
                groupBounds.l1 += 2
            case .eventCount:
                maxima += [m, m]
                groupBounds.l2Squared += 2
                groupBounds.l1 += 2
            }
        }
        guard maxima.count <= 1 << 20 else { throw .init(field: "features", reason: "the layout needs \(maxima.count) elements; at most 2^20") }
        // Overflow: the worst-case sum of every slot over the largest cohort must stay below 2^b
        // (with privacy, the scaled and noised values must: the plan checks that).
        if let settings = featureSet.privacy {
            privacy = try PrivacyPlan(
                slotMaxima: maxima, groupBounds: groupBounds, settings: settings, bitWidth: featureSet.bitWidth, maximumCohort: featureSet.maximumCohort)
        } else {
            privacy = nil
        }
        let limit: UInt64 = featureSet.bitWidth == 64 ? .max : (1 << UInt64(featureSet.bitWidth)) - 1
        for (slot, perDevice) in maxima.enumerated() where privacy == nil {
            let (worst, overflow) = perDevice.multipliedReportingOverflow(by: UInt64(featureSet.maximumCohort))
            if overflow || worst > limit {
                let index = offsets.lastIndex { $0 <= slot }
                guard let index else { throw .init(field: "maximumCohort", reason: "the contributor count could reach 2^\(featureSet.bitWidth)") }
                throw Self.overflow(featureSet, featureSet.features[index], "features[\(index)]", Self.slotName(featureSet.features[index], slot - offsets[index]))
            }
        }
        self.featureSet = featureSet
        self.offsets = offsets
        self.dimension = maxima.count
        self.perDeviceMaximum = maxima
    }

    /// The number of slots `feature` occupies.
    static func width(of feature: Feature) -> Int {
        switch feature.kind {
        case .numeric: return 4
        case let .histogram(edges): return edges.count
        case let .categorical(vocabulary): return vocabulary.count + 1
        case .eventCount: return 2
        }
    }

    static func slotName(_ feature: Feature, _ slot: Int) -> String {
        let last = width(of: feature) - 1
        if slot == last { return "clipped count" }
        switch feature.kind {
        case .numeric: return ["count", "sum", "sum of squares"][slot]
        case .histogram: return "bucket \(slot)"
        case let .categorical(vocabulary): return "count of \"\(vocabulary[slot])\""
        case .eventCount: return "count"
        }
    }

    static func overflow(_ set: FeatureSet, _ feature: Feature, _ path: String, _ slot: String) -> FeatureDefinitionError {
        .init(field: path, reason: "the worst-case \(slot) of \"\(feature.name)\" over \(set.maximumCohort) devices does not fit in \(set.bitWidth) bits and would wrap; lower maximumValuesPerDevice or maximumCohort, coarsen the precision or narrow the bounds, or raise bitWidth")
    }

    static func validateNames(_ set: FeatureSet) throws(FeatureDefinitionError) {
        func valid(_ name: String) -> Bool {
            (1...64).contains(name.count) && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
        }
        guard valid(set.name) else { throw .init(field: "name", reason: "use 1...64 lower-case letters, digits, '-' or '_'") }
        guard !set.features.isEmpty else { throw .init(field: "features", reason: "a feature set needs at least one feature") }
        var seen = Set<String>()
        for (i, feature) in set.features.enumerated() {
            guard valid(feature.name) else { throw .init(field: "features[\(i)].name", reason: "use 1...64 lower-case letters, digits, '-' or '_'") }
            guard seen.insert(feature.name).inserted else { throw .init(field: "features[\(i)].name", reason: "\"\(feature.name)\" appears twice") }
        }
    }
}
