import Dispatch
import VeilCrypto

extension AggregationSession {
    /// A secret the server must reconstruct: a survivor's self-mask seed or a dropped device's
    /// masking key.
    struct Reconstruction: Sendable {
        let owner: UInt32
        let isSelfMask: Bool
        let shares: [ShamirShare]
        /// The dealer's digests (its whole table, shared, not copied) and, for each share in
        /// `shares`, the index of that share's digest in it (§4.11).
        let digestTable: [ShareDigest]
        let digestOffsets: [Int]

        /// Whether `digest` is the dealer's digest of share number `index`.
        func matches(_ digest: ShareDigest, at index: Int) -> Bool {
            digestTable[digestOffsets[index]] == digest
        }
    }

    /// How many wrong shares the bounded fallback decoder corrects (it reads at most t + 2 × this
    /// many shares). Every share it sees already matched its dealer's digest, so it runs only when
    /// the dealer itself dealt shares that disagree with its commitment.
    static let fallbackCorrectableErrors = 8

    /// One mask to remove from the sum.
    enum MaskJob: Sendable {
        case selfMask(owner: UInt32, seed: SecretBytes)
        case pairwise(dropped: UInt32, survivor: UInt32, droppedKey: X25519.PrivateKey)
    }

    /// Reconstructs every needed secret and removes every mask, on `workers` threads.
    mutating func finishUnmasking(using random: inout some RandomSource) -> AggregationOutcome? {
        let t = configuration.threshold
        // Gather each needed secret's shares in parallel: once per device pair, and bound by
        // memory latency rather than arithmetic.
        let candidates = (0..<UInt32(configuration.cohortSize)).filter { inShareSet[Int($0)] }
        let session = self
        let gathered = ParallelMap.run(count: candidates.count, workers: workers) { index in
            session.reconstruction(of: candidates[index], threshold: t)
        }
        var reconstructions = [Reconstruction]()
        reconstructions.reserveCapacity(gathered.count)
        for item in gathered {
            switch item {
            case nil: continue
            case let .success(reconstruction)?: reconstructions.append(reconstruction)
            case let .failure(reason)?: return abort(reason)
            }
        }

        // Phase A: reconstruct secrets in parallel. Each worker has its own random source for the
        // robust path, seeded from the caller's.
        let seeds = (0..<workers).map { _ in SecretBytes(randomCount: 32, using: &random) }
        let items = reconstructions
        let maskingKeys = records.map(\.maskingKey)
        let transcript = self.transcript
        let results = ParallelMap.run(count: items.count, workers: workers, seeds: seeds) { index, rng, cache in
            Self.reconstruct(
                items[index], threshold: t, transcript: transcript, maskingKey: maskingKeys[Int(items[index].owner)]!, rng: &rng, cache: &cache)
        }
        var jobs = [MaskJob]()
        for (item, result) in zip(reconstructions, results) {
            statistics.reconstructions += 1
            switch result {
            case let .failure(reason):
                return abort(reason)
            case let .success(outcome):
                if outcome.usedRobustPath { statistics.robustReconstructions += 1 }
                for bad in outcome.badHolders where misbehaving[bad] == nil {
                    misbehaving[bad] = .wrongShareSet("revealed a share for device \(item.owner) that does not match the dealer's digest")
                }
                if item.isSelfMask {
                    jobs.append(.selfMask(owner: item.owner, seed: outcome.secret))
                } else {
                    let key = try! X25519.PrivateKey(rawRepresentation: outcome.secret)
                    for survivor in graph.neighbours(of: item.owner) where inSurvivors[Int(survivor)] {
                        jobs.append(.pairwise(dropped: item.owner, survivor: survivor, droppedKey: key))
                    }
                }
            }
        }

        // Phase B: expand and remove masks in parallel, one partial sum per worker.
        let configuration = self.configuration
        let survivorKeys = maskingKeys
        let allJobs = jobs
        let partials = ParallelReduce.run(
            count: jobs.count, workers: workers, algorithm: configuration.prg,
            makePartial: { ModularVector(zerosOfCount: configuration.dimension, bitWidth: configuration.bitWidth) }
        ) { index, partial, generator in
            Self.remove(allJobs[index], from: &partial, configuration: configuration, survivorKeys: survivorKeys, generator: generator)
        }
        statistics.maskExpansions += jobs.count
        for partial in partials {
            switch partial {
            case let .success(vector): accumulator.add(vector)
            case let .failure(reason): return abort(reason)
            }
        }
        let result = AggregationResult(
            roundID: configuration.roundID, sum: accumulator, survivors: survivors,
            droppedInPhase: droppedInPhase, misbehaving: misbehaving)
        phase = nil
        recipients = []
        outcome = .finished(result)
        return outcome
    }

    /// The shares of device `d`'s secret the server needs: its self-mask seed when it survived,
    /// its masking key when it dropped with a surviving neighbour (nil when neither is needed),
    /// each with the index of its dealer's digest; a failure when fewer than t are usable.
    func reconstruction(of d: UInt32, threshold t: Int) -> Result<Reconstruction, RoundAbortReason>? {
        let neighbours = graph.neighbours(of: d)
        let isSurvivor = inSurvivors[Int(d)]
        guard isSurvivor || neighbours.contains(where: { inSurvivors[Int($0)] }) else { return nil }
        var shares = [ShamirShare]()
        var offsets = [Int]()
        shares.reserveCapacity(neighbours.count)
        offsets.reserveCapacity(neighbours.count)
        let commitment = (isSurvivor ? records[Int(d)].selfMaskCommitment : records[Int(d)].maskingKeyCommitment)!
        let holders = records[Int(d)].shareHolders
        for holder in neighbours where misbehaving[holder] == nil {
            guard let list = isSurvivor ? records[Int(holder)].selfMaskShares : records[Int(holder)].maskingKeyShares else { continue }
            let position = list.partitioningIndex { $0.owner >= d }
            guard position < list.count, list[position].owner == d else { continue }
            let slot = holders.partitioningIndex { $0 >= holder }
            guard slot < holders.count, holders[slot] == holder else { continue }
            let offset = 2 * slot + (isSurvivor ? 1 : 0)
            if let share = try? ShamirShare(
                x: ProtocolEncoding.shareXCoordinate(holder: holder), values: list[position].values, commitment: commitment) {
                shares.append(share)
                offsets.append(offset)
            }
        }
        guard shares.count >= t else { return .failure(.notEnoughShares(device: d, have: shares.count, need: t)) }
        return .success(Reconstruction(
            owner: d, isSelfMask: isSurvivor, shares: shares, digestTable: records[Int(d)].shareDigests, digestOffsets: offsets))
    }

    /// A verified reconstruction.
    struct ReconstructedSecret: Sendable {
        let secret: SecretBytes
        let usedRobustPath: Bool
        let badHolders: [UInt32]
    }

    /// Reconstructs from the first t shares that match their dealer's digests (§7), checking
    /// digests only until t match; a holder whose share does not match is named, with the digest as
    /// evidence. Masking keys are also checked against the advertised public key. Only when t
    /// matching shares still disagree with the commitment (the dealer dealt inconsistent shares)
    /// does the bounded decoder run, and if it fails the dealer is named.
    static func reconstruct(
        _ item: Reconstruction, threshold t: Int, transcript: [UInt8], maskingKey: X25519.PublicKey,
        rng: inout SeededRandomSource, cache: inout [[UInt32]: LagrangeBasis]
    ) -> Result<ReconstructedSecret, RoundAbortReason> {
        func acceptable(_ secret: SecretBytes) -> Bool {
            item.isSelfMask || (try? X25519.PrivateKey(rawRepresentation: secret))?.publicKey == maskingKey
        }
        let kind: ShareKind = item.isSelfMask ? .selfMask : .maskingKey
        var matching = [ShamirShare]()
        var badHolders = [UInt32]()
        var next = 0
        func check(upTo count: Int) {
            while matching.count < count, next < item.shares.count {
                let share = item.shares[next]
                let holder = share.x - 1
                if item.matches(
                    ProtocolEncoding.shareDigest(transcript: transcript, dealer: item.owner, holder: holder, kind: kind, values: share.values),
                    at: next) {
                    matching.append(share)
                } else {
                    badHolders.append(holder)
                }
                next += 1
            }
        }
        check(upTo: t)
        guard matching.count >= t else { return .failure(.notEnoughShares(device: item.owner, have: matching.count, need: t)) }
        let first = Array(matching.prefix(t))
        let xs = first.map(\.x)
        let basis: LagrangeBasis
        if let cached = cache[xs] {
            basis = cached
        } else {
            basis = try! LagrangeBasis(xCoordinates: xs)
            cache[xs] = basis
        }
        if let secret = try? ShamirSecretSharing.reconstruct(first, basis: basis), acceptable(secret) {
            return .success(ReconstructedSecret(secret: secret, usedRobustPath: false, badHolders: badHolders))
        }
        // Every share here matched the dealer's digest, so the dealer dealt shares that do not
        // interpolate its committed secret. Try the bounded decoder on a few more matching shares.
        check(upTo: t + 2 * fallbackCorrectableErrors)
        guard let robust = try? ShamirSecretSharing.reconstructIdentifyingBadShares(
                matching, threshold: t, using: &rng, maximumAttempts: 16, maximumCorrectableErrors: fallbackCorrectableErrors),
              acceptable(robust.secret) else {
            return .failure(.reconstructionFailed(device: item.owner, suspects: [item.owner]))
        }
        // The shares the decoder found wrong still matched the dealer's digests: the dealer's
        // fault, not the holders', so nobody else is named.
        return .success(ReconstructedSecret(secret: robust.secret, usedRobustPath: true, badHolders: badHolders))
    }

    /// Removes one mask from `partial`, which accumulates corrections to add to the sum.
    static func remove(
        _ job: MaskJob, from partial: inout ModularVector, configuration: RoundConfiguration,
        survivorKeys: [X25519.PublicKey?], generator: MaskGenerator
    ) -> RoundAbortReason? {
        let round = configuration.roundID
        do {
            switch job {
            case let .selfMask(owner, seed):
                try partial.applyMask(seed: seed, label: ProtocolEncoding.selfMaskLabel(round: round, device: owner), generator: generator, subtracting: true)
            case let .pairwise(dropped, survivor, droppedKey):
                let shared = try droppedKey.sharedSecret(with: survivorKeys[Int(survivor)]!)
                let seed = try ProtocolEncoding.pairwiseSeed(sharedSecret: shared, round: round, dropped, survivor)
                // The survivor added the mask if it has the lower index; undo exactly that.
                try partial.applyMask(
                    seed: seed, label: ProtocolEncoding.pairwiseMaskLabel(round: round, dropped, survivor), generator: generator,
                    subtracting: ProtocolEncoding.addsPairwiseMask(survivor, with: dropped))
            }
            return nil
        } catch {
            let owner: UInt32
            switch job {
            case let .selfMask(o, _): owner = o
            case let .pairwise(d, _, _): owner = d
            }
            return .reconstructionFailed(device: owner, suspects: [])
        }
    }
}
