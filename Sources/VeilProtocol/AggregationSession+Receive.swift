import VeilCrypto

extension AggregationSession {
    /// Takes one message from `device`.
    ///
    /// A message that breaks the protocol removes its sender from the round (what it already
    /// contributed stays, as the protocol requires) and throws a ``ProtocolViolation``; nothing
    /// else about the round changes, so the driver can report the error to that device and carry on.
    public mutating func receive(_ message: DeviceMessage, from device: UInt32) throws(ProtocolViolation) {
        guard let phase else {
            throw ProtocolViolation(round: configuration.roundID, device: device, phase: message.phase, kind: .unexpectedMessage(received: message.phase))
        }
        guard Int(device) < configuration.cohortSize else {
            throw ProtocolViolation(round: configuration.roundID, device: device, phase: phase, kind: .notAParticipant)
        }
        let index = Int(device)
        guard misbehaving[device] == nil, expected[index] || records[index].answered(phase) else {
            throw ProtocolViolation(round: configuration.roundID, device: device, phase: phase, kind: .notAParticipant)
        }
        guard message.phase == phase else { throw reject(device, .unexpectedMessage(received: message.phase), in: phase) }
        guard !records[index].answered(phase) else { throw reject(device, .duplicateMessage, in: phase) }

        switch message {
        case let .advertiseKeys(encryptionKey, maskingKey, signature, contribution):
            try acceptAdvertisedKeys(device, encryptionKey, maskingKey, signature, contribution)
        case let .shareKeys(maskingKeyCommitment, selfMaskCommitment, shares):
            try acceptSharedKeys(device, maskingKeyCommitment, selfMaskCommitment, shares)
        case let .maskedInput(vector):
            guard vector.count == configuration.dimension, vector.bitWidth == configuration.bitWidth else {
                throw reject(device, .wrongVectorShape(
                    expectedCount: configuration.dimension, count: vector.count,
                    expectedBitWidth: configuration.bitWidth, bitWidth: vector.bitWidth), in: phase)
            }
            accumulator.add(vector)
            records[index].maskedInput = true
        case let .consistencySignature(signature):
            let statement = ProtocolEncoding.consistencyStatement(
                transcript: transcript, device: device, encryptionKey: records[index].encryptionKey!,
                maskingKey: records[index].maskingKey!, survivors: survivors)
            guard identities[device]!.isValidSignature(signature, for: statement) else {
                throw reject(device, .invalidSignature(signer: device), in: phase)
            }
            records[index].consistencySignature = signature
        case let .unmaskingShares(selfMaskShares, maskingKeyShares):
            try acceptRevealedShares(device, selfMaskShares, maskingKeyShares)
        }
        expectedRemaining -= 1
    }

    mutating func acceptAdvertisedKeys(
        _ device: UInt32, _ encryptionKey: X25519.PublicKey, _ maskingKey: X25519.PublicKey, _ signature: Ed25519.Signature?,
        _ contribution: [UInt8]?
    ) throws(ProtocolViolation) {
        guard configuration.usesCommittedPlacement == (contribution != nil), contribution.map({ $0.count == Placement.byteCount }) ?? true else {
            throw reject(device, .malformed(configuration.usesCommittedPlacement
                ? "a 32-byte placement contribution is required" : "a placement contribution in a round without committed placement"), in: .advertiseKeys)
        }
        if configuration.threatModel == .active {
            let statement = ProtocolEncoding.advertiseStatement(
                transcript: transcript, device: device, encryptionKey: encryptionKey, maskingKey: maskingKey,
                placementContribution: contribution)
            guard let signature, identities[device]!.isValidSignature(signature, for: statement) else {
                throw reject(device, .invalidSignature(signer: device), in: .advertiseKeys)
            }
        }
        guard encryptionKey != maskingKey,
              !advertisedKeys.contains(encryptionKey),
              !advertisedKeys.contains(maskingKey) else {
            throw reject(device, .reusedKey(device: device), in: .advertiseKeys)
        }
        // A key of small order would make every honest neighbour abort (§6.0): remove its owner
        // here, so that one device cannot stop its cohort.
        guard !encryptionKey.hasSmallOrder(), !maskingKey.hasSmallOrder() else {
            throw reject(device, .unusableKey(device: device), in: .advertiseKeys)
        }
        advertisedKeys.insert(encryptionKey)
        advertisedKeys.insert(maskingKey)
        records[Int(device)].encryptionKey = encryptionKey
        records[Int(device)].maskingKey = maskingKey
        records[Int(device)].signature = signature
        records[Int(device)].placementContribution = contribution
    }

    mutating func acceptSharedKeys(
        _ device: UInt32, _ maskingKeyCommitment: ShamirCommitment, _ selfMaskCommitment: ShamirCommitment, _ shares: [SealedShares]
    ) throws(ProtocolViolation) {
        let expectedRecipients = graph.neighbours(of: device).filter { isLive($0, after: .advertiseKeys) }
        guard shares.map(\.recipient) == expectedRecipients else {
            throw reject(device, .wrongShareSet("recipients must be exactly the \(expectedRecipients.count) live neighbours, ascending"), in: .shareKeys)
        }
        if let bad = shares.first(where: { $0.sender != device }) {
            throw reject(device, .malformed("sealed shares for \(bad.recipient) have a wrong sender"), in: .shareKeys)
        }
        var digests = [ShareDigest]()
        digests.reserveCapacity(2 * shares.count)
        for share in shares {
            digests.append(share.maskingKeyShareDigest)
            digests.append(share.selfMaskShareDigest)
        }
        records[Int(device)].shareHolders = shares.map(\.recipient)
        records[Int(device)].shareDigests = digests
        records[Int(device)].maskingKeyCommitment = maskingKeyCommitment
        records[Int(device)].selfMaskCommitment = selfMaskCommitment
        records[Int(device)].sealedShares = shares
        records[Int(device)].sharedKeys = true
    }

    mutating func acceptRevealedShares(
        _ device: UInt32, _ selfMaskShares: [RevealedShare], _ maskingKeyShares: [RevealedShare]
    ) throws(ProtocolViolation) {
        guard case let .unmaskingRequest(surviving, dropped, _) = outgoingMessage(for: device) else {
            throw reject(device, .notAParticipant, in: .unmasking)
        }
        guard isAscendingSubset(selfMaskShares.map(\.owner), of: surviving) else {
            throw reject(device, .wrongShareSet("self-mask shares must be for surviving neighbours, ascending"), in: .unmasking)
        }
        guard isAscendingSubset(maskingKeyShares.map(\.owner), of: dropped) else {
            throw reject(device, .wrongShareSet("masking-key shares must be for dropped neighbours, ascending"), in: .unmasking)
        }
        if let bad = (selfMaskShares + maskingKeyShares).first(where: { $0.values.count != ShamirSecretSharing.shareValueByteCount }) {
            throw reject(device, .malformed("share for \(bad.owner) is \(bad.values.count) bytes"), in: .unmasking)
        }
        records[Int(device)].selfMaskShares = selfMaskShares
        records[Int(device)].maskingKeyShares = maskingKeyShares
    }

    /// Whether `a` is strictly increasing and every element is in the ascending list `b`.
    func isAscendingSubset(_ a: [UInt32], of b: [UInt32]) -> Bool {
        var j = 0
        for (i, x) in a.enumerated() {
            if i > 0 && a[i - 1] >= x { return false }
            while j < b.count && b[j] < x { j += 1 }
            if j == b.count || b[j] != x { return false }
        }
        return true
    }

    /// Whether `device` completed `phase` and was kept when the phase closed.
    func isLive(_ device: UInt32, after phase: Phase) -> Bool {
        switch phase {
        case .advertiseKeys: return inKeySet[Int(device)]
        case .shareKeys: return inShareSet[Int(device)]
        case .maskedInputCollection: return inSurvivors[Int(device)]
        case .consistencyCheck: return signers[Int(device)]
        case .unmasking: return records[Int(device)].selfMaskShares != nil
        }
    }
}
