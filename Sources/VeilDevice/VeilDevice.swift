public import Foundation
import GRPCCore
public import Logging
import VeilCrypto
public import VeilProtocol
import VeilTransport
public import VeilWire

/// The device side of Veil, for an edge agent to link: enrol once, then take part in rounds with
/// an input vector the caller supplies. Each round runs the same sans-I/O ``DeviceSession`` the
/// simulator and tests use; every frame from the aggregator is validated before use, and a
/// protocol violation by the aggregator makes the device abort without revealing anything more.
///
/// ```swift
/// let identity = try DeviceIdentity.loadOrCreate(at: "/var/lib/agent/veil-identity")
/// try await withAggregatorConnection(to: .init(host: "agg.example", port: 7443, security: .tls(caCertificatePath: "/etc/agent/veil-ca.pem"))) { connection in
///     let device = VeilDevice(identity: identity, connection: connection)
///     _ = try? await device.enrol(token: token)          // once
///     try await device.run { assignment in try readings(for: assignment) } onRound: { print($0.outcome) }
/// }
/// ```
public struct VeilDevice: Sendable {
    /// Produces the device's input for a round it was assigned to.
    public typealias InputProvider = @Sendable (RoundAssignmentContent) async throws -> ModularVector
    /// Records durably that a round's input is about to be sent masked (SPEC.md §12.1); throwing
    /// keeps it unsent.
    typealias SpendHook = @Sendable (RoundAssignmentContent) throws -> Void

    /// The device's long-term identity.
    public let identity: DeviceIdentity
    /// What the device accepts from the aggregator; every round is checked against it before the
    /// device sends anything (SPEC.md §13.1).
    public let policy: DevicePolicy
    /// The round ids the device took part in, so that it never signs in one twice (SPEC.md §13.2).
    public let signedRounds: SignedRoundLedger
    let connection: AggregatorConnection
    let logger: Logger
    /// The device's clock: which windows have closed (feature rounds).
    let clock: @Sendable () -> Date

    /// A device speaking through `connection`.
    ///
    /// - Parameters:
    ///   - policy: what the device accepts (``DevicePolicy`` documents the defaults: the active
    ///     threat model, cohorts of at least 10, a 2^-40 target at 5% dropout).
    ///   - signedRounds: the durable ledger of rounds taken part in, normally
    ///     `SignedRoundLedger(at:)` beside the identity file; `.inMemory()` only for devices that
    ///     do not outlive the process (simulations, tests).
    ///   - clock: the wall clock, which decides the windows a device offers; injected by
    ///     simulations and tests that run the aggregator on their own time.
    public init(
        identity: DeviceIdentity, policy: DevicePolicy = DevicePolicy(), signedRounds: SignedRoundLedger,
        connection: AggregatorConnection, logger: Logger = Logger(label: "veil.device"), clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.clock = clock
        self.identity = identity
        self.policy = policy
        self.signedRounds = signedRounds
        self.connection = connection
        self.logger = logger
    }

    /// Enrols the identity with a one-time token from the operator; returns the device id.
    public func enrol(token: String) async throws(DeviceError) -> String {
        let service = Veil_V1_Aggregator.Client(wrapping: connection.client)
        var request = Veil_V1_EnrolRequest()
        request.token = token
        request.identityKey = Data(identity.publicKey.rawRepresentation)
        request.signature = Data(identity.privateKey.signature(for: TransportStatement.enrolment(token: token)).rawRepresentation)
        do {
            return try await service.enrol(request).deviceID
        } catch {
            throw DeviceError.from(error)
        }
    }

    /// Checks in, waits to be placed in a round, and takes part in it to the end. Cancelling the
    /// calling task closes the stream, which the aggregator treats as a dropout.
    public func participate(options: ParticipationOptions = .init(), input: @escaping InputProvider) async throws(DeviceError) -> RoundParticipation {
        try await participate(options: options, offering: [], input: input)
    }

    /// ``participate(options:input:)``, offering `windows` at check-in (feature rounds, SPEC.md §12.1).
    func participate(
        options: ParticipationOptions, offering windows: [Int], beforeMaskedInput: SpendHook? = nil, minimumSurvivors: Int = 0,
        input: @escaping InputProvider
    ) async throws(DeviceError) -> RoundParticipation {
        let service = Veil_V1_Aggregator.Client(wrapping: connection.client)
        let (outgoing, sender) = AsyncStream.makeStream(of: Veil_V1_DeviceFrame.self)
        var roundPolicy = self.policy
        roundPolicy.minimumSurvivors = max(roundPolicy.minimumSurvivors, minimumSurvivors)
        let (identity, policy, signedRounds) = (self.identity, roundPolicy, self.signedRounds)
        var callOptions = CallOptions.defaults
        callOptions.timeout = options.deadline
        do {
            return try await service.participate(options: callOptions, requestProducer: { writer in
                for await frame in outgoing { try await writer.write(frame) }
            }, onResponse: { response in
                defer { sender.finish() }
                var round = ClientRound(
                    identity: identity, options: options, policy: policy, signedRounds: signedRounds, offeredWindows: windows,
                    beforeMaskedInput: beforeMaskedInput)
                var refusal: DeviceError?
                for try await frame in response.messages {
                    // After a refusal, wait for the aggregator to end the stream, so that the
                    // refusal is delivered rather than cut off by cancelling the call.
                    if let refusal { throw refusal }
                    let content: ServerFrameContent
                    do { content = try TransportCodec.content(of: frame) } catch let error as WireError { throw DeviceError.malformedServerFrame(error) }
                    let link = options.emulatedLink
                    let (computedBefore, sentBefore) = (round.computeSpent, round.bytesSent)
                    if let link {
                        switch content {
                        case let .protocolMessage(bytes): try await Self.wait(link.delayBefore(receiving: bytes.count))
                        case .assignment: try await Self.wait(link.delayBefore(receiving: 0))
                        case .challenge, .ended: break
                        }
                    }
                    switch try await round.handle(content, input: input) {
                    case let .send(frame):
                        if let link, case .protocolMessage? = frame.frame {
                            try await Self.wait(link.delayAfter(computeSeconds: round.computeSpent - computedBefore, sending: round.bytesSent - sentBefore))
                        }
                        sender.yield(frame)
                    case let .refuse(frame, error):
                        sender.yield(frame)
                        sender.finish()
                        refusal = error
                    case .wait: continue
                    case let .finished(result): return result
                    }
                }
                throw refusal ?? DeviceError.streamEnded
            })
        } catch {
            throw DeviceError.from(error)
        }
    }

    /// Sleeps `seconds` (an emulated link's delay), at most a day: a distribution's far tail must
    /// not overflow the conversion to nanoseconds.
    private static func wait(_ seconds: Double) async throws {
        guard seconds > 0 else { return }
        try await Task.sleep(for: .nanoseconds(Int64(min(seconds, 86_400) * 1e9)))
    }

    /// Takes part in rounds until the task is cancelled, calling `onRound` after each. Between
    /// rounds it waits `interval`; after a failure it backs off exponentially with jitter (up to
    /// five minutes), and it stops with the error when the aggregator refuses the identity.
    public func run(
        interval: Duration = .seconds(1), options: ParticipationOptions = .init(), input: @escaping InputProvider,
        onRound: @Sendable (RoundParticipation) async -> Void = { _ in }
    ) async throws {
        try await loop(interval: interval, onRound: onRound) { () async throws(DeviceError) -> RoundParticipation in
            try await participate(options: options, input: input)
        }
    }

    /// Runs `participation` until the task is cancelled, with the pacing of ``run(interval:options:input:onRound:)``.
    func loop(
        interval: Duration, onRound: @Sendable (RoundParticipation) async -> Void,
        participation: () async throws(DeviceError) -> RoundParticipation
    ) async throws {
        var backoff = Backoff()
        while !Task.isCancelled {
            let delay: Duration
            do {
                let result = try await participation()
                await onRound(result)
                backoff.reset()
                // Spread upwards by up to 25% (never earlier than the hint): devices told at
                // once, or whose windows close at once, do not all return at once.
                if case let .noRound(retryAfter) = result.outcome {
                    delay = Backoff.spread(max(interval, .milliseconds(Int64(retryAfter))))
                } else {
                    delay = Backoff.spread(interval)
                }
            } catch {
                guard error.isRetryable else { throw error }
                delay = backoff.next()
                logger.notice("round failed; retrying", metadata: ["error": "\(error)", "delay": "\(delay)"])
            }
            try await Task.sleep(for: delay)
        }
    }
}

/// Exponential backoff with full jitter: each delay is uniform in [base/2, base], base doubling
/// from 500 ms to 5 minutes.
struct Backoff {
    private var attempt = 0

    mutating func next() -> Duration {
        let base = min(0.5 * pow(2, Double(attempt)), 300)
        attempt += 1
        return .milliseconds(Int64(Double.random(in: base / 2...base) * 1000))
    }

    mutating func reset() { attempt = 0 }

    /// `delay` lengthened by a uniform 0...25%.
    static func spread(_ delay: Duration) -> Duration {
        delay * Double.random(in: 1...1.25)
    }
}
