import SwiftProtobuf
import VeilCrypto
import VeilProtocol
import VeilWire

/// Well-formed inputs that start the fuzzer inside every decoder: a check-in frame, and each
/// device message of both test rounds, bare and wrapped in a stream frame.
enum SeedCorpus {
    static func inputs() -> [(name: String, bytes: [UInt8])] {
        var random = SeededRandomSource(seed: 2, label: "fuzz-seeds")
        var seeds: [(String, [UInt8])] = []
        let identity = Ed25519.PrivateKey(using: &random)
        let nonce = random.bytes(count: 32)
        seeds.append(("check-in", TransportCodec.checkIn(identityKey: identity.publicKey, signature: identity.signature(for: nonce))))
        for (c, configuration) in DecoderHarness.configurations.enumerated() {
            let share = SecretBytes(copying: random.bytes(count: ShamirSecretSharing.shareValueByteCount))
            let commitment = try! ShamirCommitment(bytes: random.bytes(count: 32))
            let messages: [(String, DeviceMessage)] = [
                ("advertise-keys", .advertiseKeys(
                    encryptionKey: X25519.PrivateKey(using: &random).publicKey, maskingKey: X25519.PrivateKey(using: &random).publicKey,
                    signature: configuration.threatModel == .active ? identity.signature(for: [1]) : nil,
                    placementContribution: configuration.usesCommittedPlacement ? random.bytes(count: 32) : nil)),
                ("share-keys", .shareKeys(
                    maskingKeyCommitment: commitment, selfMaskCommitment: commitment,
                    shares: [0, 1, 2].map { SealedShares(
                        sender: 3, recipient: $0, ciphertext: SealedShares.Ciphertext(random.bytes(count: SealedShares.ciphertextByteCount))!,
                        maskingKeyShareDigest: ShareDigest(random.bytes(count: SealedShares.digestByteCount))!,
                        selfMaskShareDigest: ShareDigest(random.bytes(count: SealedShares.digestByteCount))!) })),
                ("masked-input", .maskedInput(ModularVector(reducing: (0..<configuration.dimension).map { Int64($0) }, bitWidth: configuration.bitWidth))),
                ("consistency-signature", .consistencySignature(identity.signature(for: [2]))),
                ("unmasking-shares", .unmaskingShares(
                    selfMaskShares: [RevealedShare(owner: 0, values: share)], maskingKeyShares: [RevealedShare(owner: 1, values: share)])),
            ]
            for (name, message) in messages {
                let envelope = WireCodec.encode(message, round: configuration.roundID)
                seeds.append(("round\(c)-\(name)", envelope))
                let frame: Veil_V1_DeviceFrame = TransportCodec.protocolFrame(envelope)
                seeds.append(("round\(c)-\(name)-frame", try! frame.serializedBytes()))
            }
        }
        return seeds
    }
}
