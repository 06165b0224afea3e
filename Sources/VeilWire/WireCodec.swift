import Foundation
import SwiftProtobuf
import VeilCrypto
public import VeilProtocol

/// Converts protocol messages to and from their protobuf wire form (`Protocols/veil/v1/secagg.proto`).
///
/// Decoding treats every byte as untrusted: it checks each field's length and range and the
/// round id, and returns a typed ``WireError`` naming the field at fault. Protocol-level checks
/// (neighbours, thresholds, signatures) stay in the state machines.
public enum WireCodec {
    // MARK: Device to server

    /// Encodes a device message for `round`.
    public static func encode(_ message: DeviceMessage, round: RoundID) -> [UInt8] {
        var envelope = Veil_V1_DeviceToServer()
        envelope.roundID = Data(round.bytes)
        switch message {
        case let .advertiseKeys(encryptionKey, maskingKey, signature, contribution):
            var m = Veil_V1_AdvertiseKeys()
            m.encryptionKey = Data(encryptionKey.rawRepresentation)
            m.maskingKey = Data(maskingKey.rawRepresentation)
            m.signature = Data(signature?.rawRepresentation ?? [])
            m.placementContribution = Data(contribution ?? [])
            envelope.advertiseKeys = m
        case let .shareKeys(maskingKeyCommitment, selfMaskCommitment, shares):
            var m = Veil_V1_ShareKeys()
            m.maskingKeyCommitment = Data(maskingKeyCommitment.bytes)
            m.selfMaskCommitment = Data(selfMaskCommitment.bytes)
            m.shares = shares.map { s in
                var w = Veil_V1_SealedShares()
                w.recipient = s.recipient
                w.ciphertext = Data(s.ciphertext.bytes)
                w.maskingKeyShareDigest = s.maskingKeyShareDigest.withUnsafeBytes { Data($0) }
                w.selfMaskShareDigest = s.selfMaskShareDigest.withUnsafeBytes { Data($0) }
                return w
            }
            envelope.shareKeys = m
        case let .maskedInput(vector):
            var m = Veil_V1_MaskedInput()
            m.packedVector = Data(vector.packed())
            envelope.maskedInput = m
        case let .consistencySignature(signature):
            var m = Veil_V1_ConsistencySignature()
            m.signature = Data(signature.rawRepresentation)
            envelope.consistencySignature = m
        case let .unmaskingShares(selfMaskShares, maskingKeyShares):
            var m = Veil_V1_UnmaskingShares()
            m.selfMaskShares = selfMaskShares.map(wire)
            m.maskingKeyShares = maskingKeyShares.map(wire)
            envelope.unmaskingShares = m
        }
        return serialize(envelope)
    }

    /// Decodes a message that `device` sent in the round `configuration` describes.
    public static func decodeDeviceMessage(
        _ bytes: [UInt8], from device: UInt32, configuration: RoundConfiguration
    ) throws(WireError) -> DeviceMessage {
        let limit = maximumDeviceMessageByteCount(configuration)
        guard bytes.count <= limit else { throw .tooLarge(bytes: bytes.count, limit: limit) }
        // The messages the server receives once per device pair and per vector element are read
        // at the byte level; anything unusual comes back nil and is decoded below.
        if let routed = decodeRoutedDeviceMessage(bytes, from: device, configuration: configuration) { return routed }
        return try decodeThroughProtobuf(bytes, from: device, configuration: configuration)
    }

    /// ``decodeDeviceMessage(_:from:configuration:)`` through swift-protobuf, for every message
    /// and every error (the byte-level reader is tested against it).
    static func decodeThroughProtobuf(_ bytes: [UInt8], from device: UInt32, configuration: RoundConfiguration) throws(WireError) -> DeviceMessage {
        let envelope: Veil_V1_DeviceToServer = try parse(bytes)
        guard envelope.roundID == Data(configuration.roundID.bytes) else { throw .wrongRound }
        try refuseUnknownFields(envelope, name: "envelope")
        switch envelope.message {
        case nil:
            throw .missingMessage
        case let .advertiseKeys(m)?:
            try refuseUnknownFields(m, name: "advertise_keys")
            let signature: Ed25519.Signature? = m.signature.isEmpty ? nil : try field("advertise_keys.signature") { try Ed25519.Signature(rawRepresentation: Array(m.signature)) }
            let contribution: [UInt8]?
            if configuration.usesCommittedPlacement {
                try exactLength(m.placementContribution, Placement.byteCount, "advertise_keys.placement_contribution")
                contribution = Array(m.placementContribution)
            } else {
                guard m.placementContribution.isEmpty else {
                    throw .invalidField(field: "advertise_keys.placement_contribution", reason: "must be empty without committed placement")
                }
                contribution = nil
            }
            return .advertiseKeys(
                encryptionKey: try field("advertise_keys.encryption_key") { try X25519.PublicKey(rawRepresentation: Array(m.encryptionKey)) },
                maskingKey: try field("advertise_keys.masking_key") { try X25519.PublicKey(rawRepresentation: Array(m.maskingKey)) },
                signature: signature, placementContribution: contribution)
        case let .shareKeys(m)?:
            try refuseUnknownFields(m, name: "share_keys")
            let shares = try m.shares.enumerated().map { (i, s) throws(WireError) in
                let ciphertext = try sealedCiphertext(s.ciphertext, "share_keys.shares[\(i)].ciphertext")
                let maskingKeyShareDigest = try shareDigest(s.maskingKeyShareDigest, "share_keys.shares[\(i)].masking_key_share_digest")
                let selfMaskShareDigest = try shareDigest(s.selfMaskShareDigest, "share_keys.shares[\(i)].self_mask_share_digest")
                return SealedShares(
                    sender: device, recipient: s.recipient, ciphertext: ciphertext,
                    maskingKeyShareDigest: maskingKeyShareDigest, selfMaskShareDigest: selfMaskShareDigest)
            }
            return .shareKeys(
                maskingKeyCommitment: try field("share_keys.masking_key_commitment") { try ShamirCommitment(bytes: Array(m.maskingKeyCommitment)) },
                selfMaskCommitment: try field("share_keys.self_mask_commitment") { try ShamirCommitment(bytes: Array(m.selfMaskCommitment)) },
                shares: shares)
        case let .maskedInput(m)?:
            try refuseUnknownFields(m, name: "masked_input")
            do {
                // Straight from the decoded message's buffer: a 400 KB input is copied once, not three times.
                let vector = try m.packedVector.withUnsafeBytes { raw throws(ModularVectorError) in
                    try ModularVector(packed: raw, count: configuration.dimension, bitWidth: configuration.bitWidth)
                }
                return .maskedInput(vector)
            } catch {
                throw .invalidField(field: "masked_input.packed_vector", reason: "\(error)")
            }
        case let .consistencySignature(m)?:
            try refuseUnknownFields(m, name: "consistency_signature")
            return .consistencySignature(try field("consistency_signature.signature") { try Ed25519.Signature(rawRepresentation: Array(m.signature)) })
        case let .unmaskingShares(m)?:
            try refuseUnknownFields(m, name: "unmasking_shares")
            return .unmaskingShares(
                selfMaskShares: try revealed(m.selfMaskShares, "unmasking_shares.self_mask_shares"),
                maskingKeyShares: try revealed(m.maskingKeyShares, "unmasking_shares.masking_key_shares"))
        }
    }

    // MARK: Server to device

    /// Encodes a server message for `round` in a cohort of `cohortSize` devices.
    public static func encode(_ message: ServerMessage, round: RoundID, cohortSize: Int) -> [UInt8] {
        // The two requests with one entry per neighbour are written at the byte level.
        switch message {
        case let .neighbourKeys(entries, placement): return encodeNeighbourKeys(entries, placement: placement, round: round)
        case let .sealedShares(shares): return encodeIncomingShares(shares, round: round)
        case .consistencyCheck, .unmaskingRequest: break
        }
        return encodeThroughProtobuf(message, round: round, cohortSize: cohortSize)
    }

    /// ``encode(_:round:cohortSize:)`` through swift-protobuf, for every message (the byte-level
    /// writers are tested against it).
    static func encodeThroughProtobuf(_ message: ServerMessage, round: RoundID, cohortSize: Int) -> [UInt8] {
        var envelope = Veil_V1_ServerToDevice()
        envelope.roundID = Data(round.bytes)
        switch message {
        case let .neighbourKeys(entries, placement):
            var m = Veil_V1_NeighbourKeyList()
            m.neighbours = entries.map { e in
                var w = Veil_V1_NeighbourKeys()
                w.device = e.device
                w.encryptionKey = Data(e.encryptionKey.rawRepresentation)
                w.maskingKey = Data(e.maskingKey.rawRepresentation)
                w.signature = Data(e.signature?.rawRepresentation ?? [])
                w.identityKey = Data(e.identityKey?.rawRepresentation ?? [])
                w.placementContribution = Data(e.placementContribution ?? [])
                return w
            }
            if let placement {
                m.placementSecret = Data(placement.secret)
                m.placementRoot = Data(placement.root)
                m.placementPath = placement.path.map { Data($0) }
            }
            envelope.neighbourKeys = m
        case let .sealedShares(shares):
            var m = Veil_V1_IncomingShareList()
            m.shares = shares.map { s in
                var w = Veil_V1_IncomingShares()
                w.sender = s.sender
                w.ciphertext = Data(s.ciphertext.bytes)
                w.maskingKeyShareDigest = s.maskingKeyShareDigest.withUnsafeBytes { Data($0) }
                w.selfMaskShareDigest = s.selfMaskShareDigest.withUnsafeBytes { Data($0) }
                return w
            }
            envelope.incomingShares = m
        case let .consistencyCheck(survivors):
            var m = Veil_V1_ConsistencyCheck()
            m.survivorBitmap = Data(SurvivorBitmap.encode(survivors, cohortSize: cohortSize))
            envelope.consistencyCheck = m
        case let .unmaskingRequest(surviving, dropped, signatures):
            var m = Veil_V1_UnmaskingRequest()
            m.survivingNeighbours = surviving
            m.droppedNeighbours = dropped
            m.signatures = signatures.sorted { $0.key < $1.key }.map { device, signature in
                var w = Veil_V1_NeighbourSignature()
                w.device = device
                w.signature = Data(signature.rawRepresentation)
                return w
            }
            envelope.unmaskingRequest = m
        }
        return serialize(envelope)
    }

    /// Decodes a message the server sent to `device` in the round `configuration` describes.
    public static func decodeServerMessage(
        _ bytes: [UInt8], for device: UInt32, configuration: RoundConfiguration
    ) throws(WireError) -> ServerMessage {
        let envelope: Veil_V1_ServerToDevice = try parse(bytes)
        guard envelope.roundID == Data(configuration.roundID.bytes) else { throw .wrongRound }
        try refuseUnknownFields(envelope, name: "envelope")
        let active = configuration.threatModel == .active
        switch envelope.message {
        case nil:
            throw .missingMessage
        case let .neighbourKeys(m)?:
            let placed = configuration.usesCommittedPlacement
            let entries = try m.neighbours.enumerated().map { (i, e) throws(WireError) in
                let name = "neighbour_keys.neighbours[\(i)]"
                if placed {
                    try exactLength(e.placementContribution, Placement.byteCount, "\(name).placement_contribution")
                } else if !e.placementContribution.isEmpty {
                    throw .invalidField(field: "\(name).placement_contribution", reason: "must be empty without committed placement")
                }
                return AdvertisedKeys(
                    device: e.device,
                    encryptionKey: try field("\(name).encryption_key") { try X25519.PublicKey(rawRepresentation: Array(e.encryptionKey)) },
                    maskingKey: try field("\(name).masking_key") { try X25519.PublicKey(rawRepresentation: Array(e.maskingKey)) },
                    signature: active ? try field("\(name).signature") { try Ed25519.Signature(rawRepresentation: Array(e.signature)) } : nil,
                    identityKey: active ? try field("\(name).identity_key") { try Ed25519.PublicKey(rawRepresentation: Array(e.identityKey)) } : nil,
                    placementContribution: placed ? Array(e.placementContribution) : nil)
            }
            guard placed else {
                guard m.placementSecret.isEmpty, m.placementRoot.isEmpty, m.placementPath.isEmpty else {
                    throw .invalidField(field: "neighbour_keys.placement_secret", reason: "must be empty without committed placement")
                }
                return .neighbourKeys(entries)
            }
            try exactLength(m.placementSecret, Placement.byteCount, "neighbour_keys.placement_secret")
            try exactLength(m.placementRoot, Placement.byteCount, "neighbour_keys.placement_root")
            // A tree over at most 2^24 devices has at most 24 levels.
            guard m.placementPath.count <= 24 else { throw .invalidField(field: "neighbour_keys.placement_path", reason: "longer than 24 entries") }
            for (i, entry) in m.placementPath.enumerated() { try exactLength(entry, Placement.byteCount, "neighbour_keys.placement_path[\(i)]") }
            return .neighbourKeys(entries, placement: PlacementReveal(
                secret: Array(m.placementSecret), root: Array(m.placementRoot), path: m.placementPath.map { Array($0) }))
        case let .incomingShares(m)?:
            return .sealedShares(try m.shares.enumerated().map { (i, s) throws(WireError) in
                let ciphertext = try sealedCiphertext(s.ciphertext, "incoming_shares.shares[\(i)].ciphertext")
                let maskingKeyShareDigest = try shareDigest(s.maskingKeyShareDigest, "incoming_shares.shares[\(i)].masking_key_share_digest")
                let selfMaskShareDigest = try shareDigest(s.selfMaskShareDigest, "incoming_shares.shares[\(i)].self_mask_share_digest")
                return SealedShares(
                    sender: s.sender, recipient: device, ciphertext: ciphertext,
                    maskingKeyShareDigest: maskingKeyShareDigest, selfMaskShareDigest: selfMaskShareDigest)
            })
        case let .consistencyCheck(m)?:
            return .consistencyCheck(survivors: try SurvivorBitmap.decode(Array(m.survivorBitmap), cohortSize: configuration.cohortSize))
        case let .unmaskingRequest(m)?:
            var signatures: [UInt32: Ed25519.Signature] = [:]
            for (i, s) in m.signatures.enumerated() {
                guard signatures[s.device] == nil else {
                    throw .invalidField(field: "unmasking_request.signatures[\(i)].device", reason: "device \(s.device) appears twice")
                }
                signatures[s.device] = try field("unmasking_request.signatures[\(i)].signature") { try Ed25519.Signature(rawRepresentation: Array(s.signature)) }
            }
            return .unmaskingRequest(survivingNeighbours: m.survivingNeighbours, droppedNeighbours: m.droppedNeighbours, signatures: signatures)
        }
    }

    // MARK: Limits

    /// The largest device message a round accepts: the bigger of the packed masked input and a
    /// full ShareKeys message, plus 1 KiB for framing. Larger messages are refused before parsing.
    public static func maximumDeviceMessageByteCount(_ configuration: RoundConfiguration) -> Int {
        let maskedInput = configuration.dimension * ((configuration.bitWidth + 7) / 8)
        // Per sealed share: tag + varint recipient + tag + length + 96 bytes + two tagged 16-byte
        // digests, at most 146.
        let shareKeys = configuration.degree * 146 + 2 * 34
        // Per revealed share: at most 52 bytes.
        let unmasking = configuration.degree * 52
        return max(maskedInput, shareKeys, unmasking) + 1024
    }

    // MARK: Helpers

    /// Refuses fields this version of the schema does not define: a peer speaking another version
    /// must say so through the package name, not through silently ignored fields.
    static func refuseUnknownFields(_ message: some SwiftProtobuf.Message, name: @autoclosure () -> String) throws(WireError) {
        guard message.unknownFields.data.isEmpty else {
            throw .invalidField(field: name(), reason: "carries \(message.unknownFields.data.count) bytes of fields unknown to veil.v1")
        }
    }

    static func wire(_ share: RevealedShare) -> Veil_V1_RevealedShare {
        var w = Veil_V1_RevealedShare()
        w.owner = share.owner
        w.values = share.values.withUnsafeBytes { Data($0) }
        return w
    }

    static func revealed(_ list: [Veil_V1_RevealedShare], _ name: String) throws(WireError) -> [RevealedShare] {
        try list.enumerated().map { (i, s) throws(WireError) in
            try exactLength(s.values, ShamirSecretSharing.shareValueByteCount, "\(name)[\(i)].values")
            return RevealedShare(owner: s.owner, values: SecretBytes(copying: s.values))
        }
    }

    /// Checks `data` is `expected` bytes. The field name is built only for the error: decoding a
    /// ShareKeys message checks thousands of fields, and interpolating each name up front cost
    /// more than the parse.
    static func exactLength(_ data: Data, _ expected: Int, _ name: @autoclosure () -> String) throws(WireError) {
        guard data.count == expected else { throw .invalidField(field: name(), reason: "must be \(expected) bytes, got \(data.count)") }
    }

    /// The sealed share pair in `data`, which must be exactly ``SealedShares/ciphertextByteCount`` bytes.
    static func sealedCiphertext(_ data: Data, _ name: @autoclosure () -> String) throws(WireError) -> SealedShares.Ciphertext {
        try exactLength(data, SealedShares.ciphertextByteCount, name())
        return SealedShares.Ciphertext(data)!
    }

    /// The share digest in `data`, which must be exactly ``ShareDigest/byteCount`` bytes.
    static func shareDigest(_ data: Data, _ name: @autoclosure () -> String) throws(WireError) -> ShareDigest {
        try exactLength(data, ShareDigest.byteCount, name())
        return ShareDigest(data)!
    }

    static func field<T>(_ name: @autoclosure () -> String, _ body: () throws -> T) throws(WireError) -> T {
        do { return try body() } catch { throw .invalidField(field: name(), reason: String(describing: error)) }
    }

    static func serialize(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        // Serialising a fully built message of known types cannot fail.
        let data: Data = try! message.serializedBytes()
        return Array(data)
    }

    static func parse<M: SwiftProtobuf.Message>(_ bytes: [UInt8]) throws(WireError) -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw .undecodable(String(describing: error))
        }
    }
}

/// The survivor set as a bitmap of n bits (bit i of byte i / 8, least significant first).
public enum SurvivorBitmap {
    /// Encodes ascending indices below `cohortSize`.
    public static func encode(_ survivors: [UInt32], cohortSize: Int) -> [UInt8] {
        var bitmap = [UInt8](repeating: 0, count: (cohortSize + 7) / 8)
        for s in survivors { bitmap[Int(s) / 8] |= 1 << (s % 8) }
        return bitmap
    }

    /// Decodes a bitmap, refusing a wrong length or bits set at or beyond `cohortSize`.
    public static func decode(_ bitmap: [UInt8], cohortSize: Int) throws(WireError) -> [UInt32] {
        guard bitmap.count == (cohortSize + 7) / 8 else {
            throw .invalidField(field: "consistency_check.survivor_bitmap", reason: "must be \((cohortSize + 7) / 8) bytes, got \(bitmap.count)")
        }
        var survivors = [UInt32]()
        for (byteIndex, byte) in bitmap.enumerated() where byte != 0 {
            for bit in 0..<8 where byte & (1 << bit) != 0 {
                let index = byteIndex * 8 + bit
                guard index < cohortSize else {
                    throw .invalidField(field: "consistency_check.survivor_bitmap", reason: "bit \(index) is beyond the cohort of \(cohortSize)")
                }
                survivors.append(UInt32(index))
            }
        }
        return survivors
    }
}
