import Foundation
import VeilCrypto
public import VeilFeatures

/// Draws each device's raw observations for each window from a feature scenario's generators,
/// reproducibly per device and window. Values are drawn beyond the features' bounds and limits
/// where the distributions reach there, so clipping is exercised too.
public struct FeatureObservationSynthesis: Sendable {
    /// The scenario whose generators are used.
    public let scenario: FeatureScenario
    /// Cumulative Zipf probabilities per categorical feature.
    private let zipfTables: [String: [Double]]

    /// Prepares the generators of `scenario` (validated).
    public init(scenario: FeatureScenario) {
        self.scenario = scenario
        var tables: [String: [Double]] = [:]
        for feature in scenario.featureSet.features {
            guard case let .categorical(vocabulary) = feature.kind, let g = scenario.observations[feature.name] else { continue }
            let s = g.exponent ?? 1
            let weights = (1...vocabulary.count).map { 1 / Foundation.pow(Double($0), s) }
            let total = weights.reduce(0, +)
            var running = 0.0
            tables[feature.name] = weights.map { running += $0 / total; return running }
        }
        zipfTables = tables
    }

    /// Whether `device` records anything in window `window` (index from the scenario's start).
    public func isActive(device: Int, window: Int) -> Bool {
        guard scenario.activeFraction < 1 else { return true }
        var random = SeededRandomSource(seed: scenario.seed, label: "active-\(device)-\(window)")
        return random.nextUnitDouble() < scenario.activeFraction
    }

    /// The raw observations of `device` in window `window`.
    public func observations(device: Int, window: Int) -> WindowObservations {
        var random = SeededRandomSource(seed: scenario.seed, label: "observations-\(device)-\(window)")
        var result = WindowObservations()
        for feature in scenario.featureSet.features {
            guard let g = scenario.observations[feature.name] else { continue }
            let span = UInt64(g.perDevice[1] - g.perDevice[0] + 1)
            let count = g.perDevice[0] + Int(random.nextUInt64(below: span))
            switch feature.kind {
            case .numeric, .histogram:
                result.values[feature.name] = (0..<count).map { _ in Self.draw(g, &random) }
            case let .categorical(vocabulary):
                let table = zipfTables[feature.name]!
                result.categories[feature.name] = (0..<count).map { _ in
                    if random.nextUnitDouble() < (g.outOfVocabulary ?? 0) { return "unlisted" }
                    let u = random.nextUnitDouble()
                    return vocabulary[table.firstIndex { $0 >= u } ?? (vocabulary.count - 1)]
                }
            case .eventCount:
                result.events[feature.name] = count
            }
        }
        return result
    }

    private static func draw(_ g: FeatureScenario.ObservationGenerator, _ random: inout SeededRandomSource) -> Double {
        if g.distribution == "normal" {
            let u = max(random.nextUnitDouble(), 0x1.0p-53)
            let v = random.nextUnitDouble()
            return g.mean! + g.standardDeviation! * Foundation.sqrt(-2 * Foundation.log(u)) * Foundation.cos(2 * Double.pi * v)
        }
        return g.minimum! + (g.maximum! - g.minimum!) * random.nextUnitDouble()
    }
}
