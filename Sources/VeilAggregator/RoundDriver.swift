public import Foundation
import CoreMetrics
import GRPCCore
import Logging
import VeilCrypto
public import VeilProtocol
import VeilWire

/// Drives one round's ``AggregationSession`` from network events: device messages, devices
/// leaving, and phase deadlines. A phase closes when every expected device answered or its
/// deadline passed; the round then continues with the devices that answered, and devices that are
/// no longer needed are told the round moved on.
actor RoundDriver {
    let configuration: RoundConfiguration
    let task: String
    let links: [DeviceLink]
    let phaseTimeout: Duration
    let startedAt = Date()
    private var session: AggregationSession
    private var random = SystemRandomSource()
    private var generation = 0
    private var phaseStarted = ContinuousClock.now
    private var deadline: Task<Void, Never>?
    private let metrics: AggregatorMetrics
    private let logger: Logger
    private let onEnd: @Sendable (CompletedRound) async -> RoundEndNotice
    /// Seconds spent in protocol work (decoding, receiving, closing phases, encoding replies).
    private var computeSeconds = 0.0
    /// Wall seconds of each closed phase, from its opening to its close.
    private var phaseSeconds: [Phase: Double] = [:]
    /// When each phase closed, seconds since the round started.
    private var phaseClosedAt: [Phase: Double] = [:]
    /// When each answer arrived, seconds after its phase opened (its deadline started).
    private var arrivals: [Phase: [Double]] = [:]
    private var roundStarted = ContinuousClock.now
    private var bytesIn: [Phase: Int] = [:]
    private var bytesOut: [Phase: Int] = [:]

    init(
        configuration: RoundConfiguration, placementSecret: [UInt8]?, task: String, links: [DeviceLink], phaseTimeout: Duration, minimumSurvivors: Int = 0,
        metrics: AggregatorMetrics, logger: Logger, onEnd: @escaping @Sendable (CompletedRound) async -> RoundEndNotice
    ) throws(ConfigurationError) {
        var identities: [UInt32: Ed25519.PublicKey] = [:]
        for (i, link) in links.enumerated() { identities[UInt32(i)] = link.identity?.key }
        session = try AggregationSession(
            configuration: configuration, graph: NeighbourGraph(configuration: configuration),
            identities: configuration.threatModel == .active ? identities : [:], placementSecret: placementSecret)
        session.minimumSurvivors = minimumSurvivors
        self.configuration = configuration
        self.task = task
        self.links = links
        self.phaseTimeout = phaseTimeout
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "round"] = "\(configuration.roundID)"
        self.logger = logger
        self.onEnd = onEnd
    }

    /// Sends every device its assignment and opens AdvertiseKeys.
    func start() {
        let timeout = UInt32(clamping: phaseTimeout.nanoseconds / 1_000_000)
        roundStarted = .now
        for (i, link) in links.enumerated() {
            link.round = (self, UInt32(i))
            link.send(TransportCodec.assignmentFrame(configuration: configuration, deviceIndex: UInt32(i), task: task, phaseTimeoutMilliseconds: timeout))
            // A device that left while being assigned is already gone.
            if link.isClosed { session.deviceLeft(UInt32(i)) }
        }
        logger.info("round started", metadata: ["cohort": "\(configuration.cohortSize)", "degree": "\(configuration.degree)", "threshold": "\(configuration.threshold)"])
        metrics.phaseOpened(.advertiseKeys, devices: links.count)
        openPhase()
        advanceWhileComplete()
    }

    /// A protocol message from device `index`.
    func receive(_ bytes: [UInt8], from index: UInt32) {
        guard let phase = session.phase, !links[Int(index)].isClosed else { return }
        let started = ContinuousClock.now
        defer { computeSeconds += (ContinuousClock.now - started).seconds }
        metrics.bytesReceived.increment(by: bytes.count)
        bytesIn[phase, default: 0] += bytes.count
        arrivals[phase, default: []].append((started - phaseStarted).seconds)
        let message: DeviceMessage
        do {
            message = try WireCodec.decodeDeviceMessage(bytes, from: index, configuration: configuration)
        } catch {
            remove(index, RPCError(code: .invalidArgument, message: "malformed \(session.phase?.rawValue ?? "") message: \(error)"), reason: "malformed")
            return
        }
        do {
            try session.receive(message, from: index)
        } catch {
            // The session has already removed the device; tell it why and close its stream.
            links[Int(index)].fail(RPCError(code: .failedPrecondition, message: error.description))
            metrics.rejected(reason: "protocol-violation")
            logger.warning("device removed", metadata: ["device": "\(index)", "violation": "\(error)"])
        }
        advanceWhileComplete()
    }

    /// Device `index` refused to go on (SPEC.md §11.3): it is treated as having dropped now, and
    /// the refusal is logged and counted, so an operator sees devices refusing the rounds' parameters.
    func deviceRefused(_ index: UInt32, _ refusal: RefusalContent) {
        metrics.refused(reason: refusal.reasonName)
        logger.warning("device refused the round", metadata: ["device": "\(index)", "refusal": "\(refusal)"])
        guard session.phase != nil else { return }
        session.deviceLeft(index)
        advanceWhileComplete()
    }

    /// Device `index` disconnected.
    func deviceLeft(_ index: UInt32) {
        guard session.phase != nil else { return }
        session.deviceLeft(index)
        advanceWhileComplete()
    }

    /// Ends the round now (for example on shutdown); nothing is released.
    func cancel(reason: String) async {
        guard session.phase != nil else { return }
        let outcome = session.cancel(reason: reason)
        await finish(outcome)
    }

    private func remove(_ index: UInt32, _ error: RPCError, reason: String) {
        links[Int(index)].fail(error)
        session.deviceLeft(index)
        metrics.rejected(reason: reason)
        logger.warning("device removed", metadata: ["device": "\(index)", "reason": "\(error.message)"])
    }

    private func phaseDeadline(_ expected: Int) async {
        guard expected == generation, session.phase != nil else { return }
        logger.info("phase deadline passed", metadata: ["phase": "\(session.phase!.rawValue)", "pending": "\(session.pendingDevices.count)"])
        await advance()
    }

    private func advanceWhileComplete() {
        guard session.phase != nil, session.isPhaseComplete else { return }
        // Run the phase change outside this call so that a message handler never waits for
        // unmasking; the actor still serialises it with every other event.
        let expected = generation
        Task { await self.advanceIfCurrent(expected) }
    }

    private func advanceIfCurrent(_ expected: Int) async {
        guard expected == generation, session.phase != nil, session.isPhaseComplete else { return }
        await advance()
    }

    private func advance() async {
        guard let closing = session.phase else { return }
        deadline?.cancel()
        generation += 1
        let clock = ContinuousClock()
        let closeStart = clock.now
        let outcome = session.closePhase(using: &random)
        computeSeconds += (clock.now - closeStart).seconds
        if closing == .unmasking { metrics.unmasked(session.statistics, duration: clock.now - closeStart) }
        metrics.phaseClosed(closing, after: clock.now - phaseStarted)
        phaseSeconds[closing] = (clock.now - phaseStarted).seconds
        phaseClosedAt[closing] = (clock.now - roundStarted).seconds
        if let outcome {
            await finish(outcome)
            return
        }
        if let point = FaultPoint.afterClosing(closing.rawValue) { FaultPoint.reach(point) }
        let encodeStart = clock.now
        defer { computeSeconds += (clock.now - encodeStart).seconds }
        let opened = session.phase!
        let recipients = session.recipients
        metrics.phaseOpened(opened, devices: recipients.count)
        var isRecipient = [Bool](repeating: false, count: links.count)
        for d in recipients {
            isRecipient[Int(d)] = true
            guard let message = session.outgoingMessage(for: d) else { continue }
            let bytes = WireCodec.encode(message, round: configuration.roundID, cohortSize: configuration.cohortSize)
            metrics.bytesSent.increment(by: bytes.count)
            bytesOut[opened, default: 0] += bytes.count
            links[Int(d)].send(TransportCodec.protocolFrame(bytes))
        }
        let survivors = Set(session.survivorSet)
        for (i, link) in links.enumerated() where !isRecipient[i] && !link.isClosed && !survivors.contains(UInt32(i)) {
            link.end(TransportCodec.endedFrame(.notCounted, reason: "the round moved on to \(opened.rawValue) without this device"))
        }
        logger.debug("phase opened", metadata: ["phase": "\(opened.rawValue)", "devices": "\(recipients.count)"])
        openPhase()
        advanceWhileComplete()
    }

    private func openPhase() {
        phaseStarted = ContinuousClock.now
        let expected = generation
        let timeout = phaseTimeout
        deadline = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled, let self else { return }
            // Close the phase in a task of its own: closing cancels this deadline task, and the
            // round's end, committed to the store from there, must not run cancelled (a round
            // whose last phase ended by deadline was lost with a CancellationError).
            Task { await self.phaseDeadline(expected) }
        }
    }

    /// Ends the round: its end is made durable first (by `onEnd`, which commits it to the store),
    /// and only then are devices told (SPEC.md §12.2). A device hears COUNTED only when the
    /// round's sum and its window merge are committed; if the commit failed, or its outcome is
    /// unknown, every device hears ABORTED, and one whose window was in fact committed hears
    /// ALREADY_COUNTED when it next checks in.
    private func finish(_ outcome: AggregationOutcome) async {
        deadline?.cancel()
        generation += 1
        let completed = CompletedRound(
            configuration: configuration, task: task, startedAt: startedAt, endedAt: Date(),
            deviceIDs: links.map { $0.identity?.deviceID ?? "" }, outcome: outcome,
            statistics: session.statistics, serverComputeSeconds: computeSeconds,
            phaseSeconds: phaseSeconds, phaseClosedAt: phaseClosedAt, arrivals: arrivals, bytesReceived: bytesIn, bytesSent: bytesOut)
        FaultPoint.reach(.beforeRoundCommit)
        let notice = await onEnd(completed)
        FaultPoint.reach(.afterRoundCommit)
        switch (outcome, notice) {
        case let (.finished(result), .committed):
            let counted = Set(result.survivors)
            for (i, link) in links.enumerated() {
                let isCounted = counted.contains(UInt32(i))
                link.end(TransportCodec.endedFrame(
                    isCounted ? .counted : .notCounted,
                    reason: isCounted ? "the round finished with this device's input in the sum" : "the round finished without this device's input",
                    survivors: result.survivors.count))
            }
            for (phase, dropped) in result.droppedInPhase { metrics.dropped(dropped.count, in: phase) }
            metrics.roundEnded(outcome: "finished")
            logger.info("round finished", metadata: ["survivors": "\(result.survivors.count)", "misbehaving": "\(result.misbehaving.count)"])
        case let (.finished, .notCommitted(why)):
            for link in links { link.end(TransportCodec.endedFrame(.aborted, reason: "the round's result was not stored: \(why)")) }
            metrics.roundEnded(outcome: "lost")
            logger.error("round finished but its result was not committed; no device was told it was counted", metadata: ["why": "\(why)"])
        case let (.aborted(reason), _):
            for link in links { link.end(TransportCodec.endedFrame(.aborted, reason: "the round aborted: \(reason)")) }
            metrics.roundEnded(outcome: "aborted")
            logger.warning("round aborted", metadata: ["reason": "\(reason)"])
        }
        FaultPoint.reach(.afterRoundEnded)
    }
}

/// What a round's devices may be told once its end was (or failed to be) made durable.
enum RoundEndNotice: Sendable, Equatable {
    /// The round's end is committed: a finished round's survivors are COUNTED.
    case committed
    /// The end could not be committed as it happened (the store failed, or the window refused
    /// the sum): nobody is told COUNTED.
    case notCommitted(String)
}

/// A round that ended, with its outcome (the sum when it finished).
public struct CompletedRound: Sendable {
    /// The round's configuration.
    public let configuration: RoundConfiguration
    /// The configured task.
    public let task: String
    /// When the cohort was assigned.
    public let startedAt: Date
    /// When the outcome was known.
    public let endedAt: Date
    /// The device id at each round index.
    public let deviceIDs: [String]
    /// Finished with a sum, or aborted with a reason.
    public let outcome: AggregationOutcome
    /// The unmasking work done.
    public let statistics: UnmaskingStatistics
    /// Seconds the aggregator spent in protocol work for this round (decoding and receiving
    /// messages, closing phases including unmasking, encoding replies).
    public let serverComputeSeconds: Double
    /// Wall seconds of each phase from its opening to its close.
    public let phaseSeconds: [Phase: Double]
    /// When each phase closed, seconds since the cohort was assigned: consecutive closes bound a
    /// phase's whole span, the encoding of its requests included.
    public let phaseClosedAt: [Phase: Double]
    /// When each device message arrived, seconds after its phase opened (when the phase's deadline
    /// started), in arrival order.
    public let arrivals: [Phase: [Double]]
    /// Protocol bytes received, by the phase they answered.
    public let bytesReceived: [Phase: Int]
    /// Protocol bytes sent, by the phase they opened (the requests devices answer in that phase).
    public let bytesSent: [Phase: Int]

    /// The same round with another outcome: a finished round whose result was not stored is
    /// reported as aborted.
    func with(outcome: AggregationOutcome) -> CompletedRound {
        CompletedRound(configuration: configuration, task: task, startedAt: startedAt, endedAt: endedAt, deviceIDs: deviceIDs,
                       outcome: outcome, statistics: statistics, serverComputeSeconds: serverComputeSeconds,
                       phaseSeconds: phaseSeconds, phaseClosedAt: phaseClosedAt, arrivals: arrivals, bytesReceived: bytesReceived, bytesSent: bytesSent)
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
