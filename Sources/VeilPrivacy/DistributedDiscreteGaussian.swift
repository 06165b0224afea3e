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
    /// τ for n devices each adding N_Z(0, σ²).
    public static func tau(variance: Double, devices: Int) -> Double {
        guard devices > 1 else { return 0 }
        var sum = 0.0
        for k in 1..<devices {
            let term = exp(-2 * Double.pi * Double.pi * variance * Double(k) / Double(k + 1))
            sum += term
            // Terms only shrink with k, towards exp(−2π²σ²): stop once the rest cannot matter.
            if term * Double(devices - k) < sum * 1e-17 { break }
        }
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
