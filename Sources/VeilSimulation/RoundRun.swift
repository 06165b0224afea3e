import Dispatch
import Foundation
import VeilCrypto
import VeilProtocol
import VeilWire

/// What one device did with one server message.
enum DeviceAnswer: Sendable {
    /// The device was silent (dropped out).
    case silent
    /// The device refused the message (a protocol violation it detected).
    case refused(ProtocolViolation)
    /// The device answered with these wire bytes.
    case answer([UInt8])
    /// The device answered after the phase's deadline in simulated time; the server dropped it.
    case cutByDeadline
}

/// Figures of one phase.
struct PhaseFigures: Sendable {
    var wallSeconds = 0.0
    var serverSeconds = 0.0
    var deviceSeconds = 0.0
    var answered = 0
    var silent = 0
    var refusedByDevices = 0
    var rejectedByServer = 0
    var bytesUp = 0
    var bytesDown = 0
    /// Answers that arrived after the simulated deadline.
    var cutByDeadline = 0
}

/// One round's driving state and measurements.
struct RoundRun: Sendable {
    let configuration: RoundConfiguration
    let limits: PhysicalLimits
    let workers: Int
    let batchSize: Int
    var server: AggregationSession
    var phases: [Phase: PhaseFigures] = [:]
    var deviceSeconds: [Double]
    var bytesUp = 0
    var bytesDown = 0
    var serverSeconds = 0.0
    var totalSeconds = 0.0
    var rejections: [String: Int] = [:]
    /// Devices whose ShareKeys message the server accepted (U2 before pruning).
    var sharedKeys: [Bool]
    /// Devices whose AdvertiseKeys (U1) and consistency signature (U4) the server accepted.
    var advertised: [Bool]
    var signed: [Bool]
    var deviceRefusals: [String: Int] = [:]
    /// The round in simulated time, when the scenario has a network.
    var clock: SimulatedClock?
    /// The open phase's events in simulated time.
    var events = SimulatedClock.PhaseEvents()

    init(configuration: RoundConfiguration, placementSecret: [UInt8]?, cohort: Cohort, limits: PhysicalLimits, workers: Int, batchSize: Int) {
        self.configuration = configuration
        self.limits = limits
        self.workers = workers
        self.batchSize = batchSize
        server = try! AggregationSession(
            configuration: configuration, graph: cohort.graph, identities: cohort.identities, placementSecret: placementSecret, workers: workers)
        deviceSeconds = Array(repeating: 0, count: configuration.cohortSize)
        sharedKeys = Array(repeating: false, count: configuration.cohortSize)
        advertised = sharedKeys
        signed = sharedKeys
    }

    /// Runs the round to its outcome.
    mutating func drive(cohort: inout Cohort, random: inout SeededRandomSource, progress: ((SimulationProgress) -> Void)?) -> AggregationOutcome {
        let start = ContinuousClock.now
        let round = configuration.roundID
        let n = configuration.cohortSize
        let everyone = (0..<UInt32(n)).map { $0 }
        exchange(.advertiseKeys, recipients: everyone, cohort: &cohort, start: start, progress: progress) { d, session, rng, _ in
            let message = try session.start(using: &rng)
            return (WireCodec.encode(message, round: round), 0)
        }
        while true {
            let closing = server.phase!
            let closeStart = ContinuousClock.now
            let outcome = server.closePhase(using: &random)
            let closeSeconds = (ContinuousClock.now - closeStart).seconds
            serverSeconds += closeSeconds
            phases[closing, default: PhaseFigures()].serverSeconds += closeSeconds
            phases[closing, default: PhaseFigures()].wallSeconds += closeSeconds
            clock?.finish(closing, events: events, closeSeconds: closeSeconds)
            events = SimulatedClock.PhaseEvents()
            if let outcome {
                totalSeconds = (ContinuousClock.now - start).seconds
                return outcome
            }
            let phase = server.phase!
            let snapshot = server
            let cohortSize = n
            exchange(phase, recipients: server.recipients, cohort: &cohort, start: start, progress: progress) { d, session, rng, serverTime in
                let serverStart = ResourceUsage.threadCPUSeconds()
                guard let message = snapshot.outgoingMessage(for: d) else { return (nil, 0) }
                let down = WireCodec.encode(message, round: round, cohortSize: cohortSize)
                serverTime = ResourceUsage.threadCPUSeconds() - serverStart
                // The device decodes the bytes it received, as a real client does.
                let decoded = try WireCodec.decodeServerMessage(down, for: d, configuration: session.configuration)
                let answer = try session.handle(decoded, using: &rng)
                return (WireCodec.encode(answer, round: round), down.count)
            }
        }
    }

    /// Asks every recipient for its message of `phase` in parallel batches and feeds the answers to
    /// the server in order. `produce` returns the device's wire answer (nil if nothing to send) and
    /// may report the server-side CPU seconds spent building the request.
    mutating func exchange(
        _ phase: Phase, recipients: [UInt32], cohort: inout Cohort, start: ContinuousClock.Instant,
        progress: ((SimulationProgress) -> Void)?,
        produce: @escaping @Sendable (UInt32, inout DeviceSession, inout SeededRandomSource, inout Double) throws -> (up: [UInt8]?, downBytes: Int)
    ) {
        let phaseStart = ContinuousClock.now
        var figures = phases[phase] ?? PhaseFigures()
        var offset = 0
        // Simulated time: the server builds the phase's requests one after another, so device i's
        // is ready once those before it are built.
        var requestReady = 0.0
        while offset < recipients.count {
            let batch = Array(recipients[offset..<min(offset + batchSize, recipients.count)])
            let results = Slots<(DeviceAnswer, Double, Double, Int)>(count: batch.count)
            let behaviours = cohort.behaviours
            let workers = self.workers
            cohort.sessions.withUnsafeMutableBufferPointer { sessions in
                cohort.randomness.withUnsafeMutableBufferPointer { randomness in
                    let sessionsPointer = UnsafeSendable(sessions)
                    let randomPointer = UnsafeSendable(randomness)
                    DispatchQueue.concurrentPerform(iterations: min(workers, batch.count)) { worker in
                        var i = worker
                        while i < batch.count {
                            let d = batch[i]
                            var serverTime = 0.0
                            // CPU time of this thread, not wall time: the workers share the
                            // machine, and a simulated device has a processor of its own.
                            let deviceStart = ResourceUsage.threadCPUSeconds()
                            var answer: DeviceAnswer
                            var downBytes = 0
                            if case let .drops(before) = behaviours[Int(d)], phase >= before {
                                answer = .silent
                            } else {
                                do {
                                    let exchanged = try produce(d, &sessionsPointer.value[Int(d)], &randomPointer.value[Int(d)], &serverTime)
                                    downBytes = exchanged.downBytes
                                    if let bytes = exchanged.up {
                                        answer = .answer(Tampering.apply(behaviours[Int(d)], to: bytes, phase: phase))
                                    } else {
                                        answer = .silent
                                    }
                                } catch let violation as ProtocolViolation {
                                    answer = .refused(violation)
                                } catch {
                                    answer = .refused(ProtocolViolation(round: sessionsPointer.value[Int(d)].configuration.roundID, device: d, phase: phase, kind: .malformed("\(error)")))
                                }
                            }
                            let deviceTime = ResourceUsage.threadCPUSeconds() - deviceStart - serverTime
                            results.store((answer, deviceTime, serverTime, downBytes), at: i)
                            i += workers
                        }
                    }
                }
            }
            // Feed the server in order, as a network server would.
            for (i, (received, deviceTime, requestTime, downBytes)) in results.collect().enumerated() {
                let d = batch[i]
                var answer = received
                requestReady += requestTime
                var arrival = 0.0
                if let clock {
                    switch answer {
                    case .silent:
                        events.silent += 1
                    case let .answer(bytes):
                        arrival = clock.arrival(of: d, requestReady: requestReady, downBytes: downBytes, deviceSeconds: deviceTime, upBytes: bytes.count)
                        events.arrivals.append(arrival)
                        // The aggregator starts a phase's deadline once it has built every
                        // request; until the last is built, estimate when that will be from the
                        // requests built so far.
                        let built = Double(offset + i + 1)
                        let allBuilt = requestReady / built * Double(recipients.count)
                        if arrival > allBuilt + clock.deadlines.seconds(for: phase) {
                            // Too late: the aggregator has dropped the device.
                            figures.cutByDeadline += 1
                            events.cut += 1
                            answer = .cutByDeadline
                        }
                    case .refused, .cutByDeadline:
                        break
                    }
                }
                deviceSeconds[Int(d)] += deviceTime
                figures.deviceSeconds += deviceTime
                figures.serverSeconds += requestTime
                serverSeconds += requestTime
                figures.bytesDown += downBytes
                bytesDown += downBytes
                let serverStart = ContinuousClock.now
                switch answer {
                case .silent:
                    figures.silent += 1
                    server.deviceLeft(d)
                case .cutByDeadline:
                    server.deviceLeft(d)
                case let .refused(violation):
                    figures.refusedByDevices += 1
                    deviceRefusals[Self.category(violation.kind), default: 0] += 1
                    server.deviceLeft(d)
                case let .answer(bytes):
                    figures.bytesUp += bytes.count
                    bytesUp += bytes.count
                    do {
                        let message = try WireCodec.decodeDeviceMessage(bytes, from: d, configuration: configuration)
                        try server.receive(message, from: d)
                        figures.answered += 1
                        switch phase {
                        case .advertiseKeys: advertised[Int(d)] = true
                        case .shareKeys: sharedKeys[Int(d)] = true
                        case .consistencyCheck: signed[Int(d)] = true
                        case .maskedInputCollection, .unmasking: break
                        }
                    } catch let violation as ProtocolViolation {
                        figures.rejectedByServer += 1
                        rejections[Self.category(violation.kind), default: 0] += 1
                    } catch {
                        figures.rejectedByServer += 1
                        rejections["undecodable message", default: 0] += 1
                        server.deviceLeft(d)
                    }
                }
                let spent = (ContinuousClock.now - serverStart).seconds
                figures.serverSeconds += spent
                serverSeconds += spent
                if case .answer = answer, clock != nil { events.answers.append((arrival, spent)) }
            }
            offset += batch.count
            progress?(SimulationProgress(phase: phase, done: offset, total: recipients.count, elapsed: (ContinuousClock.now - start).seconds))
        }
        figures.wallSeconds += (ContinuousClock.now - phaseStart).seconds
        events.requestsBuilt = requestReady
        phases[phase] = figures
    }
}

extension RoundRun {
    /// The name of a violation's kind without its parameters, for counting.
    static func category(_ kind: ProtocolViolation.Kind) -> String {
        // The enum case's label, e.g. "invalidSignature".
        Mirror(reflecting: kind).children.first?.label ?? String(describing: kind)
    }
}

/// Wraps a pointer so that worker closures may capture it; each worker touches distinct indices.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
