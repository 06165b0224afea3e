import VeilCrypto
import VeilProtocol

/// A colluding device's secrets for one session, which it hands to the aggregator: its two round
/// key pairs, its self-mask seed and its enrolled identity key.
struct ColluderSecrets: Sendable {
    /// c_sk: opens the share pairs its neighbours sealed to it.
    let encryption: X25519.PrivateKey
    /// s_sk: its pairwise masks.
    let masking: X25519.PrivateKey
    /// β: its self mask.
    let selfMaskSeed: SecretBytes
    /// Its long-term signing key: it signs whatever survivor set the aggregator wants.
    let identity: Ed25519.PrivateKey
}

/// A consistency signature and the survivor set the signer was shown.
struct SignedSurvivorSet: Sendable, Equatable {
    /// U3 as the signer saw it, ascending.
    let survivors: [UInt32]
    /// The signature over the signer's consistency statement for that set.
    let signature: Ed25519.Signature
}

/// Everything a malicious aggregator saw in one session: every message the devices sent (keys,
/// commitments, sealed shares, masked inputs, signatures, revealed shares), which neighbours'
/// pairwise masks each device applied (it chose them itself, in MaskedInputCollection), and the
/// secrets of its colluding devices. The ``ExposureOracle`` works from this alone.
struct SessionView: Sendable {
    /// The session's configuration.
    let configuration: RoundConfiguration
    /// What each device advertised, as the aggregator would relay it.
    var advertised: [UInt32: AdvertisedKeys] = [:]
    /// Each dealer's commitments to s_sk and to β.
    var commitments: [UInt32: (maskingKey: ShamirCommitment, selfMask: ShamirCommitment)] = [:]
    /// Every sealed share pair any device dealt (the aggregator relays them, so it holds them all).
    var sealed: [SealedShares] = []
    /// Each device's masked input y.
    var maskedInputs: [UInt32: ModularVector] = [:]
    /// For each device, the senders of the sealed pairs the aggregator delivered to it: the
    /// neighbours whose pairwise masks it applied.
    var maskPartners: [UInt32: [UInt32]] = [:]
    /// Consistency signatures, with the set each signer was shown.
    var consistency: [UInt32: SignedSurvivorSet] = [:]
    /// Shares revealed in Unmasking, by holder.
    var revealed: [UInt32: (selfMask: [RevealedShare], maskingKey: [RevealedShare])] = [:]
    /// The colluding devices' secrets.
    var colluders: [UInt32: ColluderSecrets] = [:]

    /// An empty view of a session with `configuration`.
    init(configuration: RoundConfiguration) {
        self.configuration = configuration
    }

    /// Records what `device` sent (the consistency signature is recorded with its survivor set by
    /// ``recordConsistency(_:from:shown:)``).
    mutating func record(_ message: DeviceMessage, from device: UInt32, identity: Ed25519.PublicKey?) {
        switch message {
        case let .advertiseKeys(encryptionKey, maskingKey, signature, contribution):
            advertised[device] = AdvertisedKeys(
                device: device, encryptionKey: encryptionKey, maskingKey: maskingKey, signature: signature,
                identityKey: identity, placementContribution: contribution)
        case let .shareKeys(maskingKeyCommitment, selfMaskCommitment, shares):
            commitments[device] = (maskingKeyCommitment, selfMaskCommitment)
            sealed += shares
        case let .maskedInput(vector):
            maskedInputs[device] = vector
        case .consistencySignature:
            break
        case let .unmaskingShares(selfMaskShares, maskingKeyShares):
            revealed[device] = (selfMaskShares, maskingKeyShares)
        }
    }

    /// Records a consistency signature over the set `shown` to `device`.
    mutating func recordConsistency(_ message: DeviceMessage, from device: UInt32, shown: [UInt32]) {
        if case let .consistencySignature(signature) = message {
            consistency[device] = SignedSurvivorSet(survivors: shown, signature: signature)
        }
    }

    /// For each dealer, the devices holding its shares (ascending): those it was a mask partner of.
    func holdersByOwner() -> [UInt32: [UInt32]] {
        var result: [UInt32: [UInt32]] = [:]
        for (holder, partners) in maskPartners.sorted(by: { $0.key < $1.key }) {
            for owner in partners { result[owner, default: []].append(holder) }
        }
        return result
    }

    /// A colluder's signature over its consistency statement for `survivors`, made with its own
    /// identity key and round keys (nil when it is not a colluder or advertised nothing).
    func colluderSignature(_ colluder: UInt32, over survivors: [UInt32]) -> Ed25519.Signature? {
        guard let secrets = colluders[colluder], let keys = advertised[colluder] else { return nil }
        return secrets.identity.signature(for: ProtocolEncoding.consistencyStatement(
            transcript: ProtocolEncoding.roundTranscript(configuration), device: colluder,
            encryptionKey: keys.encryptionKey, maskingKey: keys.maskingKey, survivors: survivors))
    }
}
