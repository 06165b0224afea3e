import Foundation
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilStore
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import SwiftProtobuf
import VeilCrypto
import VeilTransport
import VeilWire

/// Issue 15, item 2: devices learn the feature sets they may follow over the device protocol
/// (SPEC.md §12.5), decide on each with their own policy, and report what they refuse.
@Suite(.serialized) struct FeatureSetDistributionTests {
    static let window = 1_800_000_000

    @Test func enrolledDevicesFetchDefinitionsAndRefuseWhatTheirPolicyDoesNot() async throws {
        let fleet = FeatureSet(name: "fleet", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        var wide = FeatureSet(name: "wide", version: 2, bitWidth: 64, maximumCohort: 1000, features: [
            Feature(name: "apps", kind: .categorical(vocabulary: (0..<500).map { "app\($0)" }), maximumValuesPerDevice: 10),
        ])
        let harness = try await NetworkHarness.featureRounds(of: fleet, window: Self.window)
        defer { Task { await harness.stop() } }
        _ = try await harness.aggregator.store.define(wide)
        wide.privacy = nil
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(2, connection: connection)
            let device = harness.device(identity: identities[0], connection: connection)
            let served = try await device.featureSets(policy: FeatureSetPolicy(maximumDimension: 100))
            #expect(served.map(\.name) == ["fleet", "wide"] && served.map(\.version) == [1, 2])
            #expect(served[0].decision == .accepted(try FeatureLayout(fleet)) && served[0].rounds && served[0].windowSeconds == 3600)
            #expect(served[1].definition == wide && !served[1].rounds)
            guard case let .refused(reason) = served[1].decision else { Issue.record("the wide set must be refused"); return }
            #expect(reason.contains("502 elements, above this device's maximum of 100"))
            // Kinds and privacy requirements are the device's to set.
            let strict = try await device.featureSets(policy: FeatureSetPolicy(allowedKinds: ["numeric"], requirePrivacy: true))
            #expect(strict.allSatisfy { if case .refused = $0.decision { true } else { false } })

            // Revoked, unknown, or with a clock five minutes off: refused with a clear status.
            let stranger = VeilDevice(
                identity: DeviceIdentity.generate(), policy: harness.devicePolicy, signedRounds: .inMemory(), connection: connection,
                clock: { Date(timeIntervalSince1970: Double(Self.window + 5400)) })
            await #expect(throws: DeviceError.rejected(code: "unauthenticated", message: "device is not enrolled")) { _ = try await stranger.featureSets() }
            let skewed = VeilDevice(
                identity: identities[1], policy: harness.devicePolicy, signedRounds: .inMemory(), connection: connection,
                clock: { Date(timeIntervalSince1970: Double(Self.window + 5400 - 301)) })
            do { _ = try await skewed.featureSets(); Issue.record("a skewed clock was accepted") } catch let DeviceError.rejected(code, message) {
                #expect(code == "unauthenticated" && message.contains("more than 300 s from the aggregator's clock"))
            }
            guard case let .active(id) = try await harness.aggregator.store.status(of: identities[1].publicKey) else { Issue.record("not enrolled"); return }
            try await harness.aggregator.store.revoke(deviceID: id)
            do { _ = try await harness.device(identity: identities[1], connection: connection).featureSets(); Issue.record("a revoked device was served") } catch let DeviceError.rejected(code, message) {
                #expect(code == "permissionDenied" && message.contains("revoked"))
            }
        }
    }

    /// Hostile requests get a status, never a crash: any int64 timestamp (signed), a short key,
    /// a request with unknown fields.
    @Test func malformedFeatureSetRequestsAreRefusedAndTheServerStaysUp() async throws {
        let fleet = FeatureSet(name: "fleet", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
        ])
        let harness = try await NetworkHarness.featureRounds(of: fleet, window: Self.window)
        defer { Task { await harness.stop() } }
        guard case let .tls(caCertificatePath: caPath) = harness.endpoint.security else { Issue.record("TLS"); return }
        let identity = DeviceIdentity.generate()
        func request(_ timestamp: Int64, key: Data? = nil, extra: Bool = false) -> Veil_V1_FeatureSetsRequest {
            var r = Veil_V1_FeatureSetsRequest()
            r.identityKey = key ?? Data(identity.publicKey.rawRepresentation)
            r.timestamp = timestamp
            r.signature = Data(identity.privateKey.signature(for: TransportStatement.featureSets(timestamp: timestamp)).rawRepresentation)
            if extra { r.unknownFields = try! Veil_V1_FeatureSetsRequest(serializedBytes: [0xF8, 0x01, 0x01]).unknownFields }
            return r
        }
        try await withGRPCClient(transport: .http2NIOPosix(
            target: .dns(host: "localhost", port: harness.aggregator.grpcPort!),
            transportSecurity: .tls(.defaults { $0.trustRoots = .certificates([.file(path: caPath, format: .pem)]) }))
        ) { client in
            let service = Veil_V1_Aggregator.Client(wrapping: client)
            for (hostile, expected) in [
                (request(Int64.min), RPCError.Code.unauthenticated), (request(Int64.max), .unauthenticated),
                (request(0, key: Data([1, 2, 3])), .invalidArgument), (request(Int64(Self.window + 5400), extra: true), .invalidArgument),
            ] {
                do { _ = try await service.featureSets(hostile); Issue.record("accepted") } catch let error as RPCError {
                    #expect(error.code == expected, "\(error)")
                }
            }
        }
        // Still serving.
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(1, connection: connection)
            #expect(try await harness.device(identity: identities[0], connection: connection).featureSets().count == 1)
        }
    }
}
