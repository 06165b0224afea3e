public import Foundation
import VeilProtocol

/// A scenario that cannot be used, naming the field at fault.
public struct ScenarioError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The JSON path of the field (for example `graph.degree` or `data[1].kind`).
    public let field: String
    /// What is wrong with it.
    public let reason: String

    /// Creates an error for `field`.
    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    /// "field: reason".
    public var description: String { "\(field): \(reason)" }
}

extension Scenario {
    /// Reads and validates a scenario file.
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        try decode(read(path: path))
    }

    /// Decodes and validates scenario JSON.
    public static func decode(_ data: Data) throws(ScenarioError) -> Scenario {
        let scenario = try decodeJSON(Scenario.self, from: data)
        try scenario.validate()
        return scenario
    }

    /// Decodes JSON, turning a decoding failure into an error naming the field.
    static func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data) throws(ScenarioError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ScenarioError(field: path(context.codingPath + [key]), reason: "is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ScenarioError(field: path(context.codingPath), reason: context.debugDescription)
        } catch let DecodingError.valueNotFound(_, context) {
            throw ScenarioError(field: path(context.codingPath), reason: "is null")
        } catch let DecodingError.dataCorrupted(context) {
            throw ScenarioError(field: context.codingPath.isEmpty ? "(file)" : path(context.codingPath), reason: context.debugDescription)
        } catch {
            throw ScenarioError(field: "(file)", reason: "\(error)")
        }
    }

    /// Reads a file's bytes.
    static func read(path: String) throws(ScenarioError) -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ScenarioError(field: "(file)", reason: "cannot read \(path): \(error.localizedDescription)")
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        var result = ""
        for key in keys {
            if let index = key.intValue { result += "[\(index)]" } else { result += (result.isEmpty ? "" : ".") + key.stringValue }
        }
        return result
    }

    /// Checks ranges and consistency; the protocol checks the rest when the round is configured.
    public func validate() throws(ScenarioError) {
        if let problem = network?.problem() { throw ScenarioError(field: "network", reason: problem) }
        if let deadlines {
            let phases = Set(Phase.allCases.map(DeadlineSpec.key))
            for (name, seconds) in deadlines.phases.sorted(by: { $0.key < $1.key }) {
                guard phases.contains(name) else { throw ScenarioError(field: "deadlines.\(name)", reason: "is not a phase; the phases are \(phases.sorted())") }
                guard seconds > 0, seconds.isFinite else { throw ScenarioError(field: "deadlines.\(name)", reason: "must be a positive number of seconds") }
            }
            guard deadlines.default > 0, deadlines.default.isFinite else { throw ScenarioError(field: "deadlines.default", reason: "must be a positive number of seconds") }
            guard network != nil else { throw ScenarioError(field: "deadlines", reason: "apply in simulated time, which needs a network") }
        }
        guard devices >= 3 else { throw ScenarioError(field: "devices", reason: "must be at least 3, got \(devices)") }
        guard dimension >= 1 else { throw ScenarioError(field: "dimension", reason: "must be at least 1, got \(dimension)") }
        guard (1...64).contains(bitWidth) else { throw ScenarioError(field: "bitWidth", reason: "must be in 1...64, got \(bitWidth)") }
        switch graph.kind {
        case "complete":
            guard graph.degree == nil else { throw ScenarioError(field: "graph.degree", reason: "a complete graph has no degree to set") }
        case "harary":
            guard let k = graph.degree else { throw ScenarioError(field: "graph.degree", reason: "a Harary graph needs a degree") }
            guard k >= 2, k % 2 == 0, k < devices - 1 else { throw ScenarioError(field: "graph.degree", reason: "must be even, at least 2 and below devices - 1, got \(k)") }
        case "auto":
            guard graph.degree == nil, graph.threshold == nil else { throw ScenarioError(field: "graph", reason: "\"auto\" chooses degree and threshold itself") }
        default:
            throw ScenarioError(field: "graph.kind", reason: "must be \"complete\", \"harary\" or \"auto\", got \"\(graph.kind)\"")
        }
        if let t = graph.threshold, t < 1 { throw ScenarioError(field: "graph.threshold", reason: "must be at least 1, got \(t)") }
        if let g = graph.corruptFraction, !(0..<1).contains(g) { throw ScenarioError(field: "graph.corruptFraction", reason: "must be in [0, 1)") }
        for phase in Phase.allCases where !(0..<1).contains(dropout.probability(phase)) {
            throw ScenarioError(field: "dropout.\(Self.key(phase))", reason: "must be a probability in [0, 1), got \(dropout.probability(phase))")
        }
        if threatModel == .honestButCurious && dropout.consistencyCheck > 0 {
            throw ScenarioError(field: "dropout.consistencyCheck", reason: "the honest-but-curious model has no consistency check")
        }
        for (i, g) in data.enumerated() {
            guard g.start >= 0, g.end <= dimension, g.start < g.end else {
                throw ScenarioError(field: "data[\(i)]", reason: "range \(g.start)..<\(g.end) must lie within 0..<\(dimension)")
            }
            guard ["constant", "uniform", "normal", "zipf"].contains(g.kind) else {
                throw ScenarioError(field: "data[\(i)].kind", reason: "must be constant, uniform, normal or zipf, got \"\(g.kind)\"")
            }
            guard g.value >= 0, g.value.isFinite else { throw ScenarioError(field: "data[\(i)].value", reason: "must be a finite non-negative number") }
            if g.kind == "zipf" && g.value < 1 { throw ScenarioError(field: "data[\(i)].value", reason: "zipf needs at least one rank") }
        }
        var total = 0
        for (i, m) in misbehaving.enumerated() {
            guard ["wrong-share", "forged-signature", "garbage-message"].contains(m.kind) else {
                throw ScenarioError(field: "misbehaving[\(i)].kind", reason: "must be wrong-share, forged-signature or garbage-message, got \"\(m.kind)\"")
            }
            guard m.count >= 0 else { throw ScenarioError(field: "misbehaving[\(i)].count", reason: "must not be negative") }
            if m.kind == "forged-signature" && threatModel != .active {
                throw ScenarioError(field: "misbehaving[\(i)].kind", reason: "forged signatures need the active threat model (no signatures otherwise)")
            }
            total += m.count
        }
        guard total < devices else { throw ScenarioError(field: "misbehaving", reason: "\(total) misbehaving devices in a cohort of \(devices)") }
        if let adversary {
            guard AdversaryStrategy.parse(adversary) != nil else {
                throw ScenarioError(field: "adversary", reason: "must be one of \(AdversaryStrategy.acceptedValues), got \"\(adversary)\"")
            }
            guard threatModel == .active else {
                throw ScenarioError(field: "threatModel", reason: "an adversary runs against the active model's defences; an honest-but-curious fleet trusts the aggregator")
            }
            guard devices >= DevicePolicy().minimumCohort else {
                throw ScenarioError(field: "devices", reason: "an adversary needs at least \(DevicePolicy().minimumCohort) devices, the devices' minimum cohort")
            }
            guard misbehaving.isEmpty else {
                throw ScenarioError(field: "misbehaving", reason: "an adversary brings its own colluding devices (graph.corruptFraction); leave misbehaving out")
            }
        }
    }

    /// The JSON key of a phase in `dropout`.
    static func key(_ phase: Phase) -> String {
        switch phase {
        case .advertiseKeys: return "advertiseKeys"
        case .shareKeys: return "shareKeys"
        case .maskedInputCollection: return "maskedInputCollection"
        case .consistencyCheck: return "consistencyCheck"
        case .unmasking: return "unmasking"
        }
    }
}
