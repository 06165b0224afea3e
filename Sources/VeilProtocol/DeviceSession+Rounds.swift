import VeilCrypto

extension DeviceSession {
    /// Round 1: validate the neighbours' keys, split both secrets among them, seal each pair.
    mutating func shareKeys(
        input: PrivateInput, secrets: RoundSecrets, entries: [AdvertisedKeys], using random: inout some RandomSource
    ) throws(ProtocolViolation) -> DeviceMessage {
        let phase = Phase.shareKeys
        let t = configuration.threshold
        try requireAscending(entries.map(\.device), phase)
        var seenKeys: Set<[UInt8]> = [secrets.encryption.publicKey.rawRepresentation, secrets.masking.publicKey.rawRepresentation]
        var neighbours: [UInt32: NeighbourRecord] = [:]
        for entry in entries {
            guard graph.areNeighbours(device, entry.device) else { throw violation(phase, .notANeighbour(entry.device)) }
            guard seenKeys.insert(entry.encryptionKey.rawRepresentation).inserted,
                  seenKeys.insert(entry.maskingKey.rawRepresentation).inserted else {
                throw violation(phase, .reusedKey(device: entry.device))
            }
            if configuration.threatModel == .active {
                guard let identityKey = entry.identityKey, let signature = entry.signature,
                      configuration.usesCommittedPlacement == (entry.placementContribution?.count == Placement.byteCount),
                      identityKey.isValidSignature(signature, for: ProtocolEncoding.advertiseStatement(
                        transcript: transcript, device: entry.device,
                        encryptionKey: entry.encryptionKey, maskingKey: entry.maskingKey,
                        placementContribution: entry.placementContribution)) else {
                    throw violation(phase, .invalidSignature(signer: entry.device))
                }
            }
            neighbours[entry.device] = NeighbourRecord(
                encryptionKey: entry.encryptionKey, maskingKey: entry.maskingKey, identityKey: entry.identityKey, opening: nil)
        }
        guard entries.count >= t else { throw violation(phase, .tooFewNeighbours(have: entries.count, need: t)) }

        // Agree both keys with every neighbour before sending anything: a neighbour's key of small
        // order (a predictable shared secret) is that neighbour's fault, found here, not after
        // this device has dealt its shares. The small-order check is a table lookup (exact, see
        // X25519.PublicKey.hasSmallOrder), so the masking agreement itself can wait for
        // MaskedInputCollection and is made only with neighbours that shared; the encryption
        // agreement is made once here and its sealing key kept for dealing below.
        var sealing: [(key: XChaCha20Poly1305.Key, nonce: XChaCha20Poly1305.Nonce)] = []
        sealing.reserveCapacity(entries.count)
        for entry in entries {
            guard !entry.encryptionKey.hasSmallOrder(), !entry.maskingKey.hasSmallOrder() else {
                throw violation(phase, .unusableKey(device: entry.device))
            }
            do {
                let shared = try secrets.encryption.sharedSecret(with: entry.encryptionKey)
                sealing.append(try ProtocolEncoding.shareEncryptionKey(
                    sharedSecret: shared, round: configuration.roundID, sender: device, recipient: entry.device))
                neighbours[entry.device]!.opening = try ProtocolEncoding.shareEncryptionKey(
                    sharedSecret: shared, round: configuration.roundID, sender: entry.device, recipient: device)
            } catch {
                throw violation(phase, .unusableKey(device: entry.device))
            }
        }

        let xs = entries.map { ProtocolEncoding.shareXCoordinate(holder: $0.device) }
        let maskingShares: [ShamirShare]
        let seedShares: [ShamirShare]
        do {
            maskingShares = try ShamirSecretSharing.split(secrets.masking.rawRepresentation, threshold: t, xCoordinates: xs, using: &random)
            seedShares = try ShamirSecretSharing.split(secrets.selfMaskSeed, threshold: t, xCoordinates: xs, using: &random)
        } catch {
            preconditionFailure("validated share parameters were refused: \(error)")
        }
        var sealed = [SealedShares]()
        sealed.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            let plaintext = SecretBytes(count: 2 * ShamirSecretSharing.shareValueByteCount) { out in
                maskingShares[index].values.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                seedShares[index].values.withUnsafeBytes {
                    (out.baseAddress! + ShamirSecretSharing.shareValueByteCount).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                }
            }
            let (key, nonce) = sealing[index]
            // The plaintext is two share values, so the sealed pair is always ciphertextByteCount bytes.
            let ciphertext = SealedShares.Ciphertext(XChaCha20Poly1305.seal(
                plaintext, key: key, nonce: nonce,
                associatedData: ProtocolEncoding.shareAssociatedData(round: configuration.roundID, sender: device, recipient: entry.device)))!
            sealed.append(SealedShares(
                sender: device, recipient: entry.device, ciphertext: ciphertext,
                maskingKeyShareDigest: ProtocolEncoding.shareDigest(
                    transcript: transcript, dealer: device, holder: entry.device, kind: .maskingKey, values: maskingShares[index].values),
                selfMaskShareDigest: ProtocolEncoding.shareDigest(
                    transcript: transcript, dealer: device, holder: entry.device, kind: .selfMask, values: seedShares[index].values)))
        }
        state = .sharedKeys(input: input, secrets: secrets, neighbours: neighbours)
        return .shareKeys(maskingKeyCommitment: maskingShares[0].commitment, selfMaskCommitment: seedShares[0].commitment, shares: sealed)
    }

    /// A sealed pair whose shares do not match the dealer's digests.
    struct ShareDigestMismatch: Error {}

    /// Round 2: open the shares sealed to this device, then mask the input.
    ///
    /// A share pair that fails to open is not held (this device will reveal nothing for that
    /// sender), but the pairwise mask with the sender is still applied, because the sender applies
    /// it too.
    mutating func maskInput(
        input: PrivateInput, secrets: RoundSecrets, neighbours: [UInt32: NeighbourRecord], sealed: [SealedShares]
    ) throws(ProtocolViolation) -> DeviceMessage {
        let phase = Phase.maskedInputCollection
        let t = configuration.threshold
        try requireAscending(sealed.map(\.sender), phase)
        var held: [UInt32: HeldShares] = [:]
        for item in sealed {
            guard item.recipient == device else { throw violation(phase, .malformed("share addressed to device \(item.recipient)")) }
            guard neighbours[item.sender] != nil else { throw violation(phase, .notANeighbour(item.sender)) }
        }
        guard sealed.count >= t else { throw violation(phase, .tooFewNeighbours(have: sealed.count, need: t)) }
        for item in sealed {
            if let pair = try? openShares(item, from: neighbours[item.sender]!) { held[item.sender] = pair }
        }

        var masked = input.plaintext
        let generator = MaskGenerator(algorithm: configuration.prg)
        do {
            try masked.applyMask(
                seed: secrets.selfMaskSeed, label: ProtocolEncoding.selfMaskLabel(round: configuration.roundID, device: device),
                generator: generator)
            for item in sealed {
                let peer = item.sender
                let shared = try secrets.masking.sharedSecret(with: neighbours[peer]!.maskingKey)
                let seed = try ProtocolEncoding.pairwiseSeed(sharedSecret: shared, round: configuration.roundID, device, peer)
                try masked.applyMask(
                    seed: seed, label: ProtocolEncoding.pairwiseMaskLabel(round: configuration.roundID, device, peer),
                    generator: generator, subtracting: !ProtocolEncoding.addsPairwiseMask(device, with: peer))
            }
        } catch {
            throw violation(phase, .malformed("mask derivation failed: \(error)"))
        }
        // The plaintext is no longer needed: zero the session's copy now, not when it is released.
        input.wipe()
        state = .maskedInputSent(held: held, sharers: sealed.map(\.sender), neighbours: neighbours)
        return .maskedInput(masked)
    }

    /// Opens one sealed share pair with the key derived in ShareKeys; throws if the AEAD fails.
    /// A pair whose shares do not match the dealer's digests (§4.11) is not held either: this
    /// device then never reveals a share the server could not check, so a mismatch at unmasking is
    /// evidence against the holder, not the dealer.
    func openShares(_ item: SealedShares, from sender: NeighbourRecord) throws -> HeldShares {
        let (key, nonce) = sender.opening!
        let plaintext = try XChaCha20Poly1305.open(
            item.ciphertext.bytes, key: key, nonce: nonce,
            associatedData: ProtocolEncoding.shareAssociatedData(round: configuration.roundID, sender: item.sender, recipient: device))
        let half = ShamirSecretSharing.shareValueByteCount
        let held = plaintext.withUnsafeBytes { raw in
            HeldShares(
                maskingKey: SecretBytes(copying: UnsafeRawBufferPointer(rebasing: raw[0..<half])),
                selfMask: SecretBytes(copying: UnsafeRawBufferPointer(rebasing: raw[half..<(2 * half)])))
        }
        guard ProtocolEncoding.shareDigest(transcript: transcript, dealer: item.sender, holder: device, kind: .maskingKey, values: held.maskingKey)
                == item.maskingKeyShareDigest,
              ProtocolEncoding.shareDigest(transcript: transcript, dealer: item.sender, holder: device, kind: .selfMask, values: held.selfMask)
                == item.selfMaskShareDigest else {
            throw ShareDigestMismatch()
        }
        return held
    }

    /// Round 3 (active): check the survivor set against this device's view and sign it.
    mutating func signConsistency(
        held: [UInt32: HeldShares], sharers: [UInt32], neighbours: [UInt32: NeighbourRecord], survivors: [UInt32]
    ) throws(ProtocolViolation) -> DeviceMessage {
        let phase = Phase.consistencyCheck
        try requireAscending(survivors, phase)
        guard let last = survivors.last, Int(last) < configuration.cohortSize else {
            throw violation(phase, .malformed("survivor index outside the cohort"))
        }
        guard survivors.contains(device) else {
            throw violation(phase, .inconsistentSurvivorSet("this device sent its masked input but is not listed"))
        }
        let sharerSet = Set(sharers)
        let survivingNeighbours = survivors.filter { graph.areNeighbours(device, $0) }
        if let stranger = survivingNeighbours.first(where: { !sharerSet.contains($0) }) {
            throw violation(phase, .inconsistentSurvivorSet("neighbour \(stranger) is listed as a survivor but never shared keys"))
        }
        guard survivingNeighbours.count >= configuration.threshold else {
            throw violation(phase, .tooFewNeighbours(have: survivingNeighbours.count, need: configuration.threshold))
        }
        // Noise sized for at least n survivors would be too little in a smaller sum (§12.4).
        guard survivors.count >= policy.minimumSurvivors else {
            throw violation(phase, .inconsistentSurvivorSet("\(survivors.count) survivors, fewer than the \(policy.minimumSurvivors) this device's noise is sized for"))
        }
        let signature = identity!.signature(for: ProtocolEncoding.consistencyStatement(
            transcript: transcript, device: device, encryptionKey: advertisedKeys!.encryption, maskingKey: advertisedKeys!.masking, survivors: survivors))
        state = .consistencySigned(held: held, sharers: sharers, neighbours: neighbours, survivors: survivors)
        return .consistencySignature(signature)
    }

    /// Round 4: reveal the self-mask share of each surviving neighbour and the masking-key share
    /// of each dropped one, after checking the request (and, in the active model, the signatures).
    mutating func unmask(
        held: [UInt32: HeldShares], sharers: [UInt32], surviving: [UInt32], dropped: [UInt32],
        check: (neighbours: [UInt32: NeighbourRecord], survivors: [UInt32], signatures: [UInt32: Ed25519.Signature])?
    ) throws(ProtocolViolation) -> DeviceMessage {
        let phase = Phase.unmasking
        try requireAscending(surviving, phase)
        try requireAscending(dropped, phase)
        let survivingSet = Set(surviving)
        if let both = dropped.first(where: { survivingSet.contains($0) }) {
            throw violation(phase, .requestedBothShares(neighbour: both))
        }
        let sharerSet = Set(sharers)
        if let stranger = (surviving + dropped).first(where: { !sharerSet.contains($0) }) {
            throw violation(phase, .notANeighbour(stranger))
        }
        if let (neighbours, survivors, signatures) = check {
            let u3 = Set(survivors)
            let expectedSurviving = sharers.filter { u3.contains($0) }
            let expectedDropped = sharers.filter { !u3.contains($0) }
            guard surviving == expectedSurviving, dropped == expectedDropped else {
                throw violation(phase, .inconsistentSurvivorSet("request disagrees with the signed survivor set"))
            }
            for (signer, signature) in signatures.sorted(by: { $0.key < $1.key }) {
                guard survivingSet.contains(signer), let record = neighbours[signer], let identityKey = record.identityKey else {
                    throw violation(phase, .notANeighbour(signer))
                }
                let statement = ProtocolEncoding.consistencyStatement(
                    transcript: transcript, device: signer, encryptionKey: record.encryptionKey, maskingKey: record.maskingKey, survivors: survivors)
                guard identityKey.isValidSignature(signature, for: statement) else {
                    throw violation(phase, .invalidSignature(signer: signer))
                }
            }
            guard signatures.count >= configuration.threshold else {
                throw violation(phase, .tooFewNeighbours(have: signatures.count, need: configuration.threshold))
            }
        } else {
            guard surviving.count >= configuration.threshold else {
                throw violation(phase, .tooFewNeighbours(have: surviving.count, need: configuration.threshold))
            }
        }
        let selfMaskShares = surviving.compactMap { owner in held[owner].map { RevealedShare(owner: owner, values: $0.selfMask) } }
        let maskingKeyShares = dropped.compactMap { owner in held[owner].map { RevealedShare(owner: owner, values: $0.maskingKey) } }
        state = .finished
        return .unmaskingShares(selfMaskShares: selfMaskShares, maskingKeyShares: maskingKeyShares)
    }

    /// Throws unless `indices` is strictly increasing (sorted, no repeats).
    func requireAscending(_ indices: [UInt32], _ phase: Phase) throws(ProtocolViolation) {
        for i in indices.indices.dropFirst() where indices[i - 1] >= indices[i] {
            throw violation(phase, .malformed("device list is not strictly increasing at position \(i)"))
        }
    }
}
