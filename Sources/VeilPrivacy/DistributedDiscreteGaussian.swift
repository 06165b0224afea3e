import Foundation

/// The privacy of a sum of n devices' vectors, each device adding independent N_Z(0, σ²) noise to
/// every coordinate (Kairouz, Liu and Steinke, "The Distributed Discrete Gaussian Mechanism for
/// Federated Learning with Secure Aggregation", ICML 2021, Proposition 14): for a change of one
/// device's vector by Δ (L2 norm Δ₂, L1 norm Δ₁) in d dimensions, for every α ≥ 1,
///
///     D_α ≤ min{ αΔ₂²/(2nσ²) + τd,
///                (α/2)(Δ₂²/(nσ²) + 2Δ₁τ/(√n σ) + τ²d),
///                (α/2)(Δ₂/(√n σ) + τ√d)² },   τ = 10 Σ_{k=1}^{n−1} exp(−2π²σ² k/(k+1)),
///
/// valid for σ ≥ 1/2. τ measures how far the sum of discrete Gaussians is from one discrete
/// Gaussian; it vanishes quickly as σ grows (below 10⁻¹⁵ n for σ ≥ 2).
public enum DistributedDiscreteGaussian {
    /// τ for n devices each adding N_Z(0, σ²): the first 1,000 terms summed, the rest bounded
    /// above by their count times the 1,001st (terms only shrink with k), so τ is never
    /// under-estimated and costs at most 1,001 exponentials whatever n is.
    public static func tau(variance: Double, devices: Int) -> Double {
        guard devices > 1 else { return 0 }
        func term(_ k: Int) -> Double { exp(-2 * Double.pi * Double.pi * variance * Double(k) / Double(k + 1)) }
        let summed = min(devices - 1, 1000)
        var sum = 0.0
        for k in 1...summed { sum += term(k) }
        if devices - 1 > summed { sum += Double(devices - 1 - summed) * term(summed + 1) }
        return 10 * sum
    }

    /// The Rényi curve of one release of the sum over `devices` devices, each adding N_Z(0,
    /// `variance`) per coordinate, for a device's vector of L2 norm at most `l2Sensitivity` and
    /// L1 norm at most `l1Sensitivity` in `dimension` coordinates. `variance` must be at least 1/4.
    public static func curve(variance: Double, devices: Int, dimension: Int, l2Sensitivity: Double, l1Sensitivity: Double) -> RenyiCurve {
        precondition(variance >= 0.25 && devices >= 1, "Proposition 14 needs σ ≥ 1/2 and at least one device")
        let n = Double(devices), d = Double(dimension), sigma = variance.squareRoot()
        let tau = tau(variance: variance, devices: devices)
        let ratio = l2Sensitivity * l2Sensitivity / (n * variance)
        return RenyiCurve { alpha in
            let first = alpha * ratio / 2 + tau * d
            let second = alpha / 2 * (ratio + 2 * l1Sensitivity * tau / (n.squareRoot() * sigma) + tau * tau * d)
            let root = l2Sensitivity / (n.squareRoot() * sigma) + tau * d.squareRoot()
            let third = alpha / 2 * root * root
            return min(first, second, third)
        }
    }
}

extension DistributedDiscreteGaussian {
    /// What one release of a sum with distributed discrete Gaussian noise is, for accounting:
    /// enough to recompute its Rényi curve. Both the aggregator's ledger and a device's own
    /// record of the windows it contributed compose these.
    public struct Release: Sendable, Hashable, Codable {
        /// σ² of each device's noise.
        public let variance: Double
        /// The devices the noise is sized for.
        public let devices: Int
        /// m.
        public let dimension: Int
        /// The L2 sensitivity of one device's vector.
        public let l2Sensitivity: Double
        /// A bound on its L1 norm.
        public let l1Sensitivity: Double

        /// Creates a release.
        public init(variance: Double, devices: Int, dimension: Int, l2Sensitivity: Double, l1Sensitivity: Double) {
            self.variance = variance
            self.devices = devices
            self.dimension = dimension
            self.l2Sensitivity = l2Sensitivity
            self.l1Sensitivity = l1Sensitivity
        }

        /// Its Rényi curve.
        public var curve: RenyiCurve {
            DistributedDiscreteGaussian.curve(variance: variance, devices: devices, dimension: dimension, l2Sensitivity: l2Sensitivity, l1Sensitivity: l1Sensitivity)
        }

        /// The composition of `releases`: equal releases share one curve, composed as many times
        /// as they occur.
        public static func composed(_ releases: [Release]) -> RenyiCurve {
            var counts: [Release: Int] = [:]
            for r in releases { counts[r, default: 0] += 1 }
            return counts.reduce(RenyiCurve.zero) { $0.composed(with: $1.key.curve.composed(times: $1.value)) }
        }
    }
}
