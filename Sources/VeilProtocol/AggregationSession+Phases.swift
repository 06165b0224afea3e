public import VeilCrypto

extension AggregationSession {
    /// Closes the current phase with the devices that answered, and opens the next one.
    ///
    /// Returns the outcome when the round ended (finished or aborted), else nil; then
    /// ``recipients`` lists the devices to send ``outgoingMessage(for:)`` to.
    public mutating func closePhase(using random: inout some RandomSource) -> AggregationOutcome? {
        guard let phase else { return outcome }
        let n = configuration.cohortSize
        let t = configuration.threshold
        let all = (0..<UInt32(n)).map { $0 }
        droppedInPhase[phase] = all.filter { expectedBefore(phase, $0) && !records[Int($0)].answered(phase) && misbehaving[$0] == nil }

        switch phase {
        case .advertiseKeys:
            let advertised = all.map { records[Int($0)].maskingKey != nil && misbehaving[$0] == nil }
            if let secret = placementSecret {
                // §5.1: the ring order is fixed now, from s and the accepted contributions.
                var contributions: [UInt32: [UInt8]] = [:]
                for d in all where advertised[Int(d)] { contributions[d] = records[Int(d)].placementContribution }
                let tree = Placement.Tree(cohortSize: n, contributions: contributions)
                placementTree = tree
                graph = NeighbourGraph(configuration: configuration, placementSeed: Placement.seed(transcript: transcript, secret: secret, root: tree.root))
            }
            inKeySet = pruned(advertised)
            return open(.shareKeys, members: inKeySet)
        case .shareKeys:
            inShareSet = pruned(all.map { inKeySet[Int($0)] && records[Int($0)].sharedKeys && misbehaving[$0] == nil })
            // Release the shares of devices that were pruned: they are never delivered.
            for d in all where !inShareSet[Int(d)] { records[Int(d)].sealedShares = [] }
            incomingShares = IncomingShareIndex(records: records, dealers: inShareSet)
            return open(.maskedInputCollection, members: inShareSet)
        case .maskedInputCollection:
            // Sealed shares have all been delivered: release them.
            for d in all { records[Int(d)].sealedShares = [] }
            incomingShares = nil
            inSurvivors = all.map { inShareSet[Int($0)] && records[Int($0)].maskedInput }
            survivors = all.filter { inSurvivors[Int($0)] }
            guard survivors.count > t, survivors.count >= minimumSurvivors else {
                return abort(.tooFewDevices(phase: phase, remaining: survivors.count, needed: max(t + 1, minimumSurvivors)))
            }
            if let short = firstUnrecoverableDevice(responders: inSurvivors) { return abort(short) }
            return open(configuration.threatModel == .active ? .consistencyCheck : .unmasking, members: inSurvivors)
        case .consistencyCheck:
            signers = all.map { inSurvivors[Int($0)] && records[Int($0)].consistencySignature != nil }
            if let short = firstUnrecoverableDevice(responders: signers) { return abort(short) }
            // A signer with fewer than t signing neighbours would refuse the request: skip it.
            let askable = all.map { signers[Int($0)] && graph.neighbours(of: $0).count(where: { signers[Int($0)] }) >= t }
            return open(.unmasking, members: askable)
        case .unmasking:
            return finishUnmasking(using: &random)
        }
    }

    /// The message for `device` in the phase now open, or nil if it is not a recipient.
    public func outgoingMessage(for device: UInt32) -> ServerMessage? {
        guard let phase, Int(device) < configuration.cohortSize, expected[Int(device)] || records[Int(device)].answered(phase) else { return nil }
        let neighbours = graph.neighbours(of: device)
        switch phase {
        case .advertiseKeys:
            return nil
        case .shareKeys:
            let reveal = placementTree.map { PlacementReveal(secret: placementSecret!, root: $0.root, path: $0.path(for: device)) }
            // Field by field, not whole records: this runs once per device pair.
            let active = !identities.isEmpty
            return .neighbourKeys(neighbours.filter { inKeySet[Int($0)] }.map { j in
                AdvertisedKeys(
                    device: j, encryptionKey: records[Int(j)].encryptionKey!, maskingKey: records[Int(j)].maskingKey!,
                    signature: records[Int(j)].signature, identityKey: active ? identities[j] : nil,
                    placementContribution: records[Int(j)].placementContribution)
            }, placement: reveal)
        case .maskedInputCollection:
            // Ascending by sender, as the neighbour list is: the index was built in sender order.
            return .sealedShares(incomingShares!.entries(for: device).map { records[Int($0.sender)].sealedShares[Int($0.position)] })
        case .consistencyCheck:
            return .consistencyCheck(survivors: survivors)
        case .unmasking:
            let sharers = neighbours.filter { inShareSet[Int($0)] }
            var signatures: [UInt32: Ed25519.Signature] = [:]
            if configuration.threatModel == .active {
                for j in sharers where signers[Int(j)] { signatures[j] = records[Int(j)].consistencySignature }
            }
            return .unmaskingRequest(
                survivingNeighbours: sharers.filter { inSurvivors[Int($0)] },
                droppedNeighbours: sharers.filter { !inSurvivors[Int($0)] },
                signatures: signatures)
        }
    }

    /// Marks the round cancelled (for example on shutdown).
    public mutating func cancel(reason: String) -> AggregationOutcome {
        abort(.cancelled(reason))!
    }

    // MARK: - Internals

    /// Whether `device` was expected to answer `phase`.
    func expectedBefore(_ phase: Phase, _ device: UInt32) -> Bool {
        switch phase {
        case .advertiseKeys: return true
        case .shareKeys: return inKeySet[Int(device)]
        case .maskedInputCollection: return inShareSet[Int(device)]
        case .consistencyCheck: return inSurvivors[Int(device)]
        case .unmasking: return recipients.contains(device)
        }
    }

    /// Repeatedly removes members with fewer than t member neighbours: such a device's secrets
    /// could not be reconstructed, and it would abort itself.
    func pruned(_ members: [Bool]) -> [Bool] {
        var members = members
        let t = configuration.threshold
        var changed = true
        while changed {
            changed = false
            for d in 0..<members.count where members[d] {
                if graph.neighbours(of: UInt32(d)).count(where: { members[Int($0)] }) < t {
                    members[d] = false
                    changed = true
                }
            }
        }
        return members
    }

    /// The first device whose mask cannot be removed because fewer than t of its neighbours can
    /// answer the unmasking request.
    func firstUnrecoverableDevice(responders: [Bool]) -> RoundAbortReason? {
        let t = configuration.threshold
        for d in 0..<configuration.cohortSize where inShareSet[d] {
            let neighbours = graph.neighbours(of: UInt32(d))
            let answering = neighbours.count(where: { responders[Int($0)] })
            let needed = inSurvivors[d] || neighbours.contains(where: { inSurvivors[Int($0)] })
            if needed && answering < t { return .notEnoughShares(device: UInt32(d), have: answering, need: t) }
        }
        return nil
    }

    /// Opens `next` with `members` as recipients, or aborts when too few remain.
    mutating func open(_ next: Phase, members: [Bool]) -> AggregationOutcome? {
        let count = members.count(where: { $0 })
        guard count > configuration.threshold else {
            return abort(.tooFewDevices(phase: phase!, remaining: count, needed: configuration.threshold + 1))
        }
        phase = next
        expected = members
        expectedRemaining = count
        recipients = (0..<UInt32(configuration.cohortSize)).filter { members[Int($0)] }
        return nil
    }

    mutating func abort(_ reason: RoundAbortReason) -> AggregationOutcome? {
        phase = nil
        recipients = []
        for i in records.indices { records[i].sealedShares = [] }
        incomingShares = nil
        outcome = .aborted(reason)
        return outcome
    }
}

/// Where every device's incoming sealed shares sit, built once when ShareKeys closes: for each
/// recipient, the dealers in the share set (ascending) and the position of its pair in each
/// dealer's list, so that building a request looks nothing up (a binary search per device pair in
/// each dealer's list missed the cache at almost every step).
struct IncomingShareIndex: Sendable {
    struct Entry: Sendable {
        let sender: UInt32
        let position: UInt32
    }

    /// Recipient r's entries are `storage[offsets[r]..<offsets[r + 1]]`.
    private let offsets: [Int]
    private let storage: [Entry]

    init(records: [DeviceRecord], dealers: [Bool]) {
        var counts = [Int](repeating: 0, count: records.count + 1)
        for (sender, record) in records.enumerated() where dealers[sender] {
            for r in record.shareHolders { counts[Int(r) + 1] += 1 }
        }
        for i in 1..<counts.count { counts[i] += counts[i - 1] }
        offsets = counts
        var next = counts
        var storage = [Entry](repeating: Entry(sender: 0, position: 0), count: counts.last!)
        for (sender, record) in records.enumerated() where dealers[sender] {
            for (position, r) in record.shareHolders.enumerated() {
                storage[next[Int(r)]] = Entry(sender: UInt32(sender), position: UInt32(position))
                next[Int(r)] += 1
            }
        }
        self.storage = storage
    }

    /// `recipient`'s incoming pairs, ascending by sender.
    func entries(for recipient: UInt32) -> ArraySlice<Entry> { storage[offsets[Int(recipient)]..<offsets[Int(recipient) + 1]] }
}

extension Array {
    /// The first index whose element satisfies `predicate`, for an array partitioned by it.
    func partitioningIndex(where predicate: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if predicate(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
