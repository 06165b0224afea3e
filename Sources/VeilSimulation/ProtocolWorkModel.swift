import VeilCrypto
import VeilProtocol

/// The operations one party cannot avoid in one phase of a round (SPEC.md §6), counted from the
/// round's own sets (who advertised, shared, masked, signed) and graph. Means per device are
/// fractional.
public struct WorkCounts: Sendable, Codable, Equatable {
    /// X25519 key pairs generated.
    public var keyPairs = 0.0
    /// X25519 agreements.
    public var agreements = 0.0
    /// Ed25519 signatures made.
    public var signatures = 0.0
    /// Ed25519 signatures verified.
    public var verifications = 0.0
    /// KDF derivations (share keys and nonces, pairwise seeds, PRG keys).
    public var kdfs = 0.0
    /// BLAKE2b digests (share digests and secret commitments, made or checked).
    public var digests = 0.0
    /// Share pairs sealed.
    public var seals = 0.0
    /// Sealed pairs opened.
    public var opens = 0.0
    /// Shamir splits.
    public var splits = 0.0
    /// Shamir split work: shares × threshold, summed over splits.
    public var splitUnits = 0.0
    /// Shares used in Shamir reconstructions.
    public var reconstructShares = 0.0
    /// Mask bytes expanded from the PRG.
    public var expandedBytes = 0.0
    /// Vector bytes added.
    public var addedBytes = 0.0
    /// Message bytes the party must at least touch once (received and sent), beyond those it adds.
    public var touchedBytes = 0.0

    /// No work.
    public init() {}

    /// Seconds on one core of this machine.
    public func seconds(_ c: PrimitiveCosts, _ l: PhysicalLimits) -> Double {
        keyPairs * c.x25519KeyPair + agreements * c.x25519Agreement + signatures * c.ed25519Sign + verifications * c.ed25519Verify
            + kdfs * c.kdf + digests * c.digest + seals * c.aeadSeal + opens * c.aeadOpen + splits * c.shamirSplit + splitUnits * c.shamirSplitUnit
            + reconstructShares * c.shamirReconstructShare + expandedBytes / l.keystreamBytesPerSecond + (addedBytes + touchedBytes) / l.addBytesPerSecond
    }

    /// Every count divided by `divisor` (a mean over devices).
    func divided(by divisor: Double) -> WorkCounts {
        guard divisor > 0 else { return WorkCounts() }
        var w = self
        for path in Self.fields { w[keyPath: path] /= divisor }
        return w
    }

    static func + (a: WorkCounts, b: WorkCounts) -> WorkCounts {
        var w = a
        for path in fields { w[keyPath: path] += b[keyPath: path] }
        return w
    }

    static var fields: [WritableKeyPath<WorkCounts, Double>] {
        [
        \.keyPairs, \.agreements, \.signatures, \.verifications, \.kdfs, \.digests, \.seals, \.opens, \.splits, \.splitUnits, \.reconstructShares,
        \.expandedBytes, \.addedBytes, \.touchedBytes,
        ]
    }
}

/// One phase's unavoidable work beside what it took: for the mean device that did the phase, and
/// for the server (its unmasking limit spread over its cores, as the real one spreads the work).
public struct PhaseLimit: Sendable, Codable, Equatable {
    /// The phase name.
    public let phase: String
    /// The mean device's work.
    public let deviceWork: WorkCounts
    /// Seconds that work takes here.
    public let deviceLimitSeconds: Double
    /// Mean measured device compute in the phase.
    public let deviceSeconds: Double
    /// The server's work.
    public let serverWork: WorkCounts
    /// Seconds that work takes here.
    public let serverLimitSeconds: Double
    /// Measured server compute in the phase (requests, answers, closing).
    public let serverSeconds: Double

    /// Measured ÷ limit for the device (0 when the phase has no unavoidable device work).
    public var deviceRatio: Double { deviceLimitSeconds > 0 ? deviceSeconds / deviceLimitSeconds : 0 }
    /// Measured ÷ limit for the server.
    public var serverRatio: Double { serverLimitSeconds > 0 ? serverSeconds / serverLimitSeconds : 0 }
}

/// Counts the work each phase of a finished simulated round could not avoid.
enum ProtocolWorkModel {
    /// The round's sets, as the server formed them.
    struct Sets {
        /// U1, U2, U4 as membership by device; U3 ascending.
        let advertised: [Bool]
        let shared: [Bool]
        let survivors: [UInt32]
        let signed: [Bool]
    }

    static func phases(
        configuration: RoundConfiguration, graph: NeighbourGraph, sets: Sets, figures: [Phase: PhaseFigures], costs: PrimitiveCosts, limits: PhysicalLimits
    ) -> [PhaseLimit] {
        let t = Double(configuration.threshold)
        let vectorBytes = Double(configuration.dimension * MaskGenerator.elementBits(forBitWidth: configuration.bitWidth) / 8)
        let active = configuration.threatModel == .active
        let n = configuration.cohortSize
        var inSurvivors = [Bool](repeating: false, count: n)
        for d in sets.survivors { inSurvivors[Int(d)] = true }
        func members(_ set: [Bool]) -> [UInt32] { (0..<UInt32(n)).filter { set[Int($0)] } }
        func neighbours(_ d: UInt32, in set: [Bool]) -> Double { Double(graph.neighbours(of: d).count { set[Int($0)] }) }

        var result: [PhaseLimit] = []
        for phase in configuration.threatModel.phases {
            guard let f = figures[phase] else { continue }
            let workers: [UInt32]
            switch phase {
            case .advertiseKeys: workers = members(sets.advertised)
            case .shareKeys: workers = members(sets.shared)
            case .maskedInputCollection: workers = sets.survivors
            case .consistencyCheck: workers = members(sets.signed)
            case .unmasking: workers = active ? members(sets.signed) : sets.survivors
            }
            let device = workers.reduce(WorkCounts()) { sum, d in
                sum + Self.device(
                    phase, listed: neighbours(d, in: sets.advertised), senders: neighbours(d, in: sets.shared), signers: neighbours(d, in: sets.signed),
                    threshold: t, vectorBytes: vectorBytes, active: active)
            }
            var server: WorkCounts
            if phase == .unmasking {
                // Masking keys of devices that shared but sent no input, when a surviving
                // neighbour's input holds a mask with them.
                let dropped = members(sets.shared).filter { !inSurvivors[Int($0)] && neighbours($0, in: inSurvivors) > 0 }
                server = Self.serverUnmasking(
                    survivors: Double(sets.survivors.count), droppedWithSurvivingNeighbours: Double(dropped.count),
                    pairwiseMasks: dropped.reduce(0.0) { $0 + neighbours($1, in: inSurvivors) }, threshold: t, vectorBytes: vectorBytes)
            } else {
                server = Self.server(phase, answering: Double(workers.count), vectorBytes: vectorBytes, active: active)
            }
            let serverLimit = Self.serverSeconds(phase, work: server, bytesUp: Double(f.bytesUp), bytesDown: Double(f.bytesDown), costs: costs, limits: limits)
            let deviceMean = device.divided(by: Double(workers.count))
            let computed = f.answered + f.rejectedByServer + f.cutByDeadline
            result.append(PhaseLimit(
                phase: phase.rawValue, deviceWork: deviceMean, deviceLimitSeconds: deviceMean.seconds(costs, limits),
                deviceSeconds: computed > 0 ? f.deviceSeconds / Double(computed) : 0,
                serverWork: server, serverLimitSeconds: serverLimit, serverSeconds: f.serverSeconds))
        }
        return result
    }

    /// Seconds of the server's `work` in `phase`, with every byte it received (`bytesUp`) or sent
    /// (`bytesDown`) touched once at memory speed (masked inputs are touched by their addition).
    /// The server spreads unmasking over its cores; the other phases take one answer at a time.
    static func serverSeconds(_ phase: Phase, work: WorkCounts, bytesUp: Double, bytesDown: Double, costs: PrimitiveCosts, limits: PhysicalLimits) -> Double {
        var work = work
        work.touchedBytes = bytesDown + (phase == .maskedInputCollection ? 0 : bytesUp)
        return work.seconds(costs, limits) / (phase == .unmasking ? Double(limits.cores) : 1)
    }

    /// One device's unavoidable work in `phase`, given how many of its neighbours were listed to it
    /// in ShareKeys (`listed`), sent it shares (`senders`) and signed the survivor set (`signers`).
    static func device(_ phase: Phase, listed: Double, senders: Double, signers: Double, threshold t: Double, vectorBytes: Double, active: Bool) -> WorkCounts {
        var w = WorkCounts()
        switch phase {
        case .advertiseKeys:
            w.keyPairs = 2
            w.signatures = active ? 1 : 0
        case .shareKeys:
            w.agreements = listed
            w.kdfs = 2 * listed
            w.splits = 2
            w.splitUnits = 2 * listed * t
            w.digests = 2 * listed + 2
            w.seals = listed
            w.verifications = active ? listed : 0
        case .maskedInputCollection:
            w.opens = senders
            w.digests = 2 * senders
            w.agreements = senders
            w.kdfs = 2 * senders + 1
            w.expandedBytes = (senders + 1) * vectorBytes
            w.addedBytes = w.expandedBytes
        case .consistencyCheck:
            w.signatures = 1
        case .unmasking:
            w.verifications = active ? signers : 0
        }
        return w
    }

    /// The server's unavoidable work in `phase` (not unmasking) with `answering` devices.
    static func server(_ phase: Phase, answering: Double, vectorBytes: Double, active: Bool) -> WorkCounts {
        var w = WorkCounts()
        switch phase {
        case .advertiseKeys: w.verifications = active ? answering : 0
        case .shareKeys, .unmasking: break
        case .maskedInputCollection: w.addedBytes = answering * vectorBytes
        case .consistencyCheck: w.verifications = answering
        }
        return w
    }

    /// The server's unmasking: one reconstruction (t shares, t + 1 digests) per survivor's self-mask
    /// seed and per dropped device's masking key, then every self mask and pairwise mask removed.
    static func serverUnmasking(survivors: Double, droppedWithSurvivingNeighbours: Double, pairwiseMasks: Double, threshold t: Double, vectorBytes: Double) -> WorkCounts {
        var w = WorkCounts()
        let reconstructions = survivors + droppedWithSurvivingNeighbours
        w.reconstructShares = reconstructions * t
        w.digests = reconstructions * (t + 1)
        w.agreements = pairwiseMasks
        w.kdfs = 2 * pairwiseMasks + survivors
        w.expandedBytes = (pairwiseMasks + survivors) * vectorBytes
        w.addedBytes = w.expandedBytes
        return w
    }
}
