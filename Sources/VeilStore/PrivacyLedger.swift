import Foundation
public import VeilFeatures
public import VeilPrivacy

/// What one window of a feature set with differential privacy costs (SPEC.md §12.4): the
/// parameters of its noise, from which the ledger recomputes the window's Rényi curve. Charged
/// once per window (a device contributes to a window at most once, so the rounds of one window
/// are parallel, not sequential, releases), before the window's first round assigns a device.
public struct PrivacyCharge: Sendable, Equatable {
    /// The feature set's name: the ledger spans its versions, which read the same observations.
    public let featureSet: String
    /// The version whose round charged the window.
    public let version: Int
    /// The window's start.
    public let windowStart: Int
    /// The round that charged it.
    public let roundID: String
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

    /// Creates a charge.
    public init(featureSet: String, version: Int, windowStart: Int, roundID: String, variance: Double, devices: Int, dimension: Int, l2Sensitivity: Double, l1Sensitivity: Double) {
        self.featureSet = featureSet
        self.version = version
        self.windowStart = windowStart
        self.roundID = roundID
        self.variance = variance
        self.devices = devices
        self.dimension = dimension
        self.l2Sensitivity = l2Sensitivity
        self.l1Sensitivity = l1Sensitivity
    }

    /// The charge of window `windowStart` of `layout`'s set, by round `roundID`; nil without privacy.
    public init?(_ layout: FeatureLayout, windowStart: Int, roundID: String) {
        guard let plan = layout.privacy else { return nil }
        self.init(
            featureSet: layout.featureSet.name, version: layout.featureSet.version, windowStart: windowStart, roundID: roundID,
            variance: plan.deviceNoise.variance, devices: plan.settings.minimumSurvivors, dimension: layout.dimension,
            l2Sensitivity: plan.l2Sensitivity, l1Sensitivity: plan.l1Sensitivity)
    }

    /// The noise of the window's release.
    public var release: DistributedDiscreteGaussian.Release {
        .init(variance: variance, devices: devices, dimension: dimension, l2Sensitivity: l2Sensitivity, l1Sensitivity: l1Sensitivity)
    }

    /// The window's Rényi curve.
    public var curve: RenyiCurve { release.curve }

    /// The composition of `charges`.
    public static func composed(_ charges: [PrivacyCharge]) -> RenyiCurve {
        DistributedDiscreteGaussian.Release.composed(charges.map(\.release))
    }
}

/// How a ``AggregatorStore/chargePrivacy(_:budgetEpsilon:delta:now:)`` ended.
public enum PrivacyChargeOutcome: Sendable, Equatable {
    /// The window is now charged; ε spent over all windows is `spent`.
    case charged(spent: Double)
    /// The window was already charged (an earlier round of it); nothing changed.
    case alreadyCharged(spent: Double)
    /// Charging the window would take ε spent from `spent` to `wouldBe`, above the budget:
    /// nothing was charged and no round of the window may start.
    case refused(spent: Double, wouldBe: Double)
}

extension PrivacyChargeOutcome {
    /// Decides from the charges already in the ledger, inside the store's transaction. Both store
    /// implementations decide through this one function.
    static func deciding(_ charge: PrivacyCharge, ledger: [PrivacyCharge], budgetEpsilon: Double?, delta: Double) -> PrivacyChargeOutcome {
        let spent = PrivacyCharge.composed(ledger).epsilon(delta: delta).epsilon
        if ledger.contains(where: { $0.windowStart == charge.windowStart }) { return .alreadyCharged(spent: spent) }
        let wouldBe = PrivacyCharge.composed(ledger + [charge]).epsilon(delta: delta).epsilon
        if let budgetEpsilon, wouldBe > budgetEpsilon { return .refused(spent: spent, wouldBe: wouldBe) }
        return .charged(spent: wouldBe)
    }
}
