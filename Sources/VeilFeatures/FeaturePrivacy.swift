import Foundation

/// Distributed differential privacy for a feature set (SPEC.md §12.4), off unless a definition
/// has a `privacy` object. Each device clips, scales, stochastically rounds and adds discrete
/// Gaussian noise to its encoded vector before masking, sized so that the sum over
/// `minimumSurvivors` devices carries the target noise. JSON form:
/// ```json
/// "privacy": { "epsilon": 1.0, "delta": 1e-6, "minimumSurvivors": 100,
///              "budget": { "epsilon": 8.0 } }
/// ```
/// with either `epsilon` (per window, at `delta`) or `noiseMultiplier` (the sum's noise standard
/// deviation over the L2 sensitivity).
public struct FeaturePrivacy: Codable, Sendable, Equatable {
    /// The target ε of one window's release, at ``delta``; the noise is the least that meets it.
    public var epsilon: Double?
    /// The noise standard deviation of the sum over ``minimumSurvivors`` devices, in units of one
    /// device's L2 sensitivity (instead of ``epsilon``).
    public var noiseMultiplier: Double?
    /// δ for one window's ε and for the budget.
    public var delta: Double
    /// The fewest devices whose noise a released sum may carry: rounds of this set abort before
    /// unmasking with fewer survivors, and noise is sized for exactly this many.
    public var minimumSurvivors: Int
    /// The most ε the set's releases may spend over all windows (at ``delta``); nil for no limit.
    public var budget: PrivacyBudget?

    /// Creates settings.
    public init(epsilon: Double? = nil, noiseMultiplier: Double? = nil, delta: Double, minimumSurvivors: Int, budget: PrivacyBudget? = nil) {
        self.epsilon = epsilon
        self.noiseMultiplier = noiseMultiplier
        self.delta = delta
        self.minimumSurvivors = minimumSurvivors
        self.budget = budget
    }
}

/// A limit on the privacy a feature set's releases may spend over all its windows.
public struct PrivacyBudget: Codable, Sendable, Equatable {
    /// The most ε, at the set's δ, over every window composed.
    public var epsilon: Double

    /// Creates a budget.
    public init(epsilon: Double) { self.epsilon = epsilon }
}
