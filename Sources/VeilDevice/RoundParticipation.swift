import GRPCCore
public import VeilProtocol
public import VeilWire

/// How one ``VeilDevice/participate(options:input:)`` call ended.
public struct RoundParticipation: Sendable, Equatable {
    /// The device's fate in the round.
    public enum Outcome: Sendable, Equatable {
        /// The round finished with this device's input in the sum.
        case counted
        /// The round finished or moved on without this device's input.
        case notCounted
        /// The round aborted; the aggregator released nothing.
        case aborted
        /// No round formed while the device waited; check in again after the given delay.
        case noRound(retryAfterMilliseconds: UInt32)
        /// The device disconnected on purpose before answering `phase` (fault injection).
        case disconnected(before: Phase)
        /// Feature rounds: the aggregator already counts this device in the window the round
        /// would aggregate (``RoundParticipation/task``), by round ``RoundParticipation/countedRoundID``;
        /// no round ran. This happens when the device missed the end of the round that counted it.
        case alreadyCounted
    }

    /// The outcome.
    public let outcome: Outcome
    /// The aggregator's explanation, or the device's.
    public let reason: String
    /// The round's configuration, when the device was assigned to one.
    public let configuration: RoundConfiguration?
    /// The device's index in the round, when assigned.
    public let deviceIndex: UInt32?
    /// What the round aggregated, as the aggregator named it, when assigned; with
    /// ``Outcome/alreadyCounted``, the window the device is already counted in.
    public let task: String?
    /// The round whose sum holds this device's input: this round when ``Outcome/counted``, the
    /// earlier round when ``Outcome/alreadyCounted``, otherwise nil.
    public let countedRoundID: RoundID?
    /// |U3| as the aggregator reported it, when the round finished.
    public let survivors: Int
    /// Protocol message bytes sent (the serialized `DeviceToServer` envelopes).
    public let bytesSent: Int
    /// Protocol message bytes received (the serialized `ServerToDevice` envelopes).
    public let bytesReceived: Int
    /// Seconds of protocol computation on the device (keys, shares, masking, unmasking).
    public let computeSeconds: Double
}

/// Options for one round.
public struct ParticipationOptions: Sendable {
    /// Fault injection for simulations and tests: close the stream instead of answering this
    /// phase, as a device that loses power or network would.
    public var disconnectBefore: Phase?
    /// Fault injection for simulations: from this phase on, answer nothing but keep the stream
    /// open until the aggregator ends it, as a device whose network went silent would. The
    /// aggregator can only drop such a device at the phase's deadline.
    public var silentFrom: Phase?
    /// Fault injection for simulations: emulate a slower network and device than this one.
    public var emulatedLink: EmulatedLink?
    /// The longest one participation may take, from check-in through waiting and the round to
    /// its end; after it the stream is abandoned (DEADLINE_EXCEEDED, retried with backoff), so a
    /// stalled aggregator or a half-open connection cannot hold the device. Default 20 minutes:
    /// the default waiting room (5 minutes) and five phases at their default deadline, twice.
    public var deadline: Duration

    /// Creates options.
    public init(disconnectBefore: Phase? = nil, silentFrom: Phase? = nil, emulatedLink: EmulatedLink? = nil, deadline: Duration = .seconds(1200)) {
        self.disconnectBefore = disconnectBefore
        self.silentFrom = silentFrom
        self.emulatedLink = emulatedLink
        self.deadline = deadline
    }
}

/// A network link and a device speed to emulate on a faster machine (fault injection for
/// simulations): for every round message, the device waits one latency plus the request's size
/// over the downlink before computing, then its compute time again times `computeFactor - 1`,
/// one latency and the answer's size over the uplink before sending.
public struct EmulatedLink: Sendable, Equatable {
    /// One-way latency, seconds.
    public var latencySeconds: Double
    /// Device to server, bytes per second.
    public var uplinkBytesPerSecond: Double
    /// Server to device, bytes per second.
    public var downlinkBytesPerSecond: Double
    /// How many times slower than this machine the device computes (at least 1).
    public var computeFactor: Double

    /// Creates a link.
    public init(latencySeconds: Double, uplinkBytesPerSecond: Double, downlinkBytesPerSecond: Double, computeFactor: Double) {
        self.latencySeconds = latencySeconds
        self.uplinkBytesPerSecond = uplinkBytesPerSecond
        self.downlinkBytesPerSecond = downlinkBytesPerSecond
        self.computeFactor = computeFactor
    }

    /// Seconds before the device starts on a request of `bytes` bytes.
    func delayBefore(receiving bytes: Int) -> Double { latencySeconds + Double(bytes) / downlinkBytesPerSecond }

    /// Seconds after `computeSeconds` of real work before an answer of `bytes` bytes arrives.
    func delayAfter(computeSeconds: Double, sending bytes: Int) -> Double {
        computeSeconds * max(0, computeFactor - 1) + latencySeconds + Double(bytes) / uplinkBytesPerSecond
    }
}

/// Why a device could not take part in a round.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    /// The aggregator ended the stream with an error status.
    case rejected(code: String, message: String)
    /// A frame from the aggregator failed validation; the device left the round.
    case malformedServerFrame(WireError)
    /// The device aborted the round and revealed nothing further: the aggregator broke the
    /// protocol (for example asked for both shares of a neighbour), the round broke the device's
    /// policy (kind ``ProtocolViolation/Kind/policy(_:)``), or a neighbour's key was unusable
    /// (``ProtocolViolation/isCausedByPeer``). The device told the aggregator why (`Refusal`).
    case protocolViolation(ProtocolViolation)
    /// A frame arrived out of order.
    case unexpectedFrame(String)
    /// The stream closed without the aggregator's final frame.
    case streamEnded
    /// The caller's input could not be used for the round.
    case input(String)
    /// The connection failed.
    case transport(String)
    /// The device's local observation store failed or refused.
    case localStore(String)

    /// Whether trying again later may succeed. Refusals of identity (unauthenticated, revoked),
    /// a protocol violation by the aggregator and a round that breaks the device's policy are not
    /// retried by ``VeilDevice/run(interval:options:input:onRound:)``: the device stops and reports
    /// them. A violation another device caused (``ProtocolViolation/isCausedByPeer``) is retried.
    public var isRetryable: Bool {
        switch self {
        case let .rejected(code, _): return !["unauthenticated", "permissionDenied"].contains(code)
        case let .protocolViolation(violation): return violation.isCausedByPeer
        default: return true
        }
    }

    /// The policy violation, when the device refused the round's parameters.
    public var policyViolation: PolicyViolation? {
        if case let .protocolViolation(violation) = self, case let .policy(p) = violation.kind { return p }
        return nil
    }

    /// A one-line explanation.
    public var description: String {
        switch self {
        case let .rejected(code, message): return "the aggregator refused (\(code)): \(message)"
        case let .malformedServerFrame(e): return "malformed frame from the aggregator: \(e)"
        case let .protocolViolation(v):
            if case .policy = v.kind { return "the device refused the round: \(v)" }
            return v.isCausedByPeer ? "a neighbour made the round unusable: \(v)" : "the aggregator broke the protocol: \(v)"
        case let .unexpectedFrame(why): return "unexpected frame: \(why)"
        case .streamEnded: return "the aggregator closed the stream without a final frame"
        case let .input(why): return "input not usable: \(why)"
        case let .transport(why): return "transport failure: \(why)"
        case let .localStore(why): return "local store: \(why)"
        }
    }

    static func from(_ error: any Error) -> DeviceError {
        if let e = error as? DeviceError { return e }
        if let e = error as? RPCError { return .rejected(code: "\(e.code)", message: e.message) }
        return .transport(String(describing: error))
    }
}
