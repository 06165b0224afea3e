public import VeilPrivacy
public import VeilProtocol

extension FeatureLayout {
    /// One device's contribution under distributed differential privacy (SPEC.md §12.4): each
    /// slot xᵢ of the encoded vector becomes s·xᵢ/uᵢ stochastically rounded (an exact Bernoulli
    /// of the remainder), plus discrete Gaussian noise clamped to ±``PrivacyPlan/noiseClamp``,
    /// modulo 2^b. `encoded` must come from ``encode(_:)``. Without privacy, `encoded` as it is.
    public func privatize(_ encoded: ModularVector, bits: inout NoiseBits) -> ModularVector {
        guard let plan = privacy else { return encoded }
        precondition(encoded.count == dimension, "a vector of this layout")
        let scale = UInt128(plan.scale)
        let modulusMask: UInt64 = featureSet.bitWidth == 64 ? .max : (1 << UInt64(featureSet.bitWidth)) - 1
        var noised = [UInt64](repeating: 0, count: dimension)
        for i in 0..<dimension {
            let x = UInt128(encoded.elements[i]), u = UInt128(perDeviceMaximum[i])
            let product = scale * x
            var rounded = Int64(product / u)
            if bits.bernoulli(product % u, over: u) { rounded += 1 }
            let noise = min(max(plan.deviceNoise.sample(bits: &bits), -plan.noiseClamp), plan.noiseClamp)
            noised[i] = UInt64(bitPattern: rounded + noise) & modulusMask
        }
        // Every element was reduced modulo 2^b above.
        return try! ModularVector(values: noised, bitWidth: featureSet.bitWidth)
    }

    /// The estimates a noised sum over `contributors` devices gives (SPEC.md §12.4): each element
    /// read in the centred representation (so negative noised values decode as negative),
    /// rescaled by uᵢ/s, and the half-width of its 95 % interval. Nil without privacy.
    public func estimate(_ sum: ModularVector, contributors: Int) throws(FeatureDecodingError) -> [String: FeatureEstimate]? {
        guard let plan = privacy else { return nil }
        guard sum.count == dimension, sum.bitWidth == featureSet.bitWidth else {
            throw .wrongShape(expectedCount: dimension, count: sum.count, expectedBitWidth: featureSet.bitWidth, bitWidth: sum.bitWidth)
        }
        let b = featureSet.bitWidth
        let scale = Double(plan.scale)
        let deviation = plan.sumStandardDeviation(contributors: contributors)
        func centred(_ v: UInt64) -> Double {
            if b == 64 { return Double(Int64(bitPattern: v)) }
            return v >= 1 << UInt64(b - 1) ? Double(v) - Double(UInt64(1) << UInt64(b)) : Double(v)
        }
        func value(_ slot: Int) -> Double { centred(sum.elements[slot]) * Double(perDeviceMaximum[slot]) / scale }
        func bound(_ slot: Int) -> Double { FeatureEstimate.z95 * deviation * Double(perDeviceMaximum[slot]) / scale }
        var estimates: [String: FeatureEstimate] = [:]
        for (i, feature) in featureSet.features.enumerated() {
            let base = offsets[i]
            var values: [String: Double] = [:], bounds: [String: Double] = [:]
            func put(_ name: String, _ slot: Int) { values[name] = value(slot); bounds[name] = bound(slot) }
            switch feature.kind {
            case let .numeric(minimum, _, precision):
                put("count", base)
                put("clipped", base + 3)
                let count = value(base), sumQ = value(base + 1)
                values["sum"] = sumQ * precision + count * minimum
                bounds["sum"] = ((bound(base + 1) * precision) * (bound(base + 1) * precision) + (bound(base) * minimum) * (bound(base) * minimum)).squareRoot()
                if count >= 1 { values["mean"] = minimum + sumQ / count * precision }
            case let .histogram(edges):
                for j in 0..<(edges.count - 1) { put("bucket:\(edges[j])", base + j) }
                put("clipped", base + edges.count - 1)
            case let .categorical(vocabulary):
                for (j, category) in vocabulary.enumerated() { put("category:\(category)", base + j) }
                put("clipped", base + vocabulary.count)
            case .eventCount:
                put("count", base)
                put("clipped", base + 1)
            }
            estimates[feature.name] = FeatureEstimate(values: values, errorBounds: bounds)
        }
        return estimates
    }
}

/// One feature's statistics estimated from a noised sum: counts and sums may be fractional or
/// negative, as noise makes them. `errorBounds` holds, per statistic, the half-width of the
/// interval that contains the exact value with 95 % probability (noise and rounding; a ratio such
/// as `mean` has none).
public struct FeatureEstimate: Codable, Sendable, Equatable {
    /// Statistic name (`count`, `sum`, `mean`, `clipped`, `bucket:<lower edge>`, `category:<name>`) to its estimate.
    public let values: [String: Double]
    /// Statistic name to the half-width of its 95 % interval.
    public let errorBounds: [String: Double]

    /// The normal 97.5 % quantile: the sum's noise is a sum of many independent terms.
    static let z95 = 1.959964
}
