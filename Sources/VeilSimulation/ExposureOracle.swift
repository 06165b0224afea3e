import VeilCrypto
import VeilProtocol

/// What the ``ExposureOracle`` concluded about one honest device.
public struct ExposureFinding: Codable, Sendable, Equatable {
    /// The device (its index in the sessions it took part in).
    public let device: UInt32
    /// Whether the oracle rebuilt the device's exact input from what the aggregator saw.
    public let recovered: Bool
    /// What the oracle had: shares of each secret against t, and the masks it could remove, in the
    /// session where it got furthest.
    public let detail: String

    /// "recovered" or "not recovered".
    public var verdict: String { recovered ? "recovered" : "not recovered" }
}

/// Tries to recover honest devices' inputs from everything a malicious aggregator saw.
///
/// From each ``SessionView`` it gathers every share it can hold: the shares devices revealed in
/// Unmasking, and the share pairs sealed to its colluding devices, which it opens with their
/// encryption keys (exactly as the device would). It rebuilds every self-mask seed β and masking
/// key s_sk for which it has t shares (Shamir from `VeilCrypto`, checked against the dealer's
/// commitment, and s_sk against the advertised s_pk), adds its colluders' own secrets, and then,
/// for each masked input y it saw, removes the self mask and every pairwise mask it can derive
/// with the PRG, as the server's unmasking does. A device counts as recovered only when the
/// result equals its true input.
///
/// Secrets are pooled across sessions by commitment and public key, so a second session under a
/// reused round id is checked against the first; fresh keys mean nothing carries over.
enum ExposureOracle {
    /// The shares the aggregator holds of one owner's two secrets in one session, by x-coordinate.
    struct Holdings {
        var selfMask: [UInt32: SecretBytes] = [:]
        var maskingKey: [UInt32: SecretBytes] = [:]
    }

    /// Every secret the oracle rebuilt or was handed.
    struct Secrets {
        var selfMaskSeeds: [ShamirCommitment: SecretBytes] = [:]
        var maskingKeys: [X25519.PublicKey: X25519.PrivateKey] = [:]
    }

    /// One finding for each of `devices` that sent a masked input in some session; `input` gives
    /// a device's true input.
    static func examine(_ views: [SessionView], devices: [UInt32], input: (UInt32) -> ModularVector) -> [ExposureFinding] {
        var secrets = Secrets()
        let holdings = views.map { gather($0, into: &secrets) }
        return devices.compactMap { device in
            var best: (score: Int, finding: ExposureFinding)?
            for (view, held) in zip(views, holdings) where view.maskedInputs[device] != nil {
                let attempt = unmask(device, in: view, held: held[device] ?? Holdings(), secrets: secrets, input: input)
                if attempt.finding.recovered { return attempt.finding }
                if best == nil || attempt.score > best!.score { best = attempt }
            }
            return best?.finding
        }
    }

    /// Collects the shares of one session and rebuilds what t of them allow.
    static func gather(_ view: SessionView, into secrets: inout Secrets) -> [UInt32: Holdings] {
        var held: [UInt32: Holdings] = [:]
        for (device, own) in view.colluders {
            guard let keys = view.advertised[device], keys.maskingKey == own.masking.publicKey else { continue }
            secrets.maskingKeys[own.masking.publicKey] = own.masking
            if let commitment = view.commitments[device]?.selfMask { secrets.selfMaskSeeds[commitment] = own.selfMaskSeed }
        }
        // The share pairs sealed to colluders, opened with their keys.
        let round = view.configuration.roundID
        let half = ShamirSecretSharing.shareValueByteCount
        for item in view.sealed {
            guard let own = view.colluders[item.recipient], let dealer = view.advertised[item.sender],
                  let shared = try? own.encryption.sharedSecret(with: dealer.encryptionKey),
                  let opening = try? ProtocolEncoding.shareEncryptionKey(
                    sharedSecret: shared, round: round, sender: item.sender, recipient: item.recipient),
                  let plaintext = try? XChaCha20Poly1305.open(
                    item.ciphertext.bytes, key: opening.0, nonce: opening.1,
                    associatedData: ProtocolEncoding.shareAssociatedData(round: round, sender: item.sender, recipient: item.recipient))
            else { continue }
            let x = ProtocolEncoding.shareXCoordinate(holder: item.recipient)
            plaintext.withUnsafeBytes { raw in
                held[item.sender, default: Holdings()].maskingKey[x] = SecretBytes(copying: UnsafeRawBufferPointer(rebasing: raw[0..<half]))
                held[item.sender, default: Holdings()].selfMask[x] = SecretBytes(copying: UnsafeRawBufferPointer(rebasing: raw[half..<(2 * half)]))
            }
        }
        // The shares honest devices revealed.
        for (holder, shares) in view.revealed {
            let x = ProtocolEncoding.shareXCoordinate(holder: holder)
            for share in shares.selfMask { held[share.owner, default: Holdings()].selfMask[x] = share.values }
            for share in shares.maskingKey { held[share.owner, default: Holdings()].maskingKey[x] = share.values }
        }
        let t = view.configuration.threshold
        for (owner, shares) in held.sorted(by: { $0.key < $1.key }) {
            guard let commitments = view.commitments[owner] else { continue }
            if shares.selfMask.count >= t, let seed = rebuild(shares.selfMask, threshold: t, commitment: commitments.selfMask) {
                secrets.selfMaskSeeds[commitments.selfMask] = seed
            }
            if shares.maskingKey.count >= t, let advertised = view.advertised[owner],
               let raw = rebuild(shares.maskingKey, threshold: t, commitment: commitments.maskingKey),
               let key = try? X25519.PrivateKey(rawRepresentation: raw), key.publicKey == advertised.maskingKey {
                secrets.maskingKeys[key.publicKey] = key
            }
        }
        return held
    }

    /// Shamir reconstruction from t shares, checked against the commitment; the robust decoder
    /// when the first t disagree with it.
    static func rebuild(_ shares: [UInt32: SecretBytes], threshold t: Int, commitment: ShamirCommitment) -> SecretBytes? {
        let list = shares.sorted { $0.key < $1.key }.compactMap { try? ShamirShare(x: $0.key, values: $0.value, commitment: commitment) }
        guard list.count >= t else { return nil }
        if let secret = try? ShamirSecretSharing.reconstruct(list, threshold: t) { return secret }
        var random = SeededRandomSource(seed: 0, label: "exposure-oracle")
        return (try? ShamirSecretSharing.reconstructIdentifyingBadShares(list, threshold: t, using: &random))?.secret
    }

    /// Removes every mask it can from `device`'s masked input in `view`; the score says how far it
    /// got, for choosing the session to describe.
    static func unmask(
        _ device: UInt32, in view: SessionView, held: Holdings, secrets: Secrets, input: (UInt32) -> ModularVector
    ) -> (score: Int, finding: ExposureFinding) {
        let configuration = view.configuration
        let t = configuration.threshold
        let seed = view.commitments[device].flatMap { secrets.selfMaskSeeds[$0.selfMask] }
        let ownKey = view.advertised[device].flatMap { secrets.maskingKeys[$0.maskingKey] }
        let partners = view.maskPartners[device] ?? []
        // The pairwise seed with each partner, from either side's masking key.
        var pairwise: [(partner: UInt32, seed: SecretBytes)] = []
        for partner in partners {
            guard let mine = view.advertised[device]?.maskingKey, let theirs = view.advertised[partner]?.maskingKey else { continue }
            let shared = ownKey.flatMap { try? $0.sharedSecret(with: theirs) } ?? secrets.maskingKeys[theirs].flatMap { try? $0.sharedSecret(with: mine) }
            if let shared, let s = try? ProtocolEncoding.pairwiseSeed(sharedSecret: shared, round: configuration.roundID, device, partner) {
                pairwise.append((partner, s))
            }
        }
        let detail = "β \(seed != nil ? "rebuilt" : "not rebuilt") (\(held.selfMask.count) shares, t = \(t)), "
            + "s_sk \(ownKey != nil ? "rebuilt" : "not rebuilt") (\(held.maskingKey.count) shares), "
            + "pairwise masks removable \(pairwise.count) of \(partners.count)"
        let score = (seed != nil ? 1 : 0) + (ownKey != nil ? 1 : 0) + pairwise.count
        guard let seed, pairwise.count == partners.count, var vector = view.maskedInputs[device] else {
            return (score, ExposureFinding(device: device, recovered: false, detail: detail))
        }
        let generator = MaskGenerator(algorithm: configuration.prg)
        do {
            try vector.applyMask(
                seed: seed, label: ProtocolEncoding.selfMaskLabel(round: configuration.roundID, device: device),
                generator: generator, subtracting: true)
            for (partner, s) in pairwise {
                // The device added the mask if it has the lower index: undo exactly that.
                try vector.applyMask(
                    seed: s, label: ProtocolEncoding.pairwiseMaskLabel(round: configuration.roundID, device, partner),
                    generator: generator, subtracting: ProtocolEncoding.addsPairwiseMask(device, with: partner))
            }
        } catch {
            return (score, ExposureFinding(device: device, recovered: false, detail: detail + "; mask expansion failed: \(error)"))
        }
        let recovered = vector == input(device)
        return (score, ExposureFinding(
            device: device, recovered: recovered,
            detail: detail + (recovered ? "; the unmasked vector equals the device's input" : "; the unmasked vector differs from the device's input")))
    }
}
