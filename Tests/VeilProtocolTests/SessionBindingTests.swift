import Testing
import VeilCrypto
@testable import VeilProtocol

/// Issue 12, findings 2 and 4: signed statements are bound to the session (the configuration and
/// the signer's fresh round keys), and one device with an unusable key cannot stop its cohort.
@Suite struct SessionBindingTests {
    /// Runs `harness` and returns the consistency signatures the server relayed to each device.
    static func relayedSignatures(_ harness: inout RoundHarness) -> (AggregationOutcome, [UInt32: [UInt32: Ed25519.Signature]]) {
        let seen = SignatureLog()
        harness.tamperDown = { device, message in
            if case let .unmaskingRequest(_, _, signatures) = message { seen.record(device, signatures) }
            return message
        }
        let outcome = harness.run()
        return (outcome, seen.all)
    }

    /// The attack of finding 2: an aggregator runs two sessions under one round id and replays
    /// the consistency signatures it collected in the first into the second. Before the statement
    /// bound the signer's round keys, the replayed signatures verified and devices revealed shares.
    @Test func consistencySignaturesDoNotCarryOverToAnotherSessionWithTheSameRoundID() throws {
        var first = try RoundHarness(cohortSize: 8, threshold: 5, threatModel: .active, seed: 21)
        let (firstOutcome, firstSignatures) = Self.relayedSignatures(&first)
        guard case .finished = firstOutcome else { Issue.record("the first session must finish: \(firstOutcome)"); return }

        // Same configuration (same round id, seed, cohort, identities), fresh round keys.
        var second = try RoundHarness(cohortSize: 8, threshold: 5, threatModel: .active, seed: 21)
        #expect(second.configuration == first.configuration)
        second.random = SeededRandomSource(seed: 22, label: "second-session")
        var revealed = Set<UInt32>()
        second.tamperDown = { device, message in
            guard case let .unmaskingRequest(surviving, dropped, _) = message else { return message }
            return .unmaskingRequest(survivingNeighbours: surviving, droppedNeighbours: dropped, signatures: firstSignatures[device] ?? [:])
        }
        second.tamperUp = { device, message in
            if case .unmaskingShares = message { revealed.insert(device) }
            return message
        }
        _ = second.run()
        #expect(revealed.isEmpty, "devices \(revealed.sorted()) revealed shares on replayed signatures")
        #expect(second.deviceViolations.count == 8)
        for violation in second.deviceViolations.values {
            guard case .invalidSignature = violation.kind else { Issue.record("expected an invalid signature, got \(violation)"); continue }
            #expect(!violation.isCausedByPeer)
        }
    }

    @Test func theTranscriptBindsEveryConfigurationField() throws {
        var random = SeededRandomSource(seed: 5, label: "transcript")
        let round = RoundID(using: &random)
        let seed = random.bytes(count: 32)
        func transcript(n: Int = 10, m: Int = 8, b: Int = 32, prg: PRGAlgorithm = .aes128CTR, graph: GraphKind = .complete,
                        t: Int = 6, model: ThreatModel = .active, seed s: [UInt8]? = nil) throws -> [UInt8] {
            ProtocolEncoding.roundTranscript(try RoundConfiguration(
                roundID: round, roundSeed: s ?? seed, cohortSize: n, dimension: m, bitWidth: b, prg: prg, graph: graph,
                threshold: t, threatModel: model,
                placementCommitment: RoundConfiguration.requiresPlacementCommitment(threatModel: model, graph: graph)
                    ? Placement.commitment(to: seed) : nil))
        }
        let base = try transcript()
        #expect(base.count == 32)
        let variants = [
            try transcript(n: 11), try transcript(m: 9), try transcript(b: 31), try transcript(prg: .chacha20),
            try transcript(n: 12, graph: .harary(degree: 8)), try transcript(t: 7), try transcript(model: .honestButCurious),
            try transcript(seed: [UInt8](repeating: 1, count: 32)),
        ]
        #expect(Set(variants + [base]).count == variants.count + 1, "every field must change the transcript")
    }

    /// Finding 4: a device that advertises a key of small order is removed at AdvertiseKeys and
    /// the others finish; before, every honest neighbour aborted and the round with them.
    @Test func aSmallOrderKeyRemovesOnlyItsOwner() throws {
        for threatModel in ThreatModel.allCases {
            var harness = try RoundHarness(cohortSize: 8, threshold: 5, threatModel: threatModel, seed: 31)
            let zero = try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 32))
            harness.tamperUp = { device, message in
                guard device == 2, case let .advertiseKeys(encryptionKey, _, signature, contribution) = message else { return message }
                return .advertiseKeys(encryptionKey: encryptionKey, maskingKey: zero, signature: signature, placementContribution: contribution)
            }
            let outcome = harness.run()
            guard case let .finished(result) = outcome else { Issue.record("\(threatModel): round did not finish: \(outcome)"); continue }
            // In the active model the tampered key no longer matches the signature, which the
            // server checks first; either way device 2 is removed and nobody else is.
            let kind = try #require(harness.serverViolations[2]).kind
            #expect(kind == .unusableKey(device: 2) || kind == .invalidSignature(signer: 2))
            #expect(result.survivors == [0, 1, 3, 4, 5, 6, 7])
            #expect(result.sum == harness.plaintextSum(of: result.survivors))
            #expect(harness.deviceViolations.isEmpty)
        }
    }

    /// A device advertising a small-order key it really signed (its own choice, active model):
    /// the server removes it without any honest device aborting.
    @Test func aSignedSmallOrderKeyIsRemovedByTheServer() throws {
        var harness = try RoundHarness(cohortSize: 8, threshold: 5, threatModel: .honestButCurious, seed: 32)
        let lowOrder = try X25519.PublicKey(rawRepresentation: [1] + [UInt8](repeating: 0, count: 31))
        harness.tamperUp = { device, message in
            guard device == 5, case let .advertiseKeys(_, maskingKey, signature, _) = message else { return message }
            return .advertiseKeys(encryptionKey: lowOrder, maskingKey: maskingKey, signature: signature)
        }
        let outcome = harness.run()
        guard case let .finished(result) = outcome else { Issue.record("round did not finish: \(outcome)"); return }
        #expect(harness.serverViolations[5]?.kind == .unusableKey(device: 5))
        #expect(!result.survivors.contains(5))
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
    }

    /// When a neighbour's unusable key reaches a device anyway (an aggregator that does not
    /// filter), the device blames the neighbour, not the aggregator, and leaves before dealing.
    @Test func aNeighboursUnusableKeyIsAPeerFault() throws {
        var harness = try RoundHarness(cohortSize: 6, threshold: 4, seed: 33)
        let zero = try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 32))
        var dealt = false
        harness.tamperDown = { device, message in
            guard device == 0, case let .neighbourKeys(entries, _) = message else { return message }
            var changed = entries
            let victim = changed[1]
            changed[1] = AdvertisedKeys(device: victim.device, encryptionKey: victim.encryptionKey, maskingKey: zero,
                                        signature: victim.signature, identityKey: victim.identityKey)
            return .neighbourKeys(changed)
        }
        harness.tamperUp = { device, message in
            if device == 0, case .shareKeys = message { dealt = true }
            return message
        }
        _ = harness.run()
        let violation = try #require(harness.deviceViolations[0])
        #expect(violation.kind == .unusableKey(device: 2))
        #expect(violation.isCausedByPeer)
        #expect(!dealt, "the device must find the key before it deals its shares")
    }
}

/// Collects relayed signatures from the harness's tamper hook.
final class SignatureLog: @unchecked Sendable {
    private(set) var all: [UInt32: [UInt32: Ed25519.Signature]] = [:]
    func record(_ device: UInt32, _ signatures: [UInt32: Ed25519.Signature]) { all[device] = signatures }
}
