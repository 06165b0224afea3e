import Foundation
import Testing
import VeilCrypto
import VeilProtocol
@testable import VeilWire

/// The aggregator's byte-level routing codec against swift-protobuf: the requests it writes must be
/// the same bytes, and whatever it reads must be what swift-protobuf reads, for valid messages and
/// for thousands of damaged ones (where it may only give up, never disagree).
@Suite struct RoutingCodecTests {
    static func keys(_ device: UInt32, active: Bool, placed: Bool, random: inout SeededRandomSource) -> AdvertisedKeys {
        let identity = Ed25519.PrivateKey(using: &random)
        return AdvertisedKeys(
            device: device, encryptionKey: X25519.PrivateKey(using: &random).publicKey, maskingKey: X25519.PrivateKey(using: &random).publicKey,
            signature: active ? identity.signature(for: [1, 2, 3]) : nil, identityKey: active ? identity.publicKey : nil,
            placementContribution: placed ? random.bytes(count: Placement.byteCount) : nil)
    }

    static func sealed(sender: UInt32, recipient: UInt32, random: inout SeededRandomSource) -> SealedShares {
        SealedShares(
            sender: sender, recipient: recipient, ciphertext: SealedShares.Ciphertext(random.bytes(count: SealedShares.ciphertextByteCount))!,
            maskingKeyShareDigest: ShareDigest(random.bytes(count: 16))!, selfMaskShareDigest: ShareDigest(random.bytes(count: 16))!)
    }

    @Test func requestsAreTheBytesSwiftProtobufWrites() throws {
        var random = SeededRandomSource(seed: 3, label: "routing")
        let configuration = try makeConfiguration(n: 300)
        let round = configuration.roundID
        for count in [0, 1, 2, 17, 299] {
            for (active, placed) in [(false, false), (true, false), (true, true)] {
                // Device 0 is in every list: proto3 leaves a zero index out.
                let entries = (0..<UInt32(count)).map { Self.keys($0, active: active, placed: placed, random: &random) }
                let placement = placed ? PlacementReveal(secret: random.bytes(count: 32), root: random.bytes(count: 32), path: (0..<9).map { _ in random.bytes(count: 32) }) : nil
                let message = ServerMessage.neighbourKeys(entries, placement: placement)
                #expect(WireCodec.encode(message, round: round, cohortSize: 300) == WireCodec.encodeThroughProtobuf(message, round: round, cohortSize: 300))
            }
            let shares = ServerMessage.sealedShares((0..<UInt32(count)).map { Self.sealed(sender: $0 * 7, recipient: 5, random: &random) })
            #expect(WireCodec.encode(shares, round: round, cohortSize: 300) == WireCodec.encodeThroughProtobuf(shares, round: round, cohortSize: 300))
        }
    }

    /// Valid ShareKeys, MaskedInput and UnmaskingShares messages, then each damaged many ways: truncated, a byte
    /// changed, a field appended or repeated. The byte-level reader either gives up or reads
    /// exactly what swift-protobuf reads; the public decoder always agrees with swift-protobuf.
    @Test func whatTheReaderAcceptsIsWhatSwiftProtobufReads() throws {
        var random = SeededRandomSource(seed: 4, label: "routing-read")
        let configuration = try makeConfiguration(n: 40, m: 64, b: 24)
        let round = configuration.roundID
        let shareKeys = DeviceMessage.shareKeys(
            maskingKeyCommitment: try ShamirCommitment(bytes: random.bytes(count: 32)), selfMaskCommitment: try ShamirCommitment(bytes: random.bytes(count: 32)),
            shares: (0..<UInt32(39)).map { Self.sealed(sender: 3, recipient: $0 == 3 ? 39 : $0, random: &random) })
        let masked = DeviceMessage.maskedInput(try ModularVector(values: (0..<64).map { _ in random.nextUInt64() & 0xFF_FFFF }, bitWidth: 24))
        func revealed(_ owners: Range<UInt32>) -> [RevealedShare] {
            owners.map { RevealedShare(owner: $0, values: SecretBytes(copying: random.bytes(count: ShamirSecretSharing.shareValueByteCount))) }
        }
        let unmasking = DeviceMessage.unmaskingShares(selfMaskShares: revealed(0..<30), maskingKeyShares: revealed(30..<39))
        var accepted = 0
        var givenUp = 0
        for message in [shareKeys, masked, unmasking] {
            let valid = WireCodec.encode(message, round: round)
            #expect(WireCodec.decodeRoutedDeviceMessage(valid, from: 3, configuration: configuration) == message)
            for trial in 0..<3_000 {
                var bytes = valid
                switch trial % 4 {
                case 0: bytes.removeLast(Int(random.nextUInt64() % UInt64(bytes.count)) + 1)
                case 1: bytes[Int(random.nextUInt64() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.nextUInt64() | 1)
                case 2: bytes += random.bytes(count: Int(random.nextUInt64() % 8) + 1)
                default:
                    // A field of the envelope repeated, or the body's first field repeated at its end.
                    bytes += Array(valid.prefix(Int(random.nextUInt64() % 40) + 2))
                }
                let reference = Result { () throws(WireError) in try WireCodec.decodeThroughProtobuf(bytes, from: 3, configuration: configuration) }
                if let routed = WireCodec.decodeRoutedDeviceMessage(bytes, from: 3, configuration: configuration) {
                    accepted += 1
                    #expect(try reference.get() == routed, "trial \(trial)")
                } else {
                    givenUp += 1
                }
                let decoded = Result { () throws(WireError) in try WireCodec.decodeDeviceMessage(bytes, from: 3, configuration: configuration) }
                switch (decoded, reference) {
                case let (.success(a), .success(b)): #expect(a == b)
                case let (.failure(a), .failure(b)): #expect(a == b)
                default: Issue.record("trial \(trial): the decoder and swift-protobuf disagree: \(decoded) against \(reference)")
                }
            }
        }
        // Both branches were exercised.
        #expect(accepted > 100 && givenUp > 100, "accepted \(accepted), gave up \(givenUp)")
    }
}
