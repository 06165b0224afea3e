import Foundation

/// A Rényi differential privacy curve: ε(α) for each order α of a fixed grid (Mironov, "Rényi
/// Differential Privacy", CSF 2017). Curves of mechanisms run in sequence add order by order
/// (composition); ``epsilon(delta:)`` converts to (ε, δ)-DP.
public struct RenyiCurve: Sendable, Equatable, Codable {
    /// The orders α > 1 the curve is kept at: dense near 1, where small ε is decided, and up to
    /// 10,000, where large compositions of small steps are.
    public static let orders: [Double] = {
        var orders: [Double] = []
        var alpha = 1.001
        while alpha < 1.1 { orders.append(alpha); alpha += 0.001 }
        while alpha < 2 { orders.append(alpha); alpha += 0.005 }
        while alpha < 10 { orders.append(alpha); alpha += 0.02 }
        while alpha < 100 { orders.append(alpha); alpha += 0.25 }
        while alpha < 1000 { orders.append(alpha); alpha += 2.5 }
        while alpha <= 10_000 { orders.append(alpha); alpha += 25 }
        return orders
    }()

    /// ε(α) at each of ``orders``.
    public private(set) var epsilons: [Double]

    /// The curve of a mechanism that reveals nothing.
    public static let zero = RenyiCurve(epsilons: [Double](repeating: 0, count: orders.count))

    /// A curve from its values at ``orders``.
    public init(epsilons: [Double]) {
        precondition(epsilons.count == Self.orders.count, "one ε per order")
        self.epsilons = epsilons
    }

    /// The curve of `epsilon(α)`.
    public init(_ epsilon: (Double) -> Double) {
        epsilons = Self.orders.map(epsilon)
    }

    /// The composition of this mechanism and `other`.
    public func composed(with other: RenyiCurve) -> RenyiCurve {
        RenyiCurve(epsilons: zip(epsilons, other.epsilons).map { $0 + $1 })
    }

    /// The composition of `count` runs of this mechanism.
    public func composed(times count: Int) -> RenyiCurve {
        RenyiCurve(epsilons: epsilons.map { $0 * Double(count) })
    }

    /// The smallest ε over the grid such that the mechanism is (ε, δ)-DP, with the order that
    /// gives it, by the conversion of Balle, Barthe, Gaboardi, Hsu and Sato ("Hypothesis Testing
    /// Interpretations and Rényi Differential Privacy", AISTATS 2020, Theorem 21; also Canonne,
    /// Kamath and Steinke 2020, Proposition 12): ε = ε(α) + ln((α − 1)/α) − (ln δ + ln α)/(α − 1).
    /// Minimising over a grid never gives less than the minimum over all α, so the ε reported is
    /// never below the exact value of this bound.
    public func epsilon(delta: Double) -> (epsilon: Double, order: Double) {
        precondition(delta > 0 && delta < 1, "δ must be in (0, 1)")
        var best = (epsilon: Double.infinity, order: Self.orders[0])
        for (alpha, rdp) in zip(Self.orders, epsilons) {
            let epsilon = rdp + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
            if epsilon < best.epsilon { best = (epsilon, alpha) }
        }
        return (max(0, best.epsilon), best.order)
    }
}
