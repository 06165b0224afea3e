import Dispatch
import VeilCrypto
import VeilProtocol

/// How a malicious aggregator builds ConsistencyCheck and Unmasking when it stops following the
/// protocol: per device, the survivor set it shows, the neighbour it claims dropped, the neighbour
/// it asks both shares of, and signatures from another session it offers as valid ones.
struct UnmaskingPlan: Sendable {
    /// The survivor set shown at ConsistencyCheck, by device (others see the true U3).
    var shownSurvivors: [UInt32: [UInt32]] = [:]
    /// A neighbour each device is told dropped, although the set it signed lists it.
    var claimedDropped: [UInt32: UInt32] = [:]
    /// A neighbour each device is asked for both shares of.
    var askedForBoth: [UInt32: UInt32] = [:]
    /// Consistency signatures from another session, offered as the named signers'.
    var replayed: [UInt32: SignedSurvivorSet] = [:]

    /// The devices that get a deviating message.
    var targeted: Set<UInt32> {
        Set(shownSurvivors.keys).union(claimedDropped.keys).union(askedForBoth.keys)
    }
}

/// One session a malicious aggregator runs against the fleet: real `DeviceSession`s, the real
/// `AggregationSession` for the phases it runs as the protocol says (so the server-side checks,
/// placement and pruning are the real ones), and the aggregator's own requests where it deviates.
/// Everything the devices send is recorded in ``view``.
///
/// - warning: Not thread-safe; device work inside one call runs on ``workers`` threads.
struct AdversarialSession {
    let configuration: RoundConfiguration
    var server: AggregationSession
    var devices: [DeviceSession]
    var randomness: [SeededRandomSource]
    /// The devices colluding with the aggregator.
    let colluders: Set<UInt32>
    /// Every device's identity key (the colluders' sign what the aggregator asks).
    let identities: [Ed25519.PrivateKey]
    /// The phase before whose message each honest device goes silent.
    let silentBefore: [UInt32: Phase]
    let workers: Int
    /// The label and seed every device's random source is derived from.
    let label: String, seed: UInt64
    var serverRandom: SeededRandomSource
    /// What the aggregator saw.
    var view: SessionView
    /// The ring the devices use (with committed placement, the revealed one).
    var graph: NeighbourGraph
    /// The placement root the server revealed (committed placement).
    var placementRoot: [UInt8]?
    /// Honest devices' refusals.
    var refusals: [UInt32: ProtocolViolation] = [:]
    /// Devices the real server removed, with why.
    var removedByServer: [UInt32: ProtocolViolation] = [:]
    /// The server's outcome, when the round ran to one.
    var outcome: AggregationOutcome?
    /// Whether the aggregator took over ConsistencyCheck and Unmasking.
    var stoppedByAdversary = false
    /// Devices the aggregator sent its own unmasking request to.
    var askedToUnmask: Set<UInt32> = []

    /// A session of the devices `0..<configuration.cohortSize`; `policy` for honest devices,
    /// `colluderPolicy` for colluders.
    init(
        configuration: RoundConfiguration, placementSecret: [UInt8]?, label: String, seed: UInt64, inputs: [ModularVector],
        identities: [Ed25519.PrivateKey], colluders: Set<UInt32>, policy: DevicePolicy, colluderPolicy: DevicePolicy,
        silentBefore: [UInt32: Phase], workers: Int
    ) {
        let n = configuration.cohortSize
        let graph = NeighbourGraph(configuration: configuration)
        let cache = NeighbourGraphCache()
        let active = configuration.threatModel == .active
        self.configuration = configuration
        self.graph = graph
        self.colluders = colluders.filter { Int($0) < n }
        self.identities = Array(identities.prefix(n))
        self.silentBefore = silentBefore.filter { Int($0.key) < n && !colluders.contains($0.key) }
        self.workers = max(1, workers)
        self.label = label
        self.seed = seed
        devices = (0..<n).map { d in
            try! DeviceSession(
                configuration: configuration, graph: graph, device: UInt32(d), identity: active ? identities[d] : nil,
                input: inputs[d], policy: colluders.contains(UInt32(d)) ? colluderPolicy : policy, graphCache: cache)
        }
        randomness = (0..<n).map { Self.deviceRandom(seed: seed, label: label, device: UInt32($0)) }
        var keys: [UInt32: Ed25519.PublicKey] = [:]
        if active { for d in 0..<n { keys[UInt32(d)] = identities[d].publicKey } }
        server = try! AggregationSession(
            configuration: configuration, graph: graph, identities: keys, placementSecret: placementSecret, workers: workers)
        serverRandom = SeededRandomSource(seed: seed, label: "\(label)-server")
        view = SessionView(configuration: configuration)
    }

    /// The random source `device` starts the session with.
    static func deviceRandom(seed: UInt64, label: String, device: UInt32) -> SeededRandomSource {
        SeededRandomSource(seed: seed, label: "\(label)-device-\(device)")
    }

    /// What `device` would hand over if it colluded: its secrets, drawn again from its starting
    /// random source. Tests use it to give the oracle a real leak.
    func leakedSecrets(of device: UInt32) -> ColluderSecrets? {
        guard let sent = view.advertised[device] else { return nil }
        return Self.secrets(
            of: device, drawnFrom: Self.deviceRandom(seed: seed, label: label, device: device), identity: identities[Int(device)],
            sent: .advertiseKeys(encryptionKey: sent.encryptionKey, maskingKey: sent.maskingKey, signature: sent.signature))
    }

    /// Whether honest `device` is silent when asked for the message of `phase`.
    func isSilent(_ device: UInt32, before phase: Phase) -> Bool {
        silentBefore[device].map { phase >= $0 } ?? false
    }

    /// Whether `device` is honest.
    func isHonest(_ device: UInt32) -> Bool { !colluders.contains(device) }

    /// Asks every device for AdvertiseKeys and returns the messages, without giving them to the
    /// server. With `ledgers`, each honest device first records the round id, as a real device
    /// does, and refuses a reused one. Colluders hand over their secrets.
    mutating func collectAdvertisements(ledgers: inout [SignedRounds]?) -> [UInt32: DeviceMessage] {
        var asked: [UInt32] = []
        for d in 0..<UInt32(configuration.cohortSize) where !isSilent(d, before: .advertiseKeys) {
            if isHonest(d), ledgers != nil {
                do { try ledgers![Int(d)].record(configuration.roundID) } catch {
                    refusals[d] = ProtocolViolation(round: configuration.roundID, device: d, phase: .advertiseKeys, kind: .policy(error))
                    continue
                }
            }
            asked.append(d)
        }
        let before = randomness
        let answers = parallel(asked) { _, session, random in Self.answer { () throws(ProtocolViolation) in try session.start(using: &random) } }
        var messages: [UInt32: DeviceMessage] = [:]
        for (d, answer) in zip(asked, answers) {
            switch answer {
            case let .success(message):
                messages[d] = message
                if colluders.contains(d) { view.colluders[d] = Self.secrets(of: d, drawnFrom: before[Int(d)], identity: identities[Int(d)], sent: message) }
            case let .failure(violation):
                if isHonest(d) { refusals[d] = violation }
            }
        }
        return messages
    }

    /// A colluder's round secrets, drawn again from a copy of its random source in the order
    /// `DeviceSession.start` draws them (SPEC.md Appendix A): c_sk, s_sk, β.
    static func secrets(of device: UInt32, drawnFrom source: SeededRandomSource, identity: Ed25519.PrivateKey, sent: DeviceMessage) -> ColluderSecrets {
        var random = source
        let secrets = ColluderSecrets(
            encryption: X25519.PrivateKey(using: &random), masking: X25519.PrivateKey(using: &random),
            selfMaskSeed: SecretBytes(randomCount: 32, using: &random), identity: identity)
        if case let .advertiseKeys(encryptionKey, maskingKey, _, _) = sent {
            precondition(encryptionKey == secrets.encryption.publicKey && maskingKey == secrets.masking.publicKey,
                         "colluder \(device): its secrets were not drawn as DeviceSession.start draws them")
        }
        return secrets
    }

    /// Records every advertisement and gives the server all but `withheld` (devices the
    /// aggregator chooses to treat as dropped).
    mutating func deliver(_ messages: [UInt32: DeviceMessage], withholding withheld: Set<UInt32> = []) {
        for d in 0..<UInt32(configuration.cohortSize) {
            guard let message = messages[d] else { server.deviceLeft(d); continue }
            view.record(message, from: d, identity: identities[Int(d)].publicKey)
            if withheld.contains(d) { server.deviceLeft(d); continue }
            do { try server.receive(message, from: d) } catch { removedByServer[d] = error }
        }
    }

    /// Runs the real server's phases until the round ends or `stop` opens (then the caller may
    /// ``exchangeOpenPhase(tamper:withhold:)`` itself and call this again).
    mutating func runServerPhases(stopBefore stop: Phase? = nil) {
        while openNextPhase() {
            if server.phase == stop { return }
            exchangeOpenPhase()
        }
    }

    /// Closes the server's current phase; false when the round ended.
    mutating func openNextPhase() -> Bool {
        guard outcome == nil else { return false }
        if let finished = server.closePhase(using: &serverRandom) {
            outcome = finished
            return false
        }
        if server.phase == .shareKeys { adoptRevealedPlacement() }
        return true
    }

    /// Sends the open phase's requests and gives the answers to the server. `tamper` rewrites a
    /// request before the device sees it; `withhold` drops an answer as if it never arrived.
    mutating func exchangeOpenPhase(
        tamper: (UInt32, ServerMessage) -> ServerMessage = { $1 }, withhold: (UInt32, DeviceMessage) -> Bool = { _, _ in false }
    ) {
        guard let phase = server.phase else { return }
        var requests: [(UInt32, ServerMessage)] = []
        for d in server.recipients {
            guard let message = server.outgoingMessage(for: d) else { continue }
            if isSilent(d, before: phase) { server.deviceLeft(d); continue }
            requests.append((d, tamper(d, message)))
        }
        for (d, answer) in exchange(requests) {
            if withhold(d, answer) { server.deviceLeft(d); continue }
            do { try server.receive(answer, from: d) } catch { removedByServer[d] = error }
        }
    }

    /// With committed placement, the ring the server revealed when AdvertiseKeys closed.
    mutating func adoptRevealedPlacement() {
        guard let first = server.recipients.first, case let .neighbourKeys(_, reveal?) = server.outgoingMessage(for: first) else { return }
        placementRoot = reveal.root
        graph = NeighbourGraph(configuration: configuration, placementSeed: Placement.seed(
            transcript: ProtocolEncoding.roundTranscript(configuration), secret: reveal.secret, root: reveal.root))
    }

    /// ConsistencyCheck and Unmasking as the aggregator builds them (`plan`), after the real
    /// server closed MaskedInputCollection. Honest devices not targeted get what the protocol
    /// says; a device is asked to unmask when it is targeted or the aggregator holds t signatures
    /// for it, as the honest server asks only devices it can serve.
    mutating func runLatePhases(_ plan: UnmaskingPlan) {
        precondition(configuration.threatModel == .active && server.phase == .consistencyCheck, "late phases start at ConsistencyCheck")
        let survivors = server.survivorSet
        let checks = survivors.filter { !isSilent($0, before: .consistencyCheck) }
            .map { ($0, ServerMessage.consistencyCheck(survivors: plan.shownSurvivors[$0] ?? survivors)) }
        _ = exchange(checks)
        var requests: [(UInt32, ServerMessage)] = []
        for d in view.consistency.keys.sorted() where !isSilent(d, before: .unmasking) {
            let request = unmaskingRequest(for: d, plan)
            guard case let .unmaskingRequest(_, _, signatures) = request,
                  plan.targeted.contains(d) || signatures.count >= configuration.threshold else { continue }
            requests.append((d, request))
        }
        askedToUnmask = Set(requests.map(\.0))
        _ = exchange(requests)
        stoppedByAdversary = true
    }

    /// The devices `plan` targeted that its deviation reached: asked to unmask, or refusing the
    /// survivor set they were shown (a device that dropped first never saw it).
    func reached(_ plan: UnmaskingPlan) -> Set<UInt32> {
        plan.targeted.filter { askedToUnmask.contains($0) || refusals[$0].map { $0.phase >= .consistencyCheck } == true }
    }

    /// The unmasking request for `device` under `plan`, with every signature the aggregator has
    /// over the set the device signed: colluders sign any set, honest signers only the set they
    /// were shown, and replayed signatures are offered for the rest.
    func unmaskingRequest(for device: UInt32, _ plan: UnmaskingPlan) -> ServerMessage {
        let signed = view.consistency[device]!.survivors
        let inSigned = Set(signed)
        let sharers = view.maskPartners[device] ?? []
        let claimed = plan.claimedDropped[device]
        let surviving = sharers.filter { inSigned.contains($0) && $0 != claimed }
        var dropped = sharers.filter { !inSigned.contains($0) || $0 == claimed }
        if let both = plan.askedForBoth[device], !dropped.contains(both) { dropped = (dropped + [both]).sorted() }
        var signatures: [UInt32: Ed25519.Signature] = [:]
        for j in surviving {
            if colluders.contains(j) {
                signatures[j] = view.colluderSignature(j, over: signed)
            } else if let own = view.consistency[j], own.survivors == signed {
                signatures[j] = own.signature
            } else if let replay = plan.replayed[j], replay.survivors == signed {
                signatures[j] = replay.signature
            }
        }
        return .unmaskingRequest(survivingNeighbours: surviving, droppedNeighbours: dropped, signatures: signatures)
    }

    /// Sends each request to its device (device work on ``workers`` threads) and returns the
    /// answers in request order. Records every answer in the view and every honest refusal.
    mutating func exchange(_ requests: [(UInt32, ServerMessage)]) -> [(UInt32, DeviceMessage)] {
        for case let (d, .sealedShares(list)) in requests { view.maskPartners[d] = list.map(\.sender) }
        let messages = requests.map(\.1)
        let answers = parallel(requests.map(\.0)) { i, session, random in
            Self.answer { () throws(ProtocolViolation) in try session.handle(messages[i], using: &random) }
        }
        var delivered: [(UInt32, DeviceMessage)] = []
        for ((d, request), answer) in zip(requests, answers) {
            switch answer {
            case let .success(message):
                view.record(message, from: d, identity: identities[Int(d)].publicKey)
                if case let .consistencyCheck(shown) = request { view.recordConsistency(message, from: d, shown: shown) }
                delivered.append((d, message))
            case let .failure(violation):
                if isHonest(d) { refusals[d] = violation }
                server.deviceLeft(d)
            }
        }
        return delivered
    }

    /// Runs `body`, capturing its protocol violation.
    static func answer(_ body: () throws(ProtocolViolation) -> DeviceMessage) -> Result<DeviceMessage, ProtocolViolation> {
        do { return .success(try body()) } catch { return .failure(error) }
    }

    /// Runs `work` for each listed device on ``workers`` threads (each device on one thread) and
    /// returns the results in list order.
    mutating func parallel<T: Sendable>(
        _ targets: [UInt32], _ work: @escaping @Sendable (Int, inout DeviceSession, inout SeededRandomSource) -> T
    ) -> [T] {
        let slots = Slots<T>(count: targets.count)
        let threads = min(workers, max(1, targets.count))
        devices.withUnsafeMutableBufferPointer { sessions in
            randomness.withUnsafeMutableBufferPointer { randoms in
                let sessionsPointer = UnsafeSendable(sessions), randomPointer = UnsafeSendable(randoms)
                DispatchQueue.concurrentPerform(iterations: threads) { worker in
                    var i = worker
                    while i < targets.count {
                        let d = Int(targets[i])
                        slots.store(work(i, &sessionsPointer.value[d], &randomPointer.value[d]), at: i)
                        i += threads
                    }
                }
            }
        }
        return slots.collect()
    }
}
