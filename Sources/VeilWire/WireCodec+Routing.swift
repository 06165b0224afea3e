import VeilCrypto
import VeilProtocol

/// The aggregator's per-pair routing, written and read at the byte level (``ProtobufBytes``):
/// every device's NeighbourKeyList and IncomingShareList, and every ShareKeys and MaskedInput it
/// receives. Byte for byte and value for value the same as through swift-protobuf; only faster.
extension WireCodec {
    // MARK: Writing

    /// `ServerToDevice { round_id, neighbour_keys }`.
    static func encodeNeighbourKeys(_ entries: [AdvertisedKeys], placement: PlacementReveal?, round: RoundID) -> [UInt8] {
        func entrySize(_ e: AdvertisedKeys) -> Int {
            ProtobufBytes.varintFieldSize(UInt64(e.device))
                + 2 * ProtobufBytes.bytesFieldSize(X25519.keyByteCount)
                + ProtobufBytes.bytesFieldSize(e.signature?.rawRepresentation.count ?? 0)
                + ProtobufBytes.bytesFieldSize(e.identityKey?.rawRepresentation.count ?? 0)
                + ProtobufBytes.bytesFieldSize(e.placementContribution?.count ?? 0)
        }
        var listSize = 0
        for e in entries { listSize += ProtobufBytes.lengthFieldSize(entrySize(e)) }
        if let placement {
            listSize += ProtobufBytes.bytesFieldSize(placement.secret.count) + ProtobufBytes.bytesFieldSize(placement.root.count)
            for node in placement.path { listSize += ProtobufBytes.lengthFieldSize(node.count) }
        }
        return ProtobufWriter.write(size: ProtobufBytes.bytesFieldSize(round.bytes.count) + ProtobufBytes.lengthFieldSize(listSize)) { writer in
            writer.bytesField(1, round.bytes)
            writer.messageHeader(2, length: listSize)
            for e in entries {
                writer.messageHeader(1, length: entrySize(e))
                writer.varintField(1, UInt64(e.device))
                e.encryptionKey.withUnsafeBytes { writer.bytesField(2, $0) }
                e.maskingKey.withUnsafeBytes { writer.bytesField(3, $0) }
                writer.bytesField(4, e.signature?.rawRepresentation ?? [])
                writer.bytesField(5, e.identityKey?.rawRepresentation ?? [])
                writer.bytesField(6, e.placementContribution ?? [])
            }
            if let placement {
                writer.bytesField(2, placement.secret)
                writer.bytesField(3, placement.root)
                for node in placement.path { writer.bytesField(4, node, always: true) }
            }
        }
    }

    /// `ServerToDevice { round_id, incoming_shares }`.
    static func encodeIncomingShares(_ shares: [SealedShares], round: RoundID) -> [UInt8] {
        func entrySize(_ s: SealedShares) -> Int {
            ProtobufBytes.varintFieldSize(UInt64(s.sender)) + ProtobufBytes.bytesFieldSize(SealedShares.ciphertextByteCount)
                + 2 * ProtobufBytes.bytesFieldSize(ShareDigest.byteCount)
        }
        var listSize = 0
        for s in shares { listSize += ProtobufBytes.lengthFieldSize(entrySize(s)) }
        return ProtobufWriter.write(size: ProtobufBytes.bytesFieldSize(round.bytes.count) + ProtobufBytes.lengthFieldSize(listSize)) { writer in
            writer.bytesField(1, round.bytes)
            writer.messageHeader(3, length: listSize)
            for s in shares {
                writer.messageHeader(1, length: entrySize(s))
                writer.varintField(1, UInt64(s.sender))
                s.ciphertext.withUnsafeBytes { writer.bytesField(2, $0) }
                s.maskingKeyShareDigest.withUnsafeBytes { writer.bytesField(3, $0) }
                s.selfMaskShareDigest.withUnsafeBytes { writer.bytesField(4, $0) }
            }
        }
    }

    // MARK: Reading

    /// A ShareKeys, MaskedInput or UnmaskingShares message from `device`, read without swift-protobuf; nil when the
    /// message is anything else or anything about it is unusual, so that the caller decodes it the
    /// general way (which then also names the error).
    static func decodeRoutedDeviceMessage(_ bytes: [UInt8], from device: UInt32, configuration: RoundConfiguration) -> DeviceMessage? {
        bytes.withUnsafeBytes { raw -> DeviceMessage? in
            var reader = ProtobufReader(raw)
            var roundID: UnsafeRawBufferPointer?
            var body: (field: Int, bytes: UnsafeRawBufferPointer)?
            while !reader.isAtEnd {
                guard let (number, wireType) = reader.field(), wireType == ProtobufBytes.lengthType, let value = reader.lengthDelimited() else { return nil }
                switch number {
                case 1: roundID = value
                case 3, 4, 6:
                    // A second message of the oneof would merge or replace: leave that to swift-protobuf.
                    guard body == nil else { return nil }
                    body = (number, value)
                default: return nil
                }
            }
            guard let roundID, roundID.elementsEqual(configuration.roundID.bytes), let body else { return nil }
            switch body.field {
            case 3: return shareKeys(body.bytes, from: device, degree: configuration.degree)
            case 4: return maskedInput(body.bytes, configuration: configuration)
            default: return unmaskingShares(body.bytes, degree: configuration.degree)
            }
        }
    }

    private static func shareKeys(_ body: UnsafeRawBufferPointer, from device: UInt32, degree: Int) -> DeviceMessage? {
        var reader = ProtobufReader(body)
        var maskingKeyCommitment = UnsafeRawBufferPointer(start: nil, count: 0)
        var selfMaskCommitment = maskingKeyCommitment
        var shares: [SealedShares] = []
        shares.reserveCapacity(degree)
        while !reader.isAtEnd {
            guard let (number, wireType) = reader.field(), wireType == ProtobufBytes.lengthType, let value = reader.lengthDelimited() else { return nil }
            switch number {
            case 1: maskingKeyCommitment = value
            case 2: selfMaskCommitment = value
            case 3:
                guard let share = sealedShares(value, from: device) else { return nil }
                shares.append(share)
            default: return nil
            }
        }
        guard let masking = try? ShamirCommitment(bytes: Array(ProtobufBytes.typed(maskingKeyCommitment))),
              let selfMask = try? ShamirCommitment(bytes: Array(ProtobufBytes.typed(selfMaskCommitment))) else { return nil }
        return .shareKeys(maskingKeyCommitment: masking, selfMaskCommitment: selfMask, shares: shares)
    }

    private static func sealedShares(_ body: UnsafeRawBufferPointer, from device: UInt32) -> SealedShares? {
        var reader = ProtobufReader(body)
        var recipient: UInt64 = 0
        var ciphertext = UnsafeRawBufferPointer(start: nil, count: 0)
        var maskingKeyShareDigest = ciphertext
        var selfMaskShareDigest = ciphertext
        while !reader.isAtEnd {
            guard let (number, wireType) = reader.field() else { return nil }
            switch (number, wireType) {
            case (1, ProtobufBytes.varintType):
                guard let value = reader.varint() else { return nil }
                recipient = value
            case (2, ProtobufBytes.lengthType), (3, ProtobufBytes.lengthType), (4, ProtobufBytes.lengthType):
                guard let value = reader.lengthDelimited() else { return nil }
                if number == 2 { ciphertext = value } else if number == 3 { maskingKeyShareDigest = value } else { selfMaskShareDigest = value }
            default: return nil
            }
        }
        guard recipient <= UInt64(UInt32.max), let sealed = SealedShares.Ciphertext(ciphertext),
              let masking = ShareDigest(maskingKeyShareDigest),
              let selfMask = ShareDigest(selfMaskShareDigest) else { return nil }
        return SealedShares(
            sender: device, recipient: UInt32(recipient), ciphertext: sealed,
            maskingKeyShareDigest: masking, selfMaskShareDigest: selfMask)
    }

    private static func unmaskingShares(_ body: UnsafeRawBufferPointer, degree: Int) -> DeviceMessage? {
        var reader = ProtobufReader(body)
        var selfMaskShares: [RevealedShare] = []
        var maskingKeyShares: [RevealedShare] = []
        selfMaskShares.reserveCapacity(degree)
        while !reader.isAtEnd {
            guard let (number, wireType) = reader.field(), number == 1 || number == 2, wireType == ProtobufBytes.lengthType,
                  let value = reader.lengthDelimited(), let share = revealedShare(value) else { return nil }
            if number == 1 { selfMaskShares.append(share) } else { maskingKeyShares.append(share) }
        }
        return .unmaskingShares(selfMaskShares: selfMaskShares, maskingKeyShares: maskingKeyShares)
    }

    private static func revealedShare(_ body: UnsafeRawBufferPointer) -> RevealedShare? {
        var reader = ProtobufReader(body)
        var owner: UInt64 = 0
        var values = UnsafeRawBufferPointer(start: nil, count: 0)
        while !reader.isAtEnd {
            guard let (number, wireType) = reader.field() else { return nil }
            switch (number, wireType) {
            case (1, ProtobufBytes.varintType):
                guard let value = reader.varint() else { return nil }
                owner = value
            case (2, ProtobufBytes.lengthType):
                guard let value = reader.lengthDelimited() else { return nil }
                values = value
            default: return nil
            }
        }
        guard owner <= UInt64(UInt32.max), values.count == ShamirSecretSharing.shareValueByteCount else { return nil }
        // Written straight into the protected buffer (the generic `copying:` would cost a generic
        // dispatch per share).
        return RevealedShare(owner: UInt32(owner), values: SecretBytes(count: values.count) { $0.copyMemory(from: values) })
    }

    private static func maskedInput(_ body: UnsafeRawBufferPointer, configuration: RoundConfiguration) -> DeviceMessage? {
        var reader = ProtobufReader(body)
        var packed = UnsafeRawBufferPointer(start: nil, count: 0)
        while !reader.isAtEnd {
            guard let (number, wireType) = reader.field(), number == 1, wireType == ProtobufBytes.lengthType,
                  let value = reader.lengthDelimited() else { return nil }
            packed = value
        }
        guard let vector = try? ModularVector(packed: packed, count: configuration.dimension, bitWidth: configuration.bitWidth) else { return nil }
        return .maskedInput(vector)
    }
}
