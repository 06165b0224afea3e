import Foundation
import GRPCCore
import Logging
import SwiftProtobuf
import VeilCrypto
import VeilFeatures
import VeilStore
import VeilTransport
import VeilWire

extension AggregatorService {
    /// The largest clock difference a feature-sets request may show (SPEC.md §12.5).
    static let featureSetsClockSkewSeconds: Int64 = 300
    /// The most definitions one response carries.
    static let maximumServedFeatureSets = 64
    /// The largest definition served, as canonical JSON (a layout of 100,000 categorical slots
    /// takes about 1 MiB).
    static let maximumDefinitionBytes = 2 << 20
    /// The most definition bytes one response carries, below gRPC's default 4 MiB message limit.
    static let maximumResponseBytes = 3 << 20

    /// `FeatureSets`: every feature-set version not retired, for an enrolled device that signed a
    /// fresh timestamp (SPEC.md §12.5). Definitions are not secret, but only enrolled devices get
    /// them, and the signature keeps a replay useful for five minutes at most.
    func featureSets(request: Veil_V1_FeatureSetsRequest, context: ServerContext) async throws -> Veil_V1_FeatureSetsResponse {
        guard definitionRequests.admit() else {
            metrics.rejected(reason: "feature-sets-rate")
            throw RPCError(code: .resourceExhausted, message: "too many feature-set requests; retry later")
        }
        guard request.unknownFields.data.isEmpty else { throw RPCError(code: .invalidArgument, message: "feature-sets request carries fields unknown to veil.v1") }
        let (key, signature) = try Self.signedIdentity(key: request.identityKey, signature: request.signature)
        let now = Int64(clock().timeIntervalSince1970.rounded(.down))
        // Any int64 may arrive: compare without overflowing (Int64.min would trap in abs or -).
        let (skew, overflow) = now.subtractingReportingOverflow(request.timestamp)
        guard !overflow, skew.magnitude <= UInt64(Self.featureSetsClockSkewSeconds) else {
            metrics.rejected(reason: "feature-sets-clock")
            throw RPCError(code: .unauthenticated, message: "timestamp \(request.timestamp) is more than \(Self.featureSetsClockSkewSeconds) s from the aggregator's clock (\(now)); check the device's clock")
        }
        guard key.isValidSignature(signature, for: TransportStatement.featureSets(timestamp: request.timestamp)) else {
            metrics.rejected(reason: "feature-sets-signature")
            throw RPCError(code: .unauthenticated, message: "the feature-sets signature does not verify under the identity key")
        }
        let status: DeviceStatus
        let registered: [RegisteredFeatureSet]
        do {
            status = try await store.status(of: key)
            registered = try await store.featureSets(includingRetired: false)
        } catch {
            throw RPCError(code: .unavailable, message: "the store cannot be read; retry later")
        }
        switch status {
        case .unknown: throw RPCError(code: .unauthenticated, message: "device is not enrolled")
        case let .revoked(id): throw RPCError(code: .permissionDenied, message: "device \(id) is revoked")
        case .active: break
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var response = Veil_V1_FeatureSetsResponse()
        var total = 0
        // Newest first, so that a full response drops the oldest definitions.
        for entry in registered.suffix(Self.maximumServedFeatureSets).reversed() {
            let set = entry.featureSet
            let json = String(decoding: try encoder.encode(set), as: UTF8.self)
            guard json.utf8.count <= Self.maximumDefinitionBytes else {
                logger.warning("a feature-set definition is too large to serve to devices", metadata: ["featureSet": "\(set.name) v\(set.version)"])
                continue
            }
            guard total + json.utf8.count <= Self.maximumResponseBytes else {
                logger.warning("feature-set definitions exceed one response; the oldest are not served", metadata: ["featureSet": "\(set.name) v\(set.version)"])
                break
            }
            total += json.utf8.count
            response.featureSets.append(.with {
                $0.name = set.name
                $0.version = Int64(set.version)
                $0.definition = json
                $0.windowSeconds = Int64(windowSeconds)
                $0.rounds = set == roundsFeatureSet
            })
        }
        response.featureSets.reverse()
        return response
    }
}
