import Foundation
public import VeilCrypto
public import VeilProtocol

/// A simulation scenario, read from a JSON file in `Simulations/` (format: `Simulations/README.md`).
public struct Scenario: Codable, Sendable, Equatable {
    /// A short name.
    public var name: String
    /// One line saying what the scenario shows.
    public var description: String
    /// n: devices invited.
    public var devices: Int
    /// m: elements per vector.
    public var dimension: Int
    /// b: bits per element.
    public var bitWidth: Int
    /// The PRG: "aes-128-ctr" or "chacha20".
    public var prg: PRGAlgorithm
    /// The neighbour graph and threshold.
    public var graph: GraphSpec
    /// "honest-but-curious" or "active".
    public var threatModel: ThreatModel
    /// Probability that a device goes silent before each phase (keys are phase names).
    public var dropout: DropoutSpec
    /// Synthetic data, one generator per element range; elements not covered are zero.
    public var data: [DataGenerator]
    /// Devices that misbehave, by kind.
    public var misbehaving: [Misbehaviour]
    /// The seed of every random choice in the run.
    public var seed: UInt64
    /// A malicious aggregator to run instead of an honest round: an ``AdversaryStrategy`` name, or
    /// "all" for every strategy (``AdversarialAggregator``); nil for an honest round.
    public var adversary: String?
    /// The devices' networks and speeds, for a round in simulated time (in-process mode): a
    /// profile name or a ``NetworkSpec`` object; nil measures this machine only.
    public var network: NetworkSpec?
    /// Phase deadlines in simulated time (default: the aggregator's, 30 s each).
    public var deadlines: DeadlineSpec?

    enum CodingKeys: String, CodingKey {
        case name, description, devices, dimension, bitWidth, prg, graph, threatModel, dropout, data, misbehaving, seed, adversary, network, deadlines
    }

    /// Creates a scenario (call ``validate()`` before running it).
    public init(
        name: String, description: String = "", devices: Int, dimension: Int, bitWidth: Int, prg: PRGAlgorithm = .aes128CTR,
        graph: GraphSpec, threatModel: ThreatModel = .honestButCurious, dropout: DropoutSpec = DropoutSpec(),
        data: [DataGenerator] = [], misbehaving: [Misbehaviour] = [], seed: UInt64 = 1, adversary: String? = nil,
        network: NetworkSpec? = nil, deadlines: DeadlineSpec? = nil
    ) {
        self.name = name
        self.description = description
        self.devices = devices
        self.dimension = dimension
        self.bitWidth = bitWidth
        self.prg = prg
        self.graph = graph
        self.threatModel = threatModel
        self.dropout = dropout
        self.data = data
        self.misbehaving = misbehaving
        self.seed = seed
        self.adversary = adversary
        self.network = network
        self.deadlines = deadlines
    }

    /// Decodes a scenario file; optional fields left out take their documented defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        devices = try c.decode(Int.self, forKey: .devices)
        dimension = try c.decode(Int.self, forKey: .dimension)
        bitWidth = try c.decode(Int.self, forKey: .bitWidth)
        prg = try c.decodeIfPresent(PRGAlgorithm.self, forKey: .prg) ?? .aes128CTR
        graph = try c.decode(GraphSpec.self, forKey: .graph)
        threatModel = try c.decodeIfPresent(ThreatModel.self, forKey: .threatModel) ?? .honestButCurious
        dropout = try c.decodeIfPresent(DropoutSpec.self, forKey: .dropout) ?? DropoutSpec()
        data = try c.decodeIfPresent([DataGenerator].self, forKey: .data) ?? []
        misbehaving = try c.decodeIfPresent([Misbehaviour].self, forKey: .misbehaving) ?? []
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 1
        adversary = try c.decodeIfPresent(String.self, forKey: .adversary)
        network = try c.decodeIfPresent(NetworkSpec.self, forKey: .network)
        deadlines = try c.decodeIfPresent(DeadlineSpec.self, forKey: .deadlines)
    }

    /// The graph part of a scenario.
    public struct GraphSpec: Codable, Sendable, Equatable {
        /// "complete", "harary", or "auto" (the parameter finder chooses).
        public var kind: String
        /// k for "harary"; nil otherwise.
        public var degree: Int?
        /// t; nil lets the parameter finder choose.
        public var threshold: Int?
        /// γ assumed by the parameter finder (default 0, or the misbehaving fraction if larger).
        public var corruptFraction: Double?

        /// Creates a graph specification.
        public init(kind: String, degree: Int?, threshold: Int?, corruptFraction: Double?) {
            self.kind = kind
            self.degree = degree
            self.threshold = threshold
            self.corruptFraction = corruptFraction
        }
    }

    /// Per-phase dropout probabilities; a phase left out of the JSON has none.
    public struct DropoutSpec: Codable, Sendable, Equatable {
        /// Before sending AdvertiseKeys.
        public var advertiseKeys: Double = 0
        /// Before sending ShareKeys.
        public var shareKeys: Double = 0
        /// Before sending the masked input.
        public var maskedInputCollection: Double = 0
        /// Before signing the survivor set (active model).
        public var consistencyCheck: Double = 0
        /// Before answering the unmasking request.
        public var unmasking: Double = 0

        /// No dropout.
        public init() {}

        /// Decodes the `dropout` object; a phase left out has no dropout.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            advertiseKeys = try c.decodeIfPresent(Double.self, forKey: .advertiseKeys) ?? 0
            shareKeys = try c.decodeIfPresent(Double.self, forKey: .shareKeys) ?? 0
            maskedInputCollection = try c.decodeIfPresent(Double.self, forKey: .maskedInputCollection) ?? 0
            consistencyCheck = try c.decodeIfPresent(Double.self, forKey: .consistencyCheck) ?? 0
            unmasking = try c.decodeIfPresent(Double.self, forKey: .unmasking) ?? 0
        }

        /// The probability of going silent before `phase`.
        public func probability(_ phase: Phase) -> Double {
            switch phase {
            case .advertiseKeys: return advertiseKeys
            case .shareKeys: return shareKeys
            case .maskedInputCollection: return maskedInputCollection
            case .consistencyCheck: return consistencyCheck
            case .unmasking: return unmasking
            }
        }

        /// The phase before which a device drops: the first of `phases` whose draw from `unit`
        /// (uniform in [0, 1), one draw per phase tried, in order) falls below its probability;
        /// nil when the device stays to the end.
        public func dropPhase(among phases: [Phase], drawing unit: () -> Double) -> Phase? {
            for phase in phases where unit() < probability(phase) { return phase }
            return nil
        }

        /// The probability that a device drops at some phase.
        public var total: Double {
            1 - Phase.allCases.reduce(1.0) { $0 * (1 - probability($1)) }
        }

        /// Spreads `fraction` evenly over the phases a threat model has.
        public static func spread(_ fraction: Double, over phases: [Phase]) -> DropoutSpec {
            let each = 1 - Foundation.pow(1 - fraction, 1 / Double(phases.count))
            var spec = DropoutSpec()
            for p in phases {
                switch p {
                case .advertiseKeys: spec.advertiseKeys = each
                case .shareKeys: spec.shareKeys = each
                case .maskedInputCollection: spec.maskedInputCollection = each
                case .consistencyCheck: spec.consistencyCheck = each
                case .unmasking: spec.unmasking = each
                }
            }
            return spec
        }
    }

    /// Synthetic values for elements `start..<end`.
    public struct DataGenerator: Codable, Sendable, Equatable {
        /// First element.
        public var start: Int
        /// One past the last element.
        public var end: Int
        /// "constant", "uniform", "normal" or "zipf".
        public var kind: String
        /// constant: the value; uniform: the inclusive maximum (minimum 0); normal: the mean;
        /// zipf: the number of ranks.
        public var value: Double
        /// normal: the standard deviation; zipf: the exponent s.
        public var spread: Double?

        /// A generator for elements `start..<end`.
        public init(start: Int, end: Int, kind: String, value: Double, spread: Double? = nil) {
            self.start = start
            self.end = end
            self.kind = kind
            self.value = value
            self.spread = spread
        }
    }

    /// A kind of misbehaving device and how many there are.
    public struct Misbehaviour: Codable, Sendable, Equatable {
        /// "wrong-share", "forged-signature" or "garbage-message".
        public var kind: String
        /// How many devices behave so.
        public var count: Int
    }
}
