import Foundation
import VeilFeatures
import VeilPrivacy
import VeilStore

/// A round refused because its feature set's privacy budget was spent (SPEC.md §12.4).
struct BudgetRefusal: Sendable, Equatable, Codable {
    /// The window the round was for.
    let window: Int
    /// When, in seconds since the Unix epoch.
    let at: Double
    /// ε spent before.
    let spent: Double
    /// ε the window would have taken it to.
    let wouldBe: Double
    /// The budget.
    let budget: Double

    /// The reason given to devices, the API and the log.
    var reason: String {
        "the privacy budget is spent: window \(window) would take ε from \(Self.formatted(spent)) to \(Self.formatted(wouldBe)), above the budget of \(Self.formatted(budget))"
    }

    static func formatted(_ x: Double) -> String { String(format: "%.4g", x) }
}

/// `GET /v1/feature-sets/{name}/budget`: what a feature set's releases spent and what remains.
struct BudgetStatus: Codable, Sendable {
    struct Charge: Codable, Sendable {
        let windowStart: Int
        let version: Int
        let roundID: String
    }
    let featureSet: String
    let version: Int
    let mechanism: String
    let delta: Double
    /// The budget's ε, or nil for none.
    let budgetEpsilon: Double?
    /// ε of one more window at the current version's noise.
    let windowEpsilon: Double
    let spentEpsilon: Double
    let remainingEpsilon: Double?
    /// How many more windows the budget allows at the current noise (nil: no budget).
    let remainingWindows: Int?
    /// Whether the next new window would be refused.
    let exhausted: Bool
    let lastRefusal: BudgetRefusal?
    let windows: [Charge]

    /// The status of `layout`'s set (its privacy plan) given its ledger.
    init(_ layout: FeatureLayout, plan: PrivacyPlan, ledger: [PrivacyCharge], lastRefusal: BudgetRefusal?) {
        let set = layout.featureSet
        let delta = plan.settings.delta
        let spentCurve = PrivacyCharge.composed(ledger)
        featureSet = set.name
        version = set.version
        mechanism = "distributedDiscreteGaussian"
        self.delta = delta
        budgetEpsilon = plan.settings.budget?.epsilon
        windowEpsilon = plan.windowEpsilon
        spentEpsilon = ledger.isEmpty ? 0 : spentCurve.epsilon(delta: delta).epsilon
        windows = ledger.map { Charge(windowStart: $0.windowStart, version: $0.version, roundID: $0.roundID) }
        self.lastRefusal = lastRefusal
        if let budget = plan.settings.budget?.epsilon {
            remainingEpsilon = max(0, budget - spentEpsilon)
            // The most further windows at this noise that keep the composition within budget.
            func fits(_ k: Int) -> Bool { spentCurve.composed(with: plan.windowCurve.composed(times: k)).epsilon(delta: delta).epsilon <= budget }
            var low = 0, high = 1
            while high < 1 << 20, fits(high) { low = high; high *= 2 }
            while high - low > 1 {
                let mid = (low + high) / 2
                if fits(mid) { low = mid } else { high = mid }
            }
            remainingWindows = fits(low) ? low : 0
            exhausted = remainingWindows == 0
        } else {
            remainingEpsilon = nil
            remainingWindows = nil
            exhausted = false
        }
    }
}
