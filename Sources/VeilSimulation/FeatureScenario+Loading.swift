public import Foundation
import VeilFeatures
import VeilProtocol

/// A scenario file of either kind.
public enum AnyScenario: Sendable {
    /// One round of synthetic vectors (`Scenario`).
    case round(Scenario)
    /// Feature-set windows (`FeatureScenario`).
    case features(FeatureScenario)

    /// Reads and validates a scenario file: a feature scenario when it has a `featureSet`.
    public static func load(path: String) throws(ScenarioError) -> AnyScenario {
        let data = try Scenario.read(path: path)
        let isFeature = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["featureSet"] != nil
        return isFeature ? .features(try FeatureScenario.decode(data)) : .round(try Scenario.decode(data))
    }
}

extension FeatureScenario {
    /// Reads and validates a feature scenario file.
    public static func load(path: String) throws(ScenarioError) -> FeatureScenario {
        try decode(Scenario.read(path: path))
    }

    /// Decodes and validates feature scenario JSON.
    public static func decode(_ data: Data) throws(ScenarioError) -> FeatureScenario {
        let scenario = try Scenario.decodeJSON(FeatureScenario.self, from: data)
        try scenario.validate()
        return scenario
    }

    /// Checks ranges and consistency, naming the field at fault.
    public func validate() throws(ScenarioError) {
        let layout = try layout()
        guard devices >= 3 else { throw ScenarioError(field: "devices", reason: "must be at least 3, got \(devices)") }
        guard devices <= featureSet.maximumCohort else {
            throw ScenarioError(field: "devices", reason: "\(devices) devices could exceed the feature set's maximumCohort \(featureSet.maximumCohort) in one window")
        }
        guard (1...1000).contains(windows) else { throw ScenarioError(field: "windows", reason: "must be in 1...1000, got \(windows)") }
        guard windowSeconds >= 1, 86_400 % windowSeconds == 0 || windowSeconds % 86_400 == 0 else {
            throw ScenarioError(field: "windowSeconds", reason: "must divide a day or be a whole number of days, got \(windowSeconds)")
        }
        guard start % windowSeconds == 0 else { throw ScenarioError(field: "start", reason: "must be a multiple of windowSeconds (\(windowSeconds)), got \(start)") }
        guard minimumReleaseCohort >= 1 else { throw ScenarioError(field: "minimumReleaseCohort", reason: "must be at least 1") }
        if let epsilons {
            guard featureSet.privacy != nil else { throw ScenarioError(field: "epsilons", reason: "needs a feature set with privacy") }
            guard (1...20).contains(epsilons.count), epsilons.allSatisfy({ $0 > 0 && $0 <= 100 }) else {
                throw ScenarioError(field: "epsilons", reason: "must be 1...20 values in (0, 100]")
            }
            for epsilon in epsilons { _ = try privateLayout(epsilon: epsilon) }
        }
        guard (1...10).contains(roundsPerWindow) else { throw ScenarioError(field: "roundsPerWindow", reason: "must be in 1...10, got \(roundsPerWindow)") }
        guard activeFraction > 0, activeFraction <= 1 else { throw ScenarioError(field: "activeFraction", reason: "must be in (0, 1], got \(activeFraction)") }
        // Graph, threat model and dropout are checked as a round of the whole fleet checks them.
        let fleetRound = try roundScenario(cohort: devices, window: 0, attempt: 0)
        try fleetRound.validate()
        // A round of the whole fleet must have safe parameters; smaller later rounds may not.
        _ = try SimulationEngine(scenario: fleetRound).graphParameters()
        for (name, generator) in observations.sorted(by: { $0.key < $1.key }) {
            let path = "observations.\(name)"
            guard let feature = layout.featureSet.features.first(where: { $0.name == name }) else {
                throw ScenarioError(field: path, reason: "the feature set has no feature \"\(name)\"")
            }
            guard generator.perDevice.count == 2, generator.perDevice[0] >= 0, generator.perDevice[0] <= generator.perDevice[1], generator.perDevice[1] <= 100_000 else {
                throw ScenarioError(field: "\(path).perDevice", reason: "must be [minimum, maximum] with 0 <= minimum <= maximum <= 100000")
            }
            switch feature.kind {
            case .numeric, .histogram:
                switch generator.distribution {
                case "uniform":
                    guard let a = generator.minimum, let b = generator.maximum, a.isFinite, b.isFinite, a < b else {
                        throw ScenarioError(field: "\(path).minimum", reason: "uniform needs finite minimum < maximum")
                    }
                case "normal":
                    guard let m = generator.mean, let s = generator.standardDeviation, m.isFinite, s.isFinite, s >= 0 else {
                        throw ScenarioError(field: "\(path).standardDeviation", reason: "normal needs a finite mean and a standardDeviation >= 0")
                    }
                default:
                    throw ScenarioError(field: "\(path).distribution", reason: "must be uniform or normal for a \(Self.kindName(feature)) feature, got \(generator.distribution.map { "\"\($0)\"" } ?? "nothing")")
                }
            case .categorical:
                guard generator.distribution == "zipf" else {
                    throw ScenarioError(field: "\(path).distribution", reason: "must be zipf for a categorical feature")
                }
                guard let s = generator.exponent, s.isFinite, s >= 0 else { throw ScenarioError(field: "\(path).exponent", reason: "zipf needs an exponent >= 0") }
                if let o = generator.outOfVocabulary, !(0..<1).contains(o) {
                    throw ScenarioError(field: "\(path).outOfVocabulary", reason: "must be a fraction in [0, 1)")
                }
            case .eventCount:
                guard generator.distribution == nil else {
                    throw ScenarioError(field: "\(path).distribution", reason: "an eventCount feature draws only its count (perDevice)")
                }
            }
        }
    }

    static func kindName(_ feature: Feature) -> String {
        switch feature.kind {
        case .numeric: return "numeric"
        case .histogram: return "histogram"
        case .categorical: return "categorical"
        case .eventCount: return "eventCount"
        }
    }

    /// The scenario with command-line `overrides` applied, validated again. The vector length and
    /// bit width come from the feature set and cannot be overridden.
    public func applying(_ overrides: ScenarioOverrides) throws(ScenarioError) -> FeatureScenario {
        guard overrides.dimension == nil else { throw ScenarioError(field: "--dimension", reason: "a feature scenario's vector length is its feature set's layout") }
        guard overrides.bitWidth == nil else { throw ScenarioError(field: "--bit-width", reason: "a feature scenario's bit width is its feature set's") }
        var s = self
        var base = try roundScenario(cohort: devices, window: 0, attempt: 0)
        base.seed = seed
        var rest = overrides
        rest.dimension = nil
        rest.bitWidth = nil
        let changed = try base.applying(rest)
        s.devices = changed.devices
        s.graph = changed.graph
        s.threatModel = changed.threatModel
        s.dropout = changed.dropout
        s.seed = changed.seed
        try s.validate()
        return s
    }
}
