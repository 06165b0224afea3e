import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server for the operational endpoints: `GET /metrics` (Prometheus text) and
/// `GET /healthz`. Anything else is 404 (or 405 for another method). It serves plain HTTP and
/// belongs on a private interface.
final class MetricsHTTPServer: Sendable {
    private let channel: any Channel

    /// Binds and starts serving; `render` produces the `/metrics` body on each scrape, `healthy`
    /// decides `/healthz`.
    init(host: String, port: Int, render: @escaping @Sendable () -> String, healthy: @escaping @Sendable () -> Bool) async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(render: render, healthy: healthy))
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    /// The bound port.
    var port: Int { channel.localAddress?.port ?? 0 }

    /// Stops accepting connections.
    func close() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let render: @Sendable () -> String
        let healthy: @Sendable () -> Bool

        init(render: @escaping @Sendable () -> String, healthy: @escaping @Sendable () -> Bool) {
            self.render = render
            self.healthy = healthy
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case let .head(head) = unwrapInboundIn(data) else { return }
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let status: HTTPResponseStatus
            let body: String
            var contentType = "text/plain; charset=utf-8"
            switch (head.method, path) {
            case (.GET, "/metrics"):
                status = .ok
                body = render()
                contentType = "text/plain; version=0.0.4; charset=utf-8"
            case (.GET, "/healthz"):
                let ok = healthy()
                status = ok ? .ok : .serviceUnavailable
                body = ok ? "ok\n" : "shutting down\n"
            case (_, "/metrics"), (_, "/healthz"):
                status = .methodNotAllowed
                body = "method not allowed\n"
            default:
                status = .notFound
                body = "not found\n"
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}
