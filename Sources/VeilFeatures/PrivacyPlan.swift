import Foundation
public import VeilPrivacy

/// The noise of a feature set with distributed differential privacy, derived from its definition
/// alone, so that every device and the aggregator derive the same plan (SPEC.md §12.4).
///
/// A device's encoded vector x (slot i at most uᵢ, its per-device maximum) is mapped to
/// zᵢ = stochastic rounding of s·xᵢ/uᵢ, an integer in 0...s, where the scale s is a power of two.
/// Its L2 norm is at most Δ = s·Δ₀ + √m, Δ₀² = 1 + Σ over features (4 numeric, 2 otherwise):
/// each group of slots is bounded by its per-device maxima. Each device adds N_Z(0, σ²) noise to
/// every zᵢ, clamped to ±⌈40σ⌉, with σ² = (z·Δ)²/n for noise multiplier z and n =
/// `minimumSurvivors`, so the sum over n devices has standard deviation z·Δ.
public struct PrivacyPlan: Sendable, Equatable {
    /// The settings the plan is derived from.
    public let settings: FeaturePrivacy
    /// s: integer steps per slot maximum.
    public let scale: UInt64
    /// z.
    public let noiseMultiplier: Double
    /// Δ, the L2 sensitivity of one device's rounded vector.
    public let l2Sensitivity: Double
    /// A bound on its L1 norm.
    public let l1Sensitivity: Double
    /// Each device's noise per coordinate.
    public let deviceNoise: DiscreteGaussian
    /// Each device clamps its noise to ±this (SPEC.md §12.4: exceeded with probability below e^−800).
    public let noiseClamp: Int64
    /// The Rényi curve of one window's release.
    public let windowCurve: RenyiCurve
    /// ε of one window's release at the settings' δ.
    public let windowEpsilon: Double

    /// The fewest standard deviations the clamp leaves.
    static let clampDeviations = 40.0

    /// Derives the plan for `layout`'s slots and `settings`; refuses settings that cannot be met,
    /// naming the field.
    init(slotMaxima: [UInt64], groupBounds: (l2Squared: Double, l1: Double), settings: FeaturePrivacy, bitWidth: Int, maximumCohort: Int) throws(FeatureDefinitionError) {
        let m = Double(slotMaxima.count)
        guard settings.delta > 0, settings.delta < 1e-2 else { throw .init(field: "privacy.delta", reason: "must be in (0, 0.01)") }
        guard settings.minimumSurvivors >= 2, settings.minimumSurvivors <= maximumCohort else {
            throw .init(field: "privacy.minimumSurvivors", reason: "must be in 2...maximumCohort (\(maximumCohort))")
        }
        if let budget = settings.budget, !(budget.epsilon > 0 && budget.epsilon.isFinite) {
            throw .init(field: "privacy.budget.epsilon", reason: "must be a positive number")
        }
        let base = groupBounds.l2Squared.squareRoot()
        func plan(multiplier z: Double) -> (scale: UInt64, sensitivity: Double, variance: (UInt64, UInt64))? {
            // The smallest power-of-two scale that keeps rounding within 5 % of the sensitivity
            // and each device's σ at least 2 (where the sum's τ term of the bound vanishes).
            var scale: UInt64 = 16
            while true {
                let sensitivity = Double(scale) * base + m.squareRoot()
                let variance = (z * sensitivity) * (z * sensitivity) / Double(settings.minimumSurvivors)
                if m.squareRoot() <= 0.05 * Double(scale) * base, variance >= 4 {
                    // σ² rounded up (more noise, never less) to a rational the sampler takes exactly.
                    let rational: (UInt64, UInt64) = variance >= 64
                        ? (UInt64(variance.rounded(.up)), 1) : (UInt64((variance * 256).rounded(.up)), 256)
                    return (scale, sensitivity, rational)
                }
                guard scale < 1 << 40 else { return nil }
                scale <<= 1
            }
        }
        func curve(_ p: (scale: UInt64, sensitivity: Double, variance: (UInt64, UInt64))) -> RenyiCurve {
            let l1 = min(p.sensitivity * m.squareRoot(), Double(p.scale) * groupBounds.l1 + m)
            return DistributedDiscreteGaussian.curve(
                variance: Double(p.variance.0) / Double(p.variance.1), devices: settings.minimumSurvivors, dimension: slotMaxima.count,
                l2Sensitivity: p.sensitivity, l1Sensitivity: l1)
        }
        let multiplier: Double
        switch (settings.epsilon, settings.noiseMultiplier) {
        case let (nil, z?):
            guard z > 0, z <= 1000 else { throw .init(field: "privacy.noiseMultiplier", reason: "must be in (0, 1000]") }
            multiplier = z
        case let (epsilon?, nil):
            guard epsilon > 0, epsilon <= 100 else { throw .init(field: "privacy.epsilon", reason: "must be in (0, 100]") }
            // The least noise that meets ε: ε falls as z grows, so bisect on z.
            var low = 0.01, high = 1000.0
            guard let loudest = plan(multiplier: high), curve(loudest).epsilon(delta: settings.delta).epsilon <= epsilon else {
                throw .init(field: "privacy.epsilon", reason: "ε = \(epsilon) at δ = \(settings.delta) cannot be met")
            }
            for _ in 0..<50 {
                let mid = (low * high).squareRoot()
                if let p = plan(multiplier: mid), curve(p).epsilon(delta: settings.delta).epsilon <= epsilon { high = mid } else { low = mid }
            }
            multiplier = high
        default:
            throw .init(field: "privacy", reason: "give exactly one of epsilon and noiseMultiplier")
        }
        guard let chosen = plan(multiplier: multiplier),
              let noise = DiscreteGaussian(varianceNumerator: chosen.variance.0, varianceDenominator: chosen.variance.1) else {
            throw .init(field: "privacy", reason: "the noise this needs is outside the exact sampler's range")
        }
        let clamp = Int64((Self.clampDeviations * noise.variance.squareRoot()).rounded(.up))
        // No wrap: over the largest cohort, every device at its maximum plus its clamped noise
        // stays inside the centred range (−2^(b−1), 2^(b−1)).
        let (perDevice, o1) = Int64(chosen.scale).addingReportingOverflow(clamp)
        let (worst, o2) = perDevice.multipliedReportingOverflow(by: Int64(maximumCohort))
        guard !o1, !o2, bitWidth == 64 ? true : worst < Int64(1) << Int64(bitWidth - 1) else {
            throw .init(field: "bitWidth", reason: "with this noise the sum over maximumCohort (\(maximumCohort)) devices needs more than \(bitWidth) bits (each device up to \(chosen.scale) plus noise clamped at ±\(clamp)); raise bitWidth or lower maximumCohort")
        }
        self.settings = settings
        scale = chosen.scale
        noiseMultiplier = multiplier
        l2Sensitivity = chosen.sensitivity
        l1Sensitivity = min(chosen.sensitivity * m.squareRoot(), Double(chosen.scale) * groupBounds.l1 + m)
        deviceNoise = noise
        noiseClamp = clamp
        windowCurve = curve(chosen)
        windowEpsilon = windowCurve.epsilon(delta: settings.delta).epsilon
    }

    /// What one window's release under this plan is, for accounting, in a vector of `dimension` slots.
    public func release(dimension: Int) -> DistributedDiscreteGaussian.Release {
        .init(variance: deviceNoise.variance, devices: settings.minimumSurvivors, dimension: dimension,
              l2Sensitivity: l2Sensitivity, l1Sensitivity: l1Sensitivity)
    }

    /// The standard deviation of the noise in a sum over `contributors` devices, in scaled units
    /// (noise and stochastic rounding).
    public func sumStandardDeviation(contributors: Int) -> Double {
        (Double(contributors) * (deviceNoise.variance + 0.25)).squareRoot()
    }
}
