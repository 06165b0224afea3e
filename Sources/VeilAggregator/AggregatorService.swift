import Foundation
import SwiftProtobuf
import CoreMetrics
import GRPCCore
import Logging
import VeilCrypto
import VeilFeatures
import VeilProtocol
import VeilTransport
import VeilWire
import VeilStore

/// The device-facing gRPC service (`veil.v1.Aggregator`): enrolment, and one `Participate` stream
/// per device per round. Every frame is decoded strictly; a bad frame ends that device's stream
/// with a status naming the problem and removes it from its round, and no one else is affected.
struct AggregatorService: Veil_V1_Aggregator.SimpleServiceProtocol {
    let store: any AggregatorStore
    let coordinator: RoundCoordinator
    let metrics: AggregatorMetrics
    let logger: Logger
    let checkInTimeout: Duration
    /// Limits unauthenticated enrolment requests before they reach the store.
    let enrolments: RateLimiter
    /// Limits feature-set requests before their signature is checked.
    let definitionRequests: RateLimiter
    /// The aggregator's clock (feature-set requests carry a signed timestamp).
    let clock: @Sendable () -> Date
    /// The window length of feature rounds.
    let windowSeconds: Int
    /// The feature set this aggregator's rounds aggregate, if any.
    let roundsFeatureSet: FeatureSet?

    /// The Ed25519 identity key and signature a request carries (`Enrol`, `FeatureSets`), or
    /// INVALID_ARGUMENT naming the field when either is not a well-formed key or signature.
    static func signedIdentity(key: Data, signature: Data) throws -> (Ed25519.PublicKey, Ed25519.Signature) {
        do {
            return (try Ed25519.PublicKey(rawRepresentation: Array(key)), try Ed25519.Signature(rawRepresentation: Array(signature)))
        } catch {
            throw RPCError(code: .invalidArgument, message: "identity_key/signature: \(error)")
        }
    }

    func enrol(request: Veil_V1_EnrolRequest, context: ServerContext) async throws -> Veil_V1_EnrolResponse {
        guard enrolments.admit() else {
            metrics.rejected(reason: "enrolment-rate")
            throw RPCError(code: .resourceExhausted, message: "too many enrolment requests; retry later")
        }
        guard request.unknownFields.data.isEmpty else { throw RPCError(code: .invalidArgument, message: "enrol request carries fields unknown to veil.v1") }
        guard !request.token.isEmpty, request.token.utf8.count <= 256 else { throw RPCError(code: .invalidArgument, message: "token: must be 1...256 bytes") }
        let (key, signature) = try Self.signedIdentity(key: request.identityKey, signature: request.signature)
        guard key.isValidSignature(signature, for: TransportStatement.enrolment(token: request.token)) else {
            metrics.rejected(reason: "enrolment-signature")
            throw RPCError(code: .unauthenticated, message: EnrolmentError.badSignature.description)
        }
        do {
            let id = try await store.enrol(token: request.token, identityKey: key)
            logger.info("device enrolled", metadata: ["device": "\(id)"])
            return .with { $0.deviceID = id }
        } catch {
            metrics.rejected(reason: "enrolment")
            logger.notice("enrolment refused", metadata: ["reason": "\(error)"])
            switch error {
            case .alreadyEnrolled: throw RPCError(code: .alreadyExists, message: error.description)
            case .storage: throw RPCError(code: .internalError, message: "enrolment could not be stored")
            default: throw RPCError(code: .unauthenticated, message: error.description)
            }
        }
    }

    func participate(
        request: RPCAsyncSequence<Veil_V1_DeviceFrame, any Error>,
        response: RPCWriter<Veil_V1_ServerFrame>,
        context: ServerContext
    ) async throws {
        metrics.streams.increment()
        var random = SystemRandomSource()
        let link = DeviceLink(nonce: random.bytes(count: TransportStatement.challengeByteCount))
        try await response.write(TransportCodec.challengeFrame(nonce: link.nonce))

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.read(request, link: link) }
            group.addTask {
                try? await Task.sleep(for: self.checkInTimeout)
                if link.identity == nil {
                    link.fail(RPCError(code: .deadlineExceeded, message: "no check-in within \(self.checkInTimeout)"))
                }
            }
            defer { group.cancelAll() }
            for await next in link.outbound {
                switch next {
                case let .frame(frame):
                    try await response.write(frame)
                case let .end(frame):
                    try await response.write(frame)
                    return
                case let .fail(error):
                    throw error
                }
            }
        }
    }

    /// Reads the device's frames: the check-in first, protocol messages after assignment.
    private func read(_ request: RPCAsyncSequence<Veil_V1_DeviceFrame, any Error>, link: DeviceLink) async {
        do {
            for try await frame in request {
                if link.identity == nil {
                    try await checkIn(frame, link: link)
                } else if let (driver, index) = link.round {
                    switch try TransportCodec.afterCheckIn(from: frame, limit: WireCodec.maximumDeviceMessageByteCount(driver.configuration)) {
                    case let .protocolMessage(bytes):
                        await driver.receive(bytes, from: index)
                    case let .refusal(refusal):
                        // The device leaves the round; nothing more is read from its stream.
                        await driver.deviceRefused(index, refusal)
                        link.end(TransportCodec.endedFrame(.notCounted, reason: "the device refused the round"))
                    }
                } else {
                    throw RPCError(code: .failedPrecondition, message: "protocol message before the device was assigned to a round")
                }
                if link.isClosed { break }
            }
        } catch let error as RPCError {
            metrics.rejected(reason: "\(error.code)")
            link.fail(error)
        } catch let error as WireError {
            metrics.rejected(reason: "malformed")
            if case .tooLarge = error {
                link.fail(RPCError(code: .resourceExhausted, message: error.description))
            } else {
                link.fail(RPCError(code: .invalidArgument, message: error.description))
            }
        } catch {
            // The device went away (reset or transport error): that is a dropout.
        }
        link.close()
        await coordinator.streamClosed(link, deviceID: link.identity?.deviceID)
    }

    private func checkIn(_ frame: Veil_V1_DeviceFrame, link: DeviceLink) async throws {
        let checkIn = try TransportCodec.checkIn(from: frame)
        guard checkIn.identityKey.isValidSignature(checkIn.signature, for: TransportStatement.checkIn(nonce: link.nonce)) else {
            throw RPCError(code: .unauthenticated, message: "the check-in signature does not verify under the identity key")
        }
        let status: DeviceStatus
        do { status = try await store.status(of: checkIn.identityKey) } catch {
            throw RPCError(code: .unavailable, message: "enrolment lookup failed; retry later")
        }
        switch status {
        case .unknown:
            throw RPCError(code: .unauthenticated, message: "device is not enrolled")
        case let .revoked(id):
            throw RPCError(code: .permissionDenied, message: "device \(id) is revoked")
        case let .active(id):
            link.identity = (id, checkIn.identityKey)
            try await coordinator.checkIn(link, deviceID: id, offered: checkIn.offeredWindows)
        }
    }
}
