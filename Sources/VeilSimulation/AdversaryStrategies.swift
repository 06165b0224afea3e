import VeilCrypto
import VeilProtocol

/// The strategies other than targeted placement (`PlacementGrinding.swift`).
extension AdversaryRun {
    /// Starts a session of `configuration`: every device is asked for its keys (honest devices
    /// record the round id in `ledgers`, the fleet's own unless given), and all of them are
    /// given to the server but `withheld`.
    mutating func started(
        _ configuration: RoundConfiguration, secret: [UInt8]?, schedule: [UInt32: Phase], ledgers given: [SignedRounds]? = nil,
        withholding withheld: Set<UInt32> = []
    ) -> AdversarialSession {
        var s = session(configuration, placementSecret: secret, silentBefore: schedule)
        var ledgers: [SignedRounds]? = given ?? self.ledgers
        let messages = s.collectAdvertisements(ledgers: &ledgers)
        if given == nil { self.ledgers = ledgers! }
        s.deliver(messages, withholding: withheld)
        return s
    }

    /// The report of a strategy that could not start: its only sub-round says why.
    func unavailable(_ strategy: AdversaryStrategy, _ why: String) -> AdversaryStrategyReport {
        let round = AdversarySubRound(
            name: "not run", configuration: "", outcome: why, honestInvited: 0, targeted: 0, targetedRefused: 0, refusals: [:],
            refusalExamples: [:], removedByServer: [:], victims: [], devicesChecked: 0, recovered: [], notes: [])
        return AdversaryStrategyReport(strategy: strategy, subRounds: [round], expectationMet: false, verdict: "not run: \(why)")
    }

    /// downgrade: one sub-round per policy rule. No device drops, so every honest device sees
    /// the offer; each must refuse it before AdvertiseKeys.
    mutating func downgrade() -> AdversaryStrategyReport {
        let k = parameters.degree
        var offers: [(name: String, cohort: Int?, graph: GraphKind?, threshold: Int?, model: ThreatModel)] = [
            ("honest-but-curious instead of active", nil, nil, nil, .honestButCurious),
            ("t = 1", nil, nil, 1, .active),
            ("2t ≤ k (t = \(k / 2), k = \(k))", nil, nil, k / 2, .active),
            ("n = 3", 3, .complete, 2, .active),
        ]
        if scenario.devices >= 7 { offers.append(("a sparse graph that misses the bound (k = 4, t = 3)", nil, .harary(degree: 4), 3, .active)) }
        var rounds: [AdversarySubRound] = []
        for offer in offers {
            guard case let (configuration, secret)? = try? makeConfiguration(cohort: offer.cohort, graph: offer.graph, threshold: offer.threshold, model: offer.model) else {
                continue
            }
            var s = started(configuration, secret: secret, schedule: [:])
            s.runServerPhases()
            rounds.append(subRound(offer.name, s, targeted: Set((0..<UInt32(configuration.cohortSize)).filter(s.isHonest))))
        }
        let held = rounds.allSatisfy { $0.targetedRefused == $0.targeted }
        return AdversaryStrategyReport(
            strategy: .downgrade, subRounds: rounds, expectationMet: held && !rounds.isEmpty,
            verdict: held ? "every honest device refused every downgraded round with its policy, before sending a key"
                          : "some honest devices took part in a downgraded round")
    }

    /// round-id-reuse: a first session in which the victim's masked input is "lost", so that its
    /// neighbours sign a survivor set without it; then the same configuration again, to devices
    /// with their ledgers and to devices without them.
    mutating func roundIDReuse() -> AdversaryStrategyReport {
        guard case let (configuration, secret)? = try? makeConfiguration() else { return unavailable(.roundIDReuse, "no configuration") }
        let schedule = dropSchedule("round-id-reuse")
        var first = started(configuration, secret: secret, schedule: schedule)
        first.runServerPhases(stopBefore: .maskedInputCollection)
        let graph = first.graph
        let candidates = first.server.recipients.filter { first.isHonest($0) && schedule[$0] == nil }
        guard let target = candidates.max(by: { a, b in
            let ca = graph.neighbours(of: a).count(where: colluders.contains), cb = graph.neighbours(of: b).count(where: colluders.contains)
            return ca != cb ? ca < cb : a > b
        }) else { return unavailable(.roundIDReuse, "the first session has no honest survivor") }
        first.exchangeOpenPhase(withhold: { d, _ in d == target })
        first.runServerPhases()
        guard case let .finished(firstResult)? = first.outcome else { return unavailable(.roundIDReuse, "the first session did not finish: \(outcomeText(first))") }
        var rounds = [subRound("first session: the victim's masked input withheld, so it is unmasked as dropped", first, targeted: [], victims: [target])]

        // Layer 1: the devices remember the round id.
        var reused = started(configuration, secret: secret, schedule: schedule)
        reused.runServerPhases()
        let asked = Set((0..<UInt32(configuration.cohortSize)).filter { reused.isHonest($0) && !reused.isSilent($0, before: .advertiseKeys) })
        rounds.append(subRound("the same round id again, to devices with their ledger", reused, targeted: asked))

        // Layer 2: devices without a ledger run it; the replayed signatures must not verify.
        var fresh = started(configuration, secret: secret, schedule: schedule, ledgers: Array(repeating: SignedRounds(), count: scenario.devices))
        fresh.runServerPhases(stopBefore: .consistencyCheck)
        var notes = ["\(first.view.consistency.count) consistency signatures over the first session's survivor set (without the victim) replayed"]
        var plan = UnmaskingPlan()
        if fresh.server.phase == .consistencyCheck, let pick = victim(in: fresh, preferred: target), pick.victim == target {
            for a in pick.claim { plan.shownSurvivors[a] = firstResult.survivors }
            plan.replayed = first.view.consistency
            fresh.runLatePhases(plan)
            let transcript = ProtocolEncoding.roundTranscript(configuration)
            let verifying = first.view.consistency.count(where: { signer, replay in
                guard let keys = fresh.view.advertised[signer] else { return false }
                return identities[Int(signer)].publicKey.isValidSignature(replay.signature, for: ProtocolEncoding.consistencyStatement(
                    transcript: transcript, device: signer, encryptionKey: keys.encryptionKey, maskingKey: keys.maskingKey, survivors: replay.survivors))
            })
            notes.append("\(verifying) of them verify under the signers' keys of this session (the statement binds each signer's fresh round keys)")
            notes.append("\(pick.claim.count) honest holders of the victim shown the first session's set, \(pick.colluding.count) colluding holders, t = \(configuration.threshold)")
        } else {
            notes.append("the session without ledgers did not reach the consistency check with the victim: \(outcomeText(fresh))")
        }
        let views = [first.view, reused.view, fresh.view]
        let all = findings(views)
        rounds.append(subRound("the same round id again, to devices without a ledger, with the replayed signatures", fresh,
                               targeted: fresh.reached(plan), victims: [target], findings: all, notes: notes))
        let held = rounds[1].targetedRefused == rounds[1].targeted && rounds[1].targeted > 0
            && rounds[2].targetedRefused == rounds[2].targeted && rounds[2].targeted > 0
        return AdversaryStrategyReport(
            strategy: .roundIDReuse, subRounds: rounds, expectationMet: held,
            verdict: held ? "devices with a ledger refused the reused round id before signing; devices without one refused the replayed signatures, which are bound to the first session's keys"
                          : "a reused round id or a replayed signature was accepted")
    }

    /// split-view: one session up to ConsistencyCheck, then two branches (each a possible world,
    /// checked on its own): the victim's fewest-needed honest holders are shown a survivor set
    /// without it (with every signature the aggregator can get for that set), or told it dropped
    /// although they signed it as a survivor.
    mutating func splitView() -> AdversaryStrategyReport {
        guard case let (configuration, secret)? = try? makeConfiguration() else { return unavailable(.splitView, "no configuration") }
        var s = started(configuration, secret: secret, schedule: dropSchedule("split-view"))
        s.runServerPhases(stopBefore: .consistencyCheck)
        guard s.server.phase == .consistencyCheck, let pick = victim(in: s) else { return unavailable(.splitView, outcomeText(s)) }
        let without = s.server.survivorSet.filter { $0 != pick.victim }
        let need = 2 * configuration.threshold - configuration.degree
        let common = "victim \(pick.victim): \(pick.colluding.count) colluding holders, \(pick.claim.count) honest holders targeted, "
            + "\(pick.rest.count) told the truth; both kinds of t shares need 2t − k = \(need) colluding holders"
        var shown = s, claimed = s
        var shownPlan = UnmaskingPlan()
        for a in pick.claim { shownPlan.shownSurvivors[a] = without }
        shown.runLatePhases(shownPlan)
        let served = pick.claim.count(where: { a in
            guard shown.view.consistency[a] != nil, case let .unmaskingRequest(_, _, signatures) = shown.unmaskingRequest(for: a, shownPlan) else { return false }
            return signatures.count >= configuration.threshold
        })
        var claimedPlan = UnmaskingPlan()
        for a in pick.claim { claimedPlan.claimedDropped[a] = pick.victim }
        claimed.runLatePhases(claimedPlan)
        let rounds = [
            subRound("U3 without the victim shown to some of its neighbours", shown, targeted: shown.reached(shownPlan), victims: [pick.victim],
                     notes: [common, "\(served) of the targeted devices were offered t valid signatures over that set (honest co-signers and colluders)"]),
            subRound("the victim claimed dropped to neighbours that signed it as a survivor", claimed, targeted: claimed.reached(claimedPlan),
                     victims: [pick.victim], notes: [common]),
        ]
        let held = rounds[1].targetedRefused == rounds[1].targeted && rounds[1].targeted > 0
        return AdversaryStrategyReport(
            strategy: .splitView, subRounds: rounds, expectationMet: held,
            verdict: held ? "neighbours refused a split that contradicts the set they signed; a split survivor set left the aggregator short of t shares of one kind"
                          : "a neighbour revealed a share against the survivor set it signed")
    }

    /// both-shares: every honest holder of the victim is asked for both of its shares.
    mutating func bothShares() -> AdversaryStrategyReport {
        guard case let (configuration, secret)? = try? makeConfiguration() else { return unavailable(.bothShares, "no configuration") }
        var s = started(configuration, secret: secret, schedule: dropSchedule("both-shares"))
        s.runServerPhases(stopBefore: .consistencyCheck)
        guard s.server.phase == .consistencyCheck, let pick = victim(in: s) else { return unavailable(.bothShares, outcomeText(s)) }
        var plan = UnmaskingPlan()
        for h in pick.claim + pick.rest { plan.askedForBoth[h] = pick.victim }
        s.runLatePhases(plan)
        let round = subRound("both shares of the victim asked of its honest holders", s, targeted: s.reached(plan), victims: [pick.victim],
                             notes: ["victim \(pick.victim): \(pick.colluding.count) colluding holders, t = \(configuration.threshold)"])
        let held = round.targetedRefused == round.targeted && round.targeted > 0
        return AdversaryStrategyReport(
            strategy: .bothShares, subRounds: [round], expectationMet: held,
            verdict: held ? "every holder refused to reveal both shares of one neighbour" : "a holder revealed both shares of one neighbour")
    }

    /// low-order-key-device: a colluding device advertises a small-order masking key, signed
    /// with its own identity key. The honest aggregator must remove it; a relaying aggregator
    /// must be refused by the device's neighbours, who blame the device, not the aggregator.
    mutating func lowOrderKeyDevice() -> AdversaryStrategyReport {
        let bad = colluders.min() ?? 0
        let lowOrder = try! X25519.PublicKey(rawRepresentation: [1] + [UInt8](repeating: 0, count: 31))
        var rounds: [AdversarySubRound] = []
        var held = true
        for relay in [false, true] {
            guard case let (configuration, secret)? = try? makeConfiguration() else { return unavailable(.lowOrderKeyDevice, "no configuration") }
            var s = session(configuration, placementSecret: secret, silentBefore: dropSchedule("low-order-key-\(relay)"))
            var ledgers: [SignedRounds]? = self.ledgers
            var messages = s.collectAdvertisements(ledgers: &ledgers)
            self.ledgers = ledgers!
            if case let .advertiseKeys(encryptionKey, _, _, contribution)? = messages[bad] {
                let statement = ProtocolEncoding.advertiseStatement(
                    transcript: ProtocolEncoding.roundTranscript(configuration), device: bad, encryptionKey: encryptionKey, maskingKey: lowOrder,
                    placementContribution: contribution)
                messages[bad] = .advertiseKeys(
                    encryptionKey: encryptionKey, maskingKey: lowOrder, signature: identities[Int(bad)].signature(for: statement),
                    placementContribution: contribution)
            }
            s.deliver(messages)
            var targeted: Set<UInt32> = []
            if relay, let entry = s.view.advertised[bad] {
                s.runServerPhases(stopBefore: .shareKeys)
                let graph = s.graph
                targeted = Set(s.server.recipients.filter { s.isHonest($0) && graph.areNeighbours($0, bad) && !s.isSilent($0, before: .shareKeys) })
                s.exchangeOpenPhase(tamper: { d, message in
                    guard graph.areNeighbours(d, bad), case let .neighbourKeys(entries, placement) = message else { return message }
                    return .neighbourKeys((entries + [entry]).sorted { $0.device < $1.device }, placement: placement)
                })
            }
            s.runServerPhases()
            let removed = s.removedByServer[bad]?.kind == .unusableKey(device: bad)
            let blamed = targeted.allSatisfy { s.refusals[$0]?.kind == .unusableKey(device: bad) && s.refusals[$0]!.isCausedByPeer }
            held = held && removed && (relay ? blamed && !targeted.isEmpty : finishedCorrectly(s))
            rounds.append(subRound(
                relay ? "the aggregator relays device \(bad)'s key to its neighbours anyway" : "an honest aggregator receives device \(bad)'s small-order key",
                s, targeted: targeted,
                notes: [removed ? "the server removed device \(bad) at AdvertiseKeys (unusableKey)" : "the server did NOT remove device \(bad)"]
                    + (relay ? ["\(targeted.count(where: { s.refusals[$0]?.isCausedByPeer == true })) neighbours blamed device \(bad) (a peer fault) before dealing any share"] : [])))
        }
        return AdversaryStrategyReport(
            strategy: .lowOrderKeyDevice, subRounds: rounds, expectationMet: held,
            verdict: held ? "the server removed the device and the others finished with the exact sum; neighbours given its key refused it as a peer fault"
                          : "a small-order key was not handled as SPEC.md §6.0 and §13.4 say")
    }
}
