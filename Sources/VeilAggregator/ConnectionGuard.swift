import NIOCore
import NIOHTTP2
import Synchronization

/// Bounds what an unauthenticated client can hold on the device-facing listener (SPEC.md §11.5,
/// issue 13 H3): connections per client address, a deadline for a connection to open its first
/// stream (TLS handshake included), and, on every stream, the size of the first gRPC message
/// (a check-in or an enrolment) and nothing more until the server has answered it.
///
/// It works on the NIO channels under gRPC (the transport's accept callbacks), so an oversized
/// or early message is refused before gRPC buffers or decodes it.
final class ConnectionGuard: Sendable {
    /// Why a connection or a stream was closed.
    enum Refusal: String, Sendable {
        /// The client address already holds its maximum of connections.
        case connectionsPerAddress = "connections-per-address"
        /// The connection opened no stream within the pre-authentication deadline.
        case preAuthenticationDeadline = "pre-authentication-deadline"
        /// A stream's first message was larger than a check-in may be.
        case firstMessageTooLarge = "first-message-too-large"
        /// A stream sent a second message before the server answered the first.
        case messageBeforeAnswer = "message-before-answer"
        /// The connection went silent: nothing arrived, not even a keepalive answer.
        case silentConnection = "silent-connection"
    }

    /// The error that fails an accepted connection over its address's limit.
    struct TooManyConnections: Error {}

    let maximumConnectionsPerAddress: Int
    let preAuthenticationDeadline: TimeAmount
    let firstMessageLimit: Int
    /// A connection from which nothing arrives for this long is closed: the server pings every
    /// keepalive interval after the last read, and a live peer answers within the timeout.
    let silenceLimit: TimeAmount
    private let onRefusal: @Sendable (Refusal) -> Void
    /// Open connections per client address.
    private let open = Mutex<[String: Int]>([:])
    /// Connections that have opened a stream.
    private let streaming = Mutex<Set<ObjectIdentifier>>([])

    init(maximumConnectionsPerAddress: Int, preAuthenticationDeadline: TimeAmount, firstMessageLimit: Int, silenceLimit: TimeAmount,
         onRefusal: @escaping @Sendable (Refusal) -> Void) {
        self.silenceLimit = silenceLimit
        self.maximumConnectionsPerAddress = maximumConnectionsPerAddress
        self.preAuthenticationDeadline = preAuthenticationDeadline
        self.firstMessageLimit = firstMessageLimit
        self.onRefusal = onRefusal
    }

    /// Admits an accepted TCP connection, or closes it when its address holds the maximum
    /// already. An admitted connection that opens no stream within the deadline is closed, and
    /// so is one that goes silent for ``silenceLimit``.
    func acceptConnection(_ channel: any Channel) -> EventLoopFuture<Void> {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let admitted = open.withLock { counts in
            guard counts[address, default: 0] < maximumConnectionsPerAddress else { return false }
            counts[address, default: 0] += 1
            return true
        }
        guard admitted else {
            onRefusal(.connectionsPerAddress)
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(TooManyConnections())
        }
        let id = ObjectIdentifier(channel)
        let deadline = channel.eventLoop.scheduleTask(in: preAuthenticationDeadline) { [weak self, weak channel] in
            guard let self, let channel, !self.streaming.withLock({ $0.contains(id) }) else { return }
            self.onRefusal(.preAuthenticationDeadline)
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            deadline.cancel()
            guard let self else { return }
            self.streaming.withLock { _ = $0.remove(id) }
            self.open.withLock { counts in
                let left = counts[address, default: 1] - 1
                counts[address] = left > 0 ? left : nil
            }
        }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(SilenceWatchdog(limit: silenceLimit, onRefusal: onRefusal), position: .first)
        }
    }

    /// Guards a new HTTP/2 stream: marks its connection as having opened one and puts a
    /// ``FirstMessageLimitHandler`` in front of gRPC.
    func acceptStream(_ stream: any Channel) -> EventLoopFuture<Void> {
        if let connection = stream.parent {
            let id = ObjectIdentifier(connection)
            streaming.withLock { _ = $0.insert(id) }
        }
        return stream.eventLoop.makeCompletedFuture {
            try stream.pipeline.syncOperations.addHandler(
                FirstMessageLimitHandler(limit: firstMessageLimit, onRefusal: onRefusal), position: .first)
        }
    }
}

/// Counts whole gRPC messages (a flag byte, a 4-byte big-endian length, the payload) in a byte
/// stream split arbitrarily into DATA frames.
struct GRPCMessageFraming {
    private var header: [UInt8] = []
    private var remaining = 0
    /// Messages seen in full.
    private(set) var completed = 0

    /// Reads `buffer`; `onHeader` sees, as each message's header completes, how many messages
    /// came before it and its length, and stops the reading by returning false. False when stopped.
    mutating func feed(_ buffer: ByteBuffer, onHeader: (_ index: Int, _ length: Int) -> Bool) -> Bool {
        var view = buffer.readableBytesView[...]
        while !view.isEmpty {
            if remaining > 0 {
                let taken = min(remaining, view.count)
                view = view.dropFirst(taken)
                remaining -= taken
                if remaining == 0 { completed += 1 }
                continue
            }
            header.append(view.first!)
            view = view.dropFirst()
            guard header.count == 5 else { continue }
            let length = header[1...4].reduce(0) { $0 << 8 | Int($1) }
            header.removeAll(keepingCapacity: true)
            guard onHeader(completed, length) else { return false }
            if length == 0 { completed += 1 } else { remaining = length }
        }
        return true
    }
}

/// On one HTTP/2 stream, in front of gRPC: the client's first message must fit `limit` bytes,
/// and the client may send nothing more until the server has sent two messages (the challenge,
/// then the answer to the check-in; a unary call has one request). After that the handler only
/// passes frames through. A violation resets the stream.
final class FirstMessageLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let limit: Int
    private let onRefusal: @Sendable (ConnectionGuard.Refusal) -> Void
    private var inbound = GRPCMessageFraming()
    private var outbound = GRPCMessageFraming()
    private var answered = false
    private var refused = false

    init(limit: Int, onRefusal: @escaping @Sendable (ConnectionGuard.Refusal) -> Void) {
        self.limit = limit
        self.onRefusal = onRefusal
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        if !answered, case let .data(frame) = unwrapInboundIn(data), case let .byteBuffer(buffer) = frame.data {
            var refusal: ConnectionGuard.Refusal?
            let limit = limit
            _ = inbound.feed(buffer) { index, length in
                if index > 0 {
                    refusal = .messageBeforeAnswer
                } else if length > limit {
                    refusal = .firstMessageTooLarge
                }
                return refusal == nil
            }
            if let refusal {
                refused = true
                onRefusal(refusal)
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !answered, case let .data(frame) = unwrapOutboundIn(data), case let .byteBuffer(buffer) = frame.data {
            _ = outbound.feed(buffer) { _, _ in true }
            answered = outbound.completed >= 2
        }
        context.write(data, promise: promise)
    }
}

/// Closes a connection from which no byte has arrived for `limit`. gRPC's own keepalive sends a
/// ping after a quiet interval, but on a missing answer it only starts a graceful close that waits
/// for the peer's acknowledgement and for the open streams: a peer that is gone (power lost, a
/// NAT mapping dropped) would hold its streams, and so its place in the waiting room or a round,
/// until TCP gives up many minutes later. A live peer answers every ping, so it is never silent
/// for long.
final class SilenceWatchdog: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let limit: TimeAmount
    private let onRefusal: @Sendable (ConnectionGuard.Refusal) -> Void
    private var lastRead = NIODeadline.now()
    private var check: RepeatedTask?

    init(limit: TimeAmount, onRefusal: @escaping @Sendable (ConnectionGuard.Refusal) -> Void) {
        self.limit = limit
        self.onRefusal = onRefusal
    }

    func handlerAdded(context: ChannelHandlerContext) {
        lastRead = .now()
        let interval = max(TimeAmount.milliseconds(100), TimeAmount.nanoseconds(limit.nanoseconds / 4))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            let (watchdog, context) = loopBound.value
            guard NIODeadline.now() - watchdog.lastRead > watchdog.limit else { return }
            task.cancel()
            watchdog.onRefusal(.silentConnection)
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        context.fireChannelRead(data)
    }
}
