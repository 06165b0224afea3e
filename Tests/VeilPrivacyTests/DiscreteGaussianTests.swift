import Foundation
import Testing
import VeilCrypto
@testable import VeilPrivacy

/// The exact discrete Gaussian sampler: distribution (mean, variance, tails, probabilities of
/// single values against the normalised density) with fixed seeds, and exact Bernoulli trials.
@Suite struct DiscreteGaussianTests {
    static func bits(_ label: String) -> NoiseBits {
        var random = SeededRandomSource(seed: 7, label: label)
        return NoiseBits(using: &random)
    }

    /// P[X = x] for N_Z(0, σ²), computed from the definition by summing the normaliser.
    static func probability(_ x: Int, variance: Double) -> Double {
        let bound = Int((variance.squareRoot() * 40).rounded(.up)) + 10
        var normaliser = 0.0
        for k in -bound...bound { normaliser += exp(-Double(k * k) / (2 * variance)) }
        return exp(-Double(x * x) / (2 * variance)) / normaliser
    }

    @Test(arguments: [(UInt64(1), UInt64(4)), (4, 1), (100, 1), (10_000, 1), (2_500_001, 256)])
    func samplesHaveTheDiscreteGaussiansMomentsAndTails(_ numerator: UInt64, _ denominator: UInt64) throws {
        let sampler = try #require(DiscreteGaussian(varianceNumerator: numerator, varianceDenominator: denominator))
        var bits = Self.bits("moments-\(numerator)-\(denominator)")
        let count = 200_000
        var values = [Int64](repeating: 0, count: count)
        sampler.addNoise(to: &values, bits: &bits)
        let variance = sampler.variance
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(count)
        let secondMoment = values.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(count)
        // The discrete Gaussian's variance is at most σ² (and within 10⁻⁴ of it for σ ≥ 1).
        let standardError = (variance / Double(count)).squareRoot()
        #expect(abs(mean) < 5 * standardError, "mean \(mean)")
        let expectedVariance = variance >= 1 ? variance : (-40...40).reduce(0.0) { $0 + Double($1 * $1) * Self.probability($1, variance: variance) }
        #expect(abs(secondMoment - expectedVariance) < 5 * expectedVariance * (2.0 / Double(count)).squareRoot() + 1e-3, "variance \(secondMoment), expected \(expectedVariance)")
        // Tails: beyond 3σ at most the Gaussian's 0.27 % (with sampling slack), beyond 6σ none.
        let sigma = variance.squareRoot()
        let beyond3 = values.count(where: { Double($0.magnitude) > 3 * sigma })
        #expect(Double(beyond3) / Double(count) < 0.0027 * 1.3 + 0.0005)
        #expect(!values.contains { Double($0.magnitude) > 6 * sigma + 1 })
        // Symmetry.
        let positive = values.count(where: { $0 > 0 }), negative = values.count(where: { $0 < 0 })
        #expect(abs(positive - negative) < 5 * Int(Double(count).squareRoot()))
    }

    /// The frequency of each small value matches the normalised density (a χ² test at 0.1 %).
    @Test func singleValueFrequenciesMatchTheDensity() throws {
        let variance = 9.0
        let sampler = try #require(DiscreteGaussian(varianceNumerator: 9, varianceDenominator: 1))
        var bits = Self.bits("chi-square")
        let count = 300_000
        var histogram: [Int64: Int] = [:]
        for _ in 0..<count { histogram[sampler.sample(bits: &bits), default: 0] += 1 }
        var chiSquare = 0.0
        var outside = 0.0, outsideObserved = 0
        for x in -8...8 {
            let expected = Self.probability(x, variance: variance) * Double(count)
            let observed = Double(histogram[Int64(x)] ?? 0)
            chiSquare += (observed - expected) * (observed - expected) / expected
        }
        for (x, n) in histogram where abs(x) > 8 { outsideObserved += n }
        for x in 9...200 { outside += 2 * Self.probability(x, variance: variance) * Double(count) }
        chiSquare += (Double(outsideObserved) - outside) * (Double(outsideObserved) - outside) / outside
        // 17 + 1 cells, 17 degrees of freedom: the 99.9 % quantile is 40.8.
        #expect(chiSquare < 40.8, "χ² = \(chiSquare)")
    }

    @Test func fixedSeedsGiveFixedSamplesAndFreshKeysDoNot() throws {
        let sampler = try #require(DiscreteGaussian(varianceNumerator: 100, varianceDenominator: 1))
        var a = Self.bits("same")
        var b = Self.bits("same")
        let first = (0..<32).map { _ in sampler.sample(bits: &a) }
        #expect(first == (0..<32).map { _ in sampler.sample(bits: &b) })
        var system = SystemRandomSource()
        var fresh = NoiseBits(using: &system)
        var other = NoiseBits(using: &system)
        #expect((0..<32).map { _ in sampler.sample(bits: &fresh) } != (0..<32).map { _ in sampler.sample(bits: &other) })
    }

    @Test func exactBernoulliTrialsHaveTheirProbability() {
        var bits = Self.bits("bernoulli")
        let count = 200_000
        for (numerator, denominator) in [(UInt128(1), UInt128(3)), (2, 7), (999, 1000), (0, 5), (5, 5)] {
            let p = Double(numerator) / Double(denominator)
            let hits = (0..<count).count(where: { _ in ExactBernoulli.trial(numerator, denominator, bits: &bits) })
            #expect(abs(Double(hits) / Double(count) - p) < 5 * (p * (1 - p) / Double(count)).squareRoot() + 1e-9, "\(numerator)/\(denominator)")
        }
        for (numerator, denominator) in [(UInt64(1), UInt64(3)), (2, 7), (999, 1000), (0, 5), (5, 5), (1 << 40, (1 << 41) + 1)] {
            let p = Double(numerator) / Double(denominator)
            let hits = (0..<count).count(where: { _ in ExactBernoulli.trial64(numerator, denominator, bits: &bits) })
            #expect(abs(Double(hits) / Double(count) - p) < 5 * (p * (1 - p) / Double(count)).squareRoot() + 1e-9, "64-bit \(numerator)/\(denominator)")
        }
        // Large denominators take the 128-bit path of expMinus; small ones the 64-bit one.
        for (numerator, denominator) in [(UInt128(1), UInt128(2)), (1, 1), (5, 2), (30, 7), (UInt128(1) << 70, UInt128(3) << 69)] {
            let p = exp(-Double(numerator) / Double(denominator))
            let hits = (0..<count).count(where: { _ in ExactBernoulli.expMinus(numerator, denominator, bits: &bits) })
            #expect(abs(Double(hits) / Double(count) - p) < 5 * (p * (1 - p) / Double(count)).squareRoot() + 1e-4, "exp(-\(numerator)/\(denominator))")
        }
    }

    @Test func parametersOutsideTheExactRangeAreRefused() {
        #expect(DiscreteGaussian(varianceNumerator: 0, varianceDenominator: 1) == nil)
        #expect(DiscreteGaussian(varianceNumerator: 1, varianceDenominator: 1 << 17) == nil)
        #expect(DiscreteGaussian(varianceNumerator: UInt64.max, varianceDenominator: 1) == nil)
        #expect(DiscreteGaussian(varianceNumerator: 17, varianceDenominator: 1)?.laplaceScale == 5)
    }
}
