import Foundation
import VeilCrypto
public import VeilProtocol

/// A distribution of a positive quantity, as scenarios write it: `{"kind": "constant", "value":
/// 80}`, `{"kind": "uniform", "min": 10, "max": 90}`, or `{"kind": "lognormal", "median": 80,
/// "p99": 900}` (or `"p1"` for a low tail, as bandwidths have).
public struct Distribution: Codable, Sendable, Equatable {
    /// "constant", "uniform" or "lognormal".
    public var kind: String
    /// constant: the value.
    public var value: Double?
    /// uniform: the bounds.
    public var min: Double?
    /// uniform: the upper bound.
    public var max: Double?
    /// lognormal: the median.
    public var median: Double?
    /// lognormal: the 99th percentile (above the median).
    public var p99: Double?
    /// lognormal: the 1st percentile (below the median), instead of `p99`.
    public var p1: Double?

    /// A constant.
    public static func constant(_ value: Double) -> Distribution { Distribution(kind: "constant", value: value) }
    /// A log-normal distribution through `median` and its 99th percentile.
    public static func lognormal(median: Double, p99: Double) -> Distribution { Distribution(kind: "lognormal", median: median, p99: p99) }
    /// A log-normal distribution through `median` and its 1st percentile.
    public static func lognormal(median: Double, p1: Double) -> Distribution { Distribution(kind: "lognormal", median: median, p1: p1) }

    /// The standard normal's 99th percentile.
    static let z99 = 2.326_347_874_040_840_8

    /// Why the distribution cannot be sampled, or nil.
    func problem() -> String? {
        func positive(_ x: Double?) -> Bool { x.map { $0.isFinite && $0 > 0 } ?? false }
        switch kind {
        case "constant": return positive(value) ? nil : "constant needs a positive value"
        case "uniform": return positive(min) && positive(max) && min! <= max! ? nil : "uniform needs 0 < min <= max"
        case "lognormal":
            guard positive(median) else { return "lognormal needs a positive median" }
            switch (p99, p1) {
            case let (high?, nil): return positive(high) && high >= median! ? nil : "p99 must be at least the median"
            case let (nil, low?): return positive(low) && low <= median! ? nil : "p1 must be positive and at most the median"
            default: return "lognormal needs exactly one of p99 and p1"
            }
        default: return "kind must be constant, uniform or lognormal"
        }
    }

    /// One draw, from two independent uniforms in [0, 1).
    func sample(_ u1: Double, _ u2: Double) -> Double {
        switch kind {
        case "constant": return value!
        case "uniform": return min! + (max! - min!) * u1
        default:
            let mu = Foundation.log(median!)
            let sigma = p99.map { (Foundation.log($0) - mu) / Self.z99 } ?? (mu - Foundation.log(p1!)) / Self.z99
            // Box–Muller; 1 - u1 is in (0, 1].
            let z = (-2 * Foundation.log(1 - u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
            return Foundation.exp(mu + sigma * z)
        }
    }
}

/// The devices' networks and speeds in simulated time (in-process mode): each device draws its
/// one-way latency, its uplink and downlink bandwidth and its compute factor (how many times
/// slower than one core of this machine it computes) once, from these distributions. A fraction
/// of stragglers has its latency and compute multiplied further. `Simulations/README.md`
/// documents the built-in profiles.
public struct NetworkSpec: Codable, Sendable, Equatable {
    /// The built-in profile the other fields start from, if any.
    public var profile: String?
    /// One-way latency, milliseconds.
    public var latencyMs: Distribution
    /// Device to server, kilobits per second.
    public var uplinkKbps: Distribution
    /// Server to device, kilobits per second.
    public var downlinkKbps: Distribution
    /// Device compute time relative to one core of the machine running the simulation.
    public var computeFactor: Distribution
    /// Stragglers: a fraction of devices whose latency and compute are `factor` times slower.
    public var stragglers: Stragglers

    /// A slow fraction of the fleet.
    public struct Stragglers: Codable, Sendable, Equatable {
        /// The fraction of devices, in [0, 1].
        public var fraction: Double
        /// How many times slower they are (at least 1).
        public var factor: Double

        /// No stragglers.
        public static let none = Stragglers(fraction: 0, factor: 1)
    }

    /// The built-in profiles, by name. Assumptions, not measurements: see `Simulations/README.md`.
    public static let profiles: [String: NetworkSpec] = [
        "lan": NetworkSpec(
            profile: "lan", latencyMs: .lognormal(median: 0.3, p99: 2), uplinkKbps: .lognormal(median: 500_000, p1: 100_000),
            downlinkKbps: .lognormal(median: 500_000, p1: 100_000), computeFactor: .constant(1), stragglers: .none),
        "broadband": NetworkSpec(
            profile: "broadband", latencyMs: .lognormal(median: 15, p99: 80), uplinkKbps: .lognormal(median: 20_000, p1: 2_000),
            downlinkKbps: .lognormal(median: 100_000, p1: 10_000), computeFactor: .lognormal(median: 1.5, p99: 4),
            stragglers: Stragglers(fraction: 0.01, factor: 5)),
        "4g": NetworkSpec(
            profile: "4g", latencyMs: .lognormal(median: 50, p99: 400), uplinkKbps: .lognormal(median: 5_000, p1: 300),
            downlinkKbps: .lognormal(median: 20_000, p1: 1_000), computeFactor: .lognormal(median: 3, p99: 10),
            stragglers: Stragglers(fraction: 0.02, factor: 10)),
        "constrained-iot": NetworkSpec(
            profile: "constrained-iot", latencyMs: .lognormal(median: 300, p99: 3_000), uplinkKbps: .lognormal(median: 100, p1: 10),
            downlinkKbps: .lognormal(median: 250, p1: 20), computeFactor: .lognormal(median: 20, p99: 60),
            stragglers: Stragglers(fraction: 0.05, factor: 5)),
    ]

    /// Creates a specification.
    public init(profile: String?, latencyMs: Distribution, uplinkKbps: Distribution, downlinkKbps: Distribution, computeFactor: Distribution, stragglers: Stragglers) {
        self.profile = profile
        self.latencyMs = latencyMs
        self.uplinkKbps = uplinkKbps
        self.downlinkKbps = downlinkKbps
        self.computeFactor = computeFactor
        self.stragglers = stragglers
    }

    enum CodingKeys: String, CodingKey { case profile, latencyMs, uplinkKbps, downlinkKbps, computeFactor, stragglers }

    /// Decodes a profile name (`"network": "4g"`) or an object whose fields override its
    /// `profile`'s (every field is needed when there is no profile).
    public init(from decoder: any Decoder) throws {
        if let name = try? decoder.singleValueContainer().decode(String.self) {
            guard let profile = Self.profiles[name] else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown network profile \"\(name)\"; the profiles are \(Self.profiles.keys.sorted())"))
            }
            self = profile
            return
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decodeIfPresent(String.self, forKey: .profile)
        let base: NetworkSpec?
        if let name {
            guard let profile = Self.profiles[name] else {
                throw DecodingError.dataCorruptedError(forKey: .profile, in: c, debugDescription: "unknown network profile \"\(name)\"; the profiles are \(Self.profiles.keys.sorted())")
            }
            base = profile
        } else {
            base = nil
        }
        func field(_ key: CodingKeys, _ fallback: Distribution?) throws -> Distribution {
            if let value = try c.decodeIfPresent(Distribution.self, forKey: key) { return value }
            guard let fallback else { throw DecodingError.keyNotFound(key, .init(codingPath: c.codingPath, debugDescription: "needed without a profile")) }
            return fallback
        }
        profile = name
        latencyMs = try field(.latencyMs, base?.latencyMs)
        uplinkKbps = try field(.uplinkKbps, base?.uplinkKbps)
        downlinkKbps = try field(.downlinkKbps, base?.downlinkKbps)
        computeFactor = try field(.computeFactor, base?.computeFactor ?? .constant(1))
        stragglers = try c.decodeIfPresent(Stragglers.self, forKey: .stragglers) ?? base?.stragglers ?? .none
    }

    /// Why the specification cannot be used, or nil.
    func problem() -> String? {
        for (name, distribution) in [("latencyMs", latencyMs), ("uplinkKbps", uplinkKbps), ("downlinkKbps", downlinkKbps), ("computeFactor", computeFactor)] {
            if let problem = distribution.problem() { return "\(name): \(problem)" }
        }
        guard (0...1).contains(stragglers.fraction), stragglers.factor >= 1, stragglers.factor.isFinite else {
            return "stragglers: fraction must be in 0...1 and factor at least 1"
        }
        return nil
    }
}

/// One device's draw from a ``NetworkSpec``: the same for every phase of a round. In-process
/// rounds apply it in simulated time; network-mode rounds emulate it on loopback (the device
/// waits, as its link would make it wait), so both runs of one scenario see the same fleet.
public struct SimulatedLink: Sendable, Equatable {
    /// One-way latency, seconds.
    public let latencySeconds: Double
    /// Device to server, bytes per second.
    public let uplinkBytesPerSecond: Double
    /// Server to device, bytes per second.
    public let downlinkBytesPerSecond: Double
    /// Compute time relative to one core of this machine.
    public let computeFactor: Double
}

extension NetworkSpec {
    /// Every device's link, drawn once and deterministically from `seed`: device `d` gets the
    /// `d`-th draw. Stragglers have their latency and compute factor multiplied.
    public func links(devices: Int, seed: UInt64) -> [SimulatedLink] {
        var random = SeededRandomSource(seed: seed, label: "network")
        func unit() -> Double { random.nextUnitDouble() }
        return (0..<devices).map { _ in
            let straggler = unit() < stragglers.fraction ? stragglers.factor : 1
            return SimulatedLink(
                latencySeconds: latencyMs.sample(unit(), unit()) / 1000 * straggler,
                uplinkBytesPerSecond: uplinkKbps.sample(unit(), unit()) * 125, downlinkBytesPerSecond: downlinkKbps.sample(unit(), unit()) * 125,
                computeFactor: computeFactor.sample(unit(), unit()) * straggler)
        }
    }
}

/// Phase deadlines in simulated time, seconds: `default` for every phase, overridden by phase
/// (`advertiseKeys`, `shareKeys`, `maskedInputCollection`, `consistencyCheck`, `unmasking`). A real aggregator has one (`rounds.phaseTimeoutSeconds`, default 30 s).
public struct DeadlineSpec: Codable, Sendable, Equatable {
    /// Every phase's deadline unless overridden.
    public var `default`: Double
    /// Deadlines by phase name.
    public var phases: [String: Double]

    /// The aggregator's default: 30 s for every phase.
    public static let aggregatorDefault = DeadlineSpec(default: 30, phases: [:])

    /// Creates deadlines.
    public init(default: Double, phases: [String: Double] = [:]) {
        self.default = `default`
        self.phases = phases
    }

    /// Decodes `{"default": 30, "shareKeys": 60, …}`.
    public init(from decoder: any Decoder) throws {
        var all = try decoder.singleValueContainer().decode([String: Double].self)
        self.default = all.removeValue(forKey: "default") ?? Self.aggregatorDefault.default
        phases = all
    }

    /// Encodes as it decodes.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(phases.merging(["default": self.default]) { a, _ in a })
    }

    /// The deadline of `phase`.
    public func seconds(for phase: Phase) -> Double { phases[Self.key(phase)] ?? self.default }

    /// A phase's key in scenario files: its name in camel case, as `dropout` has it.
    public static func key(_ phase: Phase) -> String {
        let words = phase.rawValue.split(separator: "-")
        return words.first.map(String.init)! + words.dropFirst().map(\.capitalized).joined()
    }
}
