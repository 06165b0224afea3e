import GRPCCore
import Synchronization
import VeilCrypto
import VeilWire

/// One device's `Participate` stream as the coordinator and its round see it: the frames to write
/// to the device, and which round and index the device holds.
///
/// The stream handler writes whatever ``outbound`` yields; anything (the coordinator, a round, a
/// deadline) may ``send(_:)``, ``end(_:)`` or ``fail(_:)``. After ``end(_:)`` or ``fail(_:)`` the
/// link is closed and later calls do nothing, so a round never writes to a device that left.
final class DeviceLink: Sendable {
    /// What the handler does next.
    enum Outbound: Sendable {
        /// Write a frame and continue.
        case frame(Veil_V1_ServerFrame)
        /// Write this last frame and finish the RPC with OK.
        case end(Veil_V1_ServerFrame)
        /// Finish the RPC with this status.
        case fail(RPCError)
    }

    /// The check-in nonce this stream was challenged with.
    let nonce: [UInt8]
    /// The frames to write, in order.
    let outbound: AsyncStream<Outbound>
    private let continuation: AsyncStream<Outbound>.Continuation
    private let state = Mutex(State())

    struct State {
        var closed = false
        var identity: (deviceID: String, key: Ed25519.PublicKey)?
        var round: (driver: RoundDriver, index: UInt32)?
        var waitingSince: ContinuousClock.Instant?
        var windows: [Int] = []
    }

    init(nonce: [UInt8]) {
        self.nonce = nonce
        (outbound, continuation) = AsyncStream.makeStream(of: Outbound.self)
    }

    /// Queues a frame, unless the link is closed.
    func send(_ frame: Veil_V1_ServerFrame) {
        let open = state.withLock { !$0.closed }
        if open { continuation.yield(.frame(frame)) }
    }

    /// Queues the last frame and closes the link.
    func end(_ frame: Veil_V1_ServerFrame) {
        closing(with: .end(frame))
    }

    /// Ends the RPC with an error status and closes the link.
    func fail(_ error: RPCError) {
        closing(with: .fail(error))
    }

    /// Closes the link without a last frame (the device went away): the handler's writer stops.
    @discardableResult
    func close() -> Bool {
        closing(with: nil)
    }

    /// Marks the link closed, queues `last` if given, and finishes the outbound stream so that
    /// the handler stops writing. True if the link was open.
    @discardableResult
    private func closing(with last: Outbound?) -> Bool {
        let wasOpen = state.withLock { s in
            if s.closed { return false }
            s.closed = true
            return true
        }
        guard wasOpen else { return false }
        if let last { continuation.yield(last) }
        continuation.finish()
        return true
    }

    /// Whether the link was closed.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// The authenticated identity, once checked in.
    var identity: (deviceID: String, key: Ed25519.PublicKey)? {
        get { state.withLock { $0.identity } }
        set { state.withLock { $0.identity = newValue } }
    }

    /// The round and index, once assigned.
    var round: (driver: RoundDriver, index: UInt32)? {
        get { state.withLock { $0.round } }
        set { state.withLock { $0.round = newValue } }
    }

    /// When the device started waiting for a round.
    var waitingSince: ContinuousClock.Instant? {
        get { state.withLock { $0.waitingSince } }
        set { state.withLock { $0.waitingSince = newValue } }
    }

    /// The windows a round may aggregate for this device, oldest first: the open windows it
    /// offered at check-in, less those found full since (for plain rounds, one pseudo-window).
    var windows: [Int] {
        get { state.withLock { $0.windows } }
        set { state.withLock { $0.windows = newValue } }
    }
}
