import Foundation
import SwiftProtobuf
import VeilCrypto
import VeilProtocol
import VeilTransport
import VeilWire

/// The device's side of one `Participate` stream: answers the challenge, builds a
/// ``DeviceSession`` when assigned, and feeds it each protocol message. Frames out of order end the
/// stream with ``DeviceError/unexpectedFrame(_:)``.
struct ClientRound {
    enum Step {
        /// Write this frame.
        case send(Veil_V1_DeviceFrame)
        /// Write this refusal, close the stream and fail with the error.
        case refuse(Veil_V1_DeviceFrame, DeviceError)
        /// Nothing to send; read on.
        case wait
        /// Stop: the participation ended.
        case finished(RoundParticipation)
    }

    private enum State {
        case awaitingChallenge
        case waitingForRound
        case inRound(DeviceSession, RoundAssignmentContent)
        /// Answering nothing from this phase on (``ParticipationOptions/silentFrom``) until the
        /// aggregator ends the stream.
        case silent(Phase, RoundAssignmentContent)
        case done
    }

    let identity: DeviceIdentity
    let options: ParticipationOptions
    let policy: DevicePolicy
    let signedRounds: SignedRoundLedger
    /// The windows offered at check-in (feature rounds), oldest first; empty for plain rounds.
    let offeredWindows: [Int]
    /// Called before the masked input is sent, to record durably that the input is spent; when
    /// it throws, the device leaves the round without sending it.
    let beforeMaskedInput: VeilDevice.SpendHook?
    private var state = State.awaitingChallenge
    private var random = SystemRandomSource()
    /// Protocol bytes sent so far.
    private(set) var bytesSent = 0
    private var bytesReceived = 0
    /// When AdvertiseKeys was sent: the placement reveal must come within the policy's deadline.
    private var advertisedAt: ContinuousClock.Instant?
    private var computeSeconds = 0.0
    /// Seconds of protocol computation so far.
    var computeSpent: Double { computeSeconds }

    init(
        identity: DeviceIdentity, options: ParticipationOptions, policy: DevicePolicy, signedRounds: SignedRoundLedger, offeredWindows: [Int] = [],
        beforeMaskedInput: VeilDevice.SpendHook? = nil
    ) {
        self.offeredWindows = offeredWindows
        self.beforeMaskedInput = beforeMaskedInput
        self.identity = identity
        self.options = options
        self.policy = policy
        self.signedRounds = signedRounds
    }

    mutating func handle(_ content: ServerFrameContent, input: VeilDevice.InputProvider) async throws(DeviceError) -> Step {
        switch (state, content) {
        case let (.awaitingChallenge, .challenge(nonce)):
            state = .waitingForRound
            let signature = identity.privateKey.signature(for: TransportStatement.checkIn(nonce: nonce))
            return .send(TransportCodec.checkInFrame(identityKey: identity.publicKey, signature: signature, offeredWindows: offeredWindows))

        case let (.waitingForRound, .assignment(assignment)):
            let vector: ModularVector
            do { vector = try await input(assignment) } catch { throw .input(String(describing: error)) }
            let configuration = assignment.configuration
            if options.disconnectBefore == .advertiseKeys { return finish(.disconnected(before: .advertiseKeys), "disconnected before advertise-keys", assignment) }
            if options.silentFrom == .advertiseKeys {
                state = .silent(.advertiseKeys, assignment)
                return .wait
            }
            let started = ContinuousClock.now
            defer { addCompute(since: started) }
            do {
                var session: DeviceSession
                do {
                    session = try DeviceSession(
                        configuration: configuration, graph: NeighbourGraph(configuration: configuration), device: assignment.deviceIndex,
                        identity: configuration.threatModel == .active ? identity.privateKey : nil, input: vector, policy: policy)
                } catch {
                    throw .input(String(describing: error))
                }
                // Remember the round id durably before anything is signed in it (SPEC.md §13.2).
                do {
                    try signedRounds.record(configuration.roundID)
                } catch {
                    switch error {
                    case let .reused(violation):
                        return refuse(ProtocolViolation(round: configuration.roundID, device: assignment.deviceIndex, phase: .advertiseKeys, kind: .policy(violation)))
                    case let .unwritable(why):
                        state = .done
                        throw .localStore(why)
                    }
                }
                let message: DeviceMessage
                do { message = try session.start(using: &random) } catch { return refuse(error) }
                state = .inRound(session, assignment)
                advertisedAt = .now
                return send(message, configuration)
            }

        case (.inRound(var session, let assignment), .protocolMessage(let bytes)):
            bytesReceived += bytes.count
            let configuration = assignment.configuration
            let message: ServerMessage
            do {
                message = try WireCodec.decodeServerMessage(bytes, for: assignment.deviceIndex, configuration: configuration)
            } catch {
                state = .done
                throw .malformedServerFrame(error)
            }
            if options.disconnectBefore == message.phase {
                return finish(.disconnected(before: message.phase), "disconnected before \(message.phase.rawValue)", assignment)
            }
            if let silentFrom = options.silentFrom, message.phase >= silentFrom {
                state = .silent(message.phase, assignment)
                return .wait
            }
            // With committed placement, a server that takes longer than the policy allows to reveal
            // the placement may be trying candidates (SPEC.md §5.1): leave before dealing shares.
            if configuration.usesCommittedPlacement, message.phase == .shareKeys, let advertisedAt,
               ContinuousClock.now - advertisedAt > .milliseconds(Int64(policy.placementDeadlineSeconds * 1000)) {
                return refuse(ProtocolViolation(
                    round: configuration.roundID, device: assignment.deviceIndex, phase: .shareKeys,
                    kind: .placementRefused("the placement was revealed after the policy's \(policy.placementDeadlineSeconds) s deadline")))
            }
            let started = ContinuousClock.now
            defer { addCompute(since: started) }
            do {
                let reply: DeviceMessage
                do { reply = try session.handle(message, using: &random) } catch {
                    return refuse(error)
                }
                if case .maskedInput = reply, let beforeMaskedInput {
                    do { try beforeMaskedInput(assignment) } catch {
                        state = .done
                        throw .localStore("cannot record the input as spent, so it is not sent: \(error)")
                    }
                }
                state = .inRound(session, assignment)
                return send(reply, configuration)
            }

        case (.silent, .protocolMessage):
            return .wait

        case let (.silent(phase, assignment), .ended(ended)):
            return finish(.disconnected(before: phase), "silent from \(phase.rawValue): \(ended.reason)", assignment, survivors: Int(ended.survivors))

        case let (.inRound(_, assignment), .ended(ended)):
            guard ended.outcome != .alreadyCounted else {
                state = .done
                throw .unexpectedFrame("already-counted after the round was assigned")
            }
            return finish(outcome(ended), ended.reason, assignment, survivors: Int(ended.survivors))

        case let (.waitingForRound, .ended(ended)), let (.awaitingChallenge, .ended(ended)):
            if ended.outcome == .alreadyCounted {
                state = .done
                return .finished(RoundParticipation(
                    outcome: .alreadyCounted, reason: ended.reason, configuration: nil, deviceIndex: nil, task: ended.task,
                    countedRoundID: RoundID(hex: ended.countedRoundID), survivors: 0, bytesSent: bytesSent,
                    bytesReceived: bytesReceived, computeSeconds: computeSeconds))
            }
            return finish(outcome(ended), ended.reason, nil, survivors: Int(ended.survivors))

        default:
            state = .done
            throw .unexpectedFrame("\(Self.name(content)) while \(stateName)")
        }
    }

    /// Ends the round with a refusal frame naming who is at fault (SPEC.md §11.3), then the error.
    private mutating func refuse(_ violation: ProtocolViolation) -> Step {
        state = .done
        let reason: Veil_V1_Refusal.Reason
        switch violation.kind {
        case .policy(.roundReused): reason = .roundReused
        case .policy: reason = .policy
        default: reason = violation.isCausedByPeer ? .peerFault : .aggregatorViolation
        }
        let frame = TransportCodec.refusalFrame(RefusalContent(reason: reason, detail: violation.description))
        return .refuse(frame, .protocolViolation(violation))
    }

    private mutating func send(_ message: DeviceMessage, _ configuration: RoundConfiguration) -> Step {
        let bytes = WireCodec.encode(message, round: configuration.roundID)
        bytesSent += bytes.count
        return .send(TransportCodec.protocolFrame(bytes))
    }

    private mutating func addCompute(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        computeSeconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    private mutating func finish(_ outcome: RoundParticipation.Outcome, _ reason: String, _ assignment: RoundAssignmentContent?, survivors: Int = 0) -> Step {
        state = .done
        return .finished(RoundParticipation(
            outcome: outcome, reason: reason, configuration: assignment?.configuration, deviceIndex: assignment?.deviceIndex, task: assignment?.task,
            countedRoundID: outcome == .counted ? assignment?.configuration.roundID : nil,
            survivors: survivors, bytesSent: bytesSent, bytesReceived: bytesReceived, computeSeconds: computeSeconds))
    }

    private func outcome(_ ended: RoundEndedContent) -> RoundParticipation.Outcome {
        switch ended.outcome {
        case .counted: return .counted
        case .aborted: return .aborted
        case .noRound: return .noRound(retryAfterMilliseconds: ended.retryAfterMilliseconds)
        default: return .notCounted
        }
    }

    private var stateName: String {
        switch state {
        case .awaitingChallenge: return "awaiting the challenge"
        case .waitingForRound: return "waiting for a round"
        case .inRound: return "in a round"
        case .silent: return "silent in a round"
        case .done: return "finished"
        }
    }

    private static func name(_ content: ServerFrameContent) -> String {
        switch content {
        case .challenge: return "challenge"
        case .assignment: return "assignment"
        case .protocolMessage: return "protocol message"
        case .ended: return "ended"
        }
    }
}
