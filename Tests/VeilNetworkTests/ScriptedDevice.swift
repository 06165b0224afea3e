import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import SwiftProtobuf
import VeilCrypto
import VeilDevice
import VeilTransport
import VeilWire

/// A misbehaving client for bad-input tests: it speaks raw frames on the `Participate` stream,
/// choosing what to send after each server frame, and records everything the server sent and the
/// status the stream ended with.
struct ScriptedDevice {
    /// What to send after receiving a frame (empty: send nothing and keep reading).
    typealias Script = @Sendable (_ received: Veil_V1_ServerFrame, _ identity: DeviceIdentity) -> [Veil_V1_DeviceFrame]

    /// How the stream ended.
    struct Result: Sendable {
        var received: [Veil_V1_ServerFrame]
        var error: RPCError?
        var code: RPCError.Code? { error?.code }
    }

    let endpoint: AggregatorEndpoint
    let caPath: String

    init(_ harness: NetworkHarness) {
        endpoint = harness.endpoint
        if case let .tls(path) = harness.endpoint.security { caPath = path } else { caPath = "" }
    }

    /// A well-formed check-in answering `frame`'s challenge.
    static func checkIn(_ frame: Veil_V1_ServerFrame, _ identity: DeviceIdentity) -> [Veil_V1_DeviceFrame] {
        guard case let .challenge(c)? = frame.frame else { return [] }
        let signature = identity.privateKey.signature(for: TransportStatement.checkIn(nonce: Array(c.nonce)))
        return [try! Veil_V1_DeviceFrame(serializedBytes: TransportCodec.checkIn(identityKey: identity.publicKey, signature: signature))]
    }

    /// Opens one stream as `identity` and follows `script` until the server ends it.
    func run(as identity: DeviceIdentity, script: @escaping Script) async throws -> Result {
        try await withGRPCClient(transport: .http2NIOPosix(
            target: .dns(host: endpoint.host, port: endpoint.port),
            transportSecurity: .tls(.defaults { $0.trustRoots = .certificates([.file(path: caPath, format: .pem)]) }))
        ) { client in
            let service = Veil_V1_Aggregator.Client(wrapping: client)
            let (outgoing, sender) = AsyncStream.makeStream(of: Veil_V1_DeviceFrame.self)
            do {
                return try await service.participate(requestProducer: { writer in
                    for await frame in outgoing { try await writer.write(frame) }
                }, onResponse: { response in
                    defer { sender.finish() }
                    var received: [Veil_V1_ServerFrame] = []
                    do {
                        for try await frame in response.messages {
                            received.append(frame)
                            for reply in script(frame, identity) { sender.yield(reply) }
                        }
                        return Result(received: received, error: nil)
                    } catch let error as RPCError {
                        return Result(received: received, error: error)
                    }
                })
            } catch let error as RPCError {
                return Result(received: [], error: error)
            }
        }
    }
}
