import Foundation
import Testing
import VeilCrypto
import VeilFeatures
import VeilPrivacy
import VeilProtocol

/// Distributed differential privacy on feature vectors (SPEC.md §12.4): the plan meets its ε, the
/// noise cannot wrap the sum, negative noised values decode as negative, and estimates fall
/// within their stated error bounds.
@Suite struct PrivateEncodingTests {
    static func set(privacy: FeaturePrivacy, bitWidth: Int = 64, maximumCohort: Int = 10_000) -> FeatureSet {
        var set = FeatureEncodingTests.fleet
        set.bitWidth = bitWidth
        set.maximumCohort = maximumCohort
        set.privacy = privacy
        return set
    }

    static func bits(_ label: String) -> NoiseBits {
        var random = SeededRandomSource(seed: 11, label: label)
        return NoiseBits(using: &random)
    }

    @Test func aTargetEpsilonIsMetWithTheLeastNoise() throws {
        let layout = try FeatureLayout(Self.set(privacy: FeaturePrivacy(epsilon: 1, delta: 1e-6, minimumSurvivors: 100)))
        let plan = try #require(layout.privacy)
        #expect(plan.windowEpsilon <= 1 && plan.windowEpsilon > 0.97, "ε per window \(plan.windowEpsilon)")
        #expect(plan.deviceNoise.variance >= 4)
        // A larger multiplier, given directly, spends less.
        let quieter = try FeatureLayout(Self.set(privacy: FeaturePrivacy(noiseMultiplier: plan.noiseMultiplier * 2, delta: 1e-6, minimumSurvivors: 100)))
        #expect(try #require(quieter.privacy).windowEpsilon < plan.windowEpsilon / 1.5)
        // Composition over windows: the curve composes.
        #expect(plan.windowCurve.composed(times: 10).epsilon(delta: 1e-6).epsilon < 10 * plan.windowEpsilon)
    }

    @Test func settingsThatCannotWorkAreRefusedByField() {
        func field(_ privacy: FeaturePrivacy, bitWidth: Int = 64, cohort: Int = 10_000) -> String? {
            do { _ = try FeatureLayout(Self.set(privacy: privacy, bitWidth: bitWidth, maximumCohort: cohort)); return nil } catch { return error.field }
        }
        #expect(field(FeaturePrivacy(delta: 1e-6, minimumSurvivors: 100)) == "privacy")
        #expect(field(FeaturePrivacy(epsilon: 1, noiseMultiplier: 1, delta: 1e-6, minimumSurvivors: 100)) == "privacy")
        #expect(field(FeaturePrivacy(epsilon: 1, delta: 0.5, minimumSurvivors: 100)) == "privacy.delta")
        #expect(field(FeaturePrivacy(epsilon: 1, delta: 1e-6, minimumSurvivors: 1)) == "privacy.minimumSurvivors")
        #expect(field(FeaturePrivacy(epsilon: 1, delta: 1e-6, minimumSurvivors: 100, budget: PrivacyBudget(epsilon: 0))) == "privacy.budget.epsilon")
        // Noise that could wrap the sum: refused, naming the bit width.
        #expect(field(FeaturePrivacy(epsilon: 0.1, delta: 1e-6, minimumSurvivors: 100), bitWidth: 24, cohort: 10_000) == "bitWidth")
    }

    @Test func negativeNoisedSumsDecodeAsNegative() throws {
        let layout = try FeatureLayout(Self.set(privacy: FeaturePrivacy(epsilon: 1, delta: 1e-6, minimumSurvivors: 100), bitWidth: 48))
        let plan = try #require(layout.privacy)
        // Every element −s: one device's maximum, negated, in the centred representation.
        let minus = (1 << 48) - plan.scale
        let sum = try ModularVector(values: [UInt64](repeating: minus, count: layout.dimension), bitWidth: 48)
        let estimates = try #require(try layout.estimate(sum, contributors: 100))
        let crashes = try #require(estimates["crashes"])
        #expect(crashes.values["count"] == -5, "−s scaled back is −maximumValuesPerDevice")
        #expect(try #require(estimates["app_category"]).values["category:maps"] == -20)
    }

    /// Devices' noised vectors sum to estimates within the stated 95 % bounds of the exact values.
    @Test func estimatesFallWithinTheirErrorBounds() throws {
        let layout = try FeatureLayout(Self.set(privacy: FeaturePrivacy(epsilon: 2, delta: 1e-6, minimumSurvivors: 50)))
        var bits = Self.bits("estimates")
        var random = SeededRandomSource(seed: 12, label: "observations")
        var exact = ModularVector(zerosOfCount: layout.dimension, bitWidth: 64)
        var noised = ModularVector(zerosOfCount: layout.dimension, bitWidth: 64)
        let devices = 200
        for _ in 0..<devices {
            let observations = WindowObservations(
                values: ["session_seconds": (0..<5).map { _ in Double(random.nextUInt64(below: 3600)) },
                         "temperature_c": (0..<20).map { _ in Double(random.nextUInt64(below: 60)) - 10 }],
                categories: ["app_category": (0..<4).map { _ in ["maps", "music", "video"][Int(random.nextUInt64(below: 3))] }],
                events: ["crashes": Int(random.nextUInt64(below: 4))])
            let encoded = try layout.encode(observations)
            exact.add(encoded)
            noised.add(layout.privatize(encoded, bits: &bits))
        }
        let truth = try layout.decode(exact)
        let estimates = try #require(try layout.estimate(noised, contributors: devices))
        var inside = 0, total = 0, noisy = 0
        func check(_ feature: String, _ statistic: String, _ value: Double) {
            guard let estimate = estimates[feature], let v = estimate.values[statistic], let bound = estimate.errorBounds[statistic] else {
                Issue.record("\(feature).\(statistic) missing"); return
            }
            total += 1
            if abs(v - value) <= bound { inside += 1 }
            if abs(v - value) > 0.05 * bound { noisy += 1 }
            #expect(abs(v - value) <= 2 * bound, "\(feature).\(statistic): \(v) vs \(value) ± \(bound)")
        }
        if case let .numeric(count, sum, _, _, _) = truth.values["session_seconds"] {
            check("session_seconds", "count", Double(count))
            check("session_seconds", "sum", sum)
        }
        if case let .histogram(_, counts, _) = truth.values["temperature_c"] {
            for (j, c) in counts.enumerated() { check("temperature_c", "bucket:\([-20.0, 0, 10, 20, 30][j])", Double(c)) }
        }
        if case let .categorical(counts, _) = truth.values["app_category"] {
            for (k, c) in counts { check("app_category", "category:\(k)", Double(c)) }
        }
        if case let .eventCount(count, _) = truth.values["crashes"] { check("crashes", "count", Double(count)) }
        #expect(total == 11 && inside >= 9, "\(inside) of \(total) inside their 95 % bounds")
        #expect(noisy >= 8, "the noise is there: \(noisy) of \(total) estimates moved by more than 5 % of their bound")
    }
}
