import Testing
import VeilCrypto
@testable import VeilProtocol

/// A malicious server or device: each deviation is refused or detected as SPEC.md says.
@Suite struct AttackTests {
    func finished(_ outcome: AggregationOutcome) -> AggregationResult? {
        if case let .finished(result) = outcome { return result }
        return nil
    }

    @Test func deviceRefusesARequestForBothSharesOfOneNeighbour() throws {
        var harness = try RoundHarness(cohortSize: 8, threshold: 4)
        harness.dropBefore = [7: .maskedInputCollection]
        harness.tamperDown = { device, message in
            guard device == 0, case let .unmaskingRequest(surviving, _, signatures) = message else { return message }
            // Claim survivor 1 also dropped, to get its masking-key share as well.
            return .unmaskingRequest(survivingNeighbours: surviving, droppedNeighbours: [1, 7], signatures: signatures)
        }
        _ = harness.run()
        #expect(harness.deviceViolations[0]?.kind == .requestedBothShares(neighbour: 1))
        #expect(harness.deviceViolations[0]?.device == 0)
        #expect(harness.deviceViolations[0]?.round == harness.configuration.roundID)
    }

    @Test func activeDeviceRefusesARequestThatContradictsTheSignedSurvivorSet() throws {
        var harness = try RoundHarness(cohortSize: 8, threshold: 4, threatModel: .active)
        harness.tamperDown = { device, message in
            guard device == 2, case let .unmaskingRequest(surviving, dropped, signatures) = message else { return message }
            // Pretend neighbour 5 dropped (to learn its masking key) although it signed as a survivor.
            return .unmaskingRequest(survivingNeighbours: surviving.filter { $0 != 5 }, droppedNeighbours: (dropped + [5]).sorted(), signatures: signatures)
        }
        _ = harness.run()
        guard case .inconsistentSurvivorSet = harness.deviceViolations[2]?.kind else {
            Issue.record("expected inconsistentSurvivorSet, got \(String(describing: harness.deviceViolations[2]))"); return
        }
    }

    @Test func activeDeviceRefusesWhenSignaturesAreWithheldOrForged() throws {
        var withheld = try RoundHarness(cohortSize: 8, threshold: 4, threatModel: .active)
        withheld.tamperDown = { device, message in
            guard device == 3, case let .unmaskingRequest(surviving, dropped, signatures) = message else { return message }
            return .unmaskingRequest(survivingNeighbours: surviving, droppedNeighbours: dropped, signatures: signatures.filter { $0.key < 2 })
        }
        _ = withheld.run()
        #expect(withheld.deviceViolations[3]?.kind == .tooFewNeighbours(have: 2, need: 4))

        var forged = try RoundHarness(cohortSize: 8, threshold: 4, threatModel: .active)
        forged.tamperDown = { device, message in
            guard device == 3, case .unmaskingRequest(let surviving, let dropped, var signatures) = message else { return message }
            var bytes = signatures[4]!.rawRepresentation
            bytes[10] ^= 1
            signatures[4] = try! Ed25519.Signature(rawRepresentation: bytes)
            return .unmaskingRequest(survivingNeighbours: surviving, droppedNeighbours: dropped, signatures: signatures)
        }
        _ = forged.run()
        #expect(forged.deviceViolations[3]?.kind == .invalidSignature(signer: 4))
    }

    @Test func deviceRefusesForgedNeighbourKeysAndStrangers() throws {
        var forged = try RoundHarness(cohortSize: 6, threshold: 3, threatModel: .active)
        forged.tamperDown = { device, message in
            guard device == 0, case let .neighbourKeys(entries, _) = message else { return message }
            return .neighbourKeys(entries.map { e in
                e.device == 2
                    ? AdvertisedKeys(device: 2, encryptionKey: e.encryptionKey, maskingKey: e.maskingKey,
                                     signature: entries.first { $0.device != 2 }!.signature, identityKey: e.identityKey)
                    : e
            })
        }
        _ = forged.run()
        #expect(forged.deviceViolations[0]?.kind == .invalidSignature(signer: 2))

        var stranger = try RoundHarness(cohortSize: 30, graph: .harary(degree: 6), threshold: 4)
        let notNeighbour = (1..<30).map(UInt32.init).first { !stranger.graph.areNeighbours(0, $0) }!
        stranger.tamperDown = { device, message in
            guard device == 0, case let .neighbourKeys(entries, _) = message else { return message }
            let replaced = entries.dropFirst().map { $0 } + [AdvertisedKeys(
                device: notNeighbour, encryptionKey: entries[0].encryptionKey, maskingKey: entries[0].maskingKey, signature: nil, identityKey: nil)]
            return .neighbourKeys(replaced.sorted { $0.device < $1.device })
        }
        _ = stranger.run()
        #expect(stranger.deviceViolations[0]?.kind == .notANeighbour(notNeighbour))
    }

    @Test func deviceRefusesReusedKeysAndTooFewNeighbours() throws {
        var reused = try RoundHarness(cohortSize: 6, threshold: 3)
        reused.tamperDown = { device, message in
            guard device == 0, case let .neighbourKeys(entries, _) = message else { return message }
            var copy = entries
            copy[1] = AdvertisedKeys(device: entries[1].device, encryptionKey: entries[0].encryptionKey, maskingKey: entries[1].maskingKey, signature: nil, identityKey: nil)
            return .neighbourKeys(copy)
        }
        _ = reused.run()
        #expect(reused.deviceViolations[0]?.kind == .reusedKey(device: reused.devices[0].graph.neighbours(of: 0)[1]))

        var few = try RoundHarness(cohortSize: 6, threshold: 3)
        few.tamperDown = { device, message in
            guard device == 1, case let .neighbourKeys(entries, _) = message else { return message }
            return .neighbourKeys(Array(entries.prefix(2)))
        }
        _ = few.run()
        #expect(few.deviceViolations[1]?.kind == .tooFewNeighbours(have: 2, need: 3))
    }

    @Test func replayedAndReorderedServerMessagesAreRefused() throws {
        var harness = try RoundHarness(cohortSize: 6, threshold: 3)
        var random = SeededRandomSource(seed: 9, label: "replay")
        _ = try harness.devices[0].start(using: &random)
        // Unmasking before the device masked anything: out of order.
        #expect(throws: ProtocolViolation.self) {
            try harness.devices[0].handle(.unmaskingRequest(survivingNeighbours: [1, 2, 3], droppedNeighbours: [], signatures: [:]), using: &random)
        }
        #expect(harness.devices[0].abortReason?.kind == .unexpectedMessage(received: .unmasking))
        // An aborted session accepts nothing more.
        #expect(throws: ProtocolViolation.self) { try harness.devices[0].start(using: &random) }
    }

    @Test func serverDropsDuplicateLateAndWrongPhaseMessages() throws {
        var harness = try RoundHarness(cohortSize: 6, threshold: 3)
        var random = SeededRandomSource(seed: 3, label: "dup")
        let first = try harness.devices[0].start(using: &random)
        try harness.server.receive(first, from: 0)
        #expect(throws: ProtocolViolation(round: harness.configuration.roundID, device: 0, phase: .advertiseKeys, kind: .duplicateMessage)) {
            try harness.server.receive(first, from: 0)
        }
        // Device 0 is now out; its further messages are refused.
        #expect(throws: ProtocolViolation(round: harness.configuration.roundID, device: 0, phase: .advertiseKeys, kind: .notAParticipant)) {
            try harness.server.receive(first, from: 0)
        }
        let wrongPhase = DeviceMessage.maskedInput(ModularVector(zerosOfCount: 8, bitWidth: 32))
        #expect(throws: ProtocolViolation(round: harness.configuration.roundID, device: 1, phase: .advertiseKeys, kind: .unexpectedMessage(received: .maskedInputCollection))) {
            try harness.server.receive(wrongPhase, from: 1)
        }
        #expect(throws: ProtocolViolation.self) { try harness.server.receive(first, from: 99) }
    }

    @Test func wrongShareIsDetectedAndItsHolderNamed() throws {
        var harness = try RoundHarness(cohortSize: 10, threshold: 5)
        harness.dropBefore = [9: .maskedInputCollection]
        harness.tamperUp = { device, message in
            guard device == 0, case let .unmaskingShares(selfShares, keyShares) = message else { return message }
            let bad = selfShares.map { share in
                RevealedShare(owner: share.owner, values: SecretBytes(copying: share.values.unprotectedCopy().enumerated().map { $0.offset == 0 ? $0.element ^ 1 : $0.element }))
            }
            return .unmaskingShares(selfMaskShares: bad, maskingKeyShares: keyShares)
        }
        let outcome = harness.run()
        let result = try #require(finished(outcome))
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
        guard case let .wrongShareSet(why) = result.misbehaving[0] else { Issue.record("device 0 not named: \(result.misbehaving)"); return }
        // The dealer's per-share digest convicts the holder in O(1): no decoder, no subset search.
        #expect(why.contains("digest"))
        #expect(harness.server.statistics.robustReconstructions == 0)
        #expect(result.misbehaving.count == 1, "only the holder that lied is named: \(result.misbehaving)")
    }

    @Test func wrongLengthVectorForgedSignatureAndReusedKeyAreDropped() throws {
        var harness = try RoundHarness(cohortSize: 10, threshold: 5, threatModel: .active)
        harness.tamperUp = { device, message in
            switch (device, message) {
            case (1, .maskedInput):
                return .maskedInput(ModularVector(zerosOfCount: 7, bitWidth: 32))
            case let (2, .advertiseKeys(e, m, s, _)):
                var bytes = s!.rawRepresentation
                bytes[0] ^= 0x80
                return .advertiseKeys(encryptionKey: e, maskingKey: m, signature: try! Ed25519.Signature(rawRepresentation: bytes))
            default:
                return message
            }
        }
        let outcome = harness.run()
        let result = try #require(finished(outcome))
        #expect(result.misbehaving[1] == .wrongVectorShape(expectedCount: 8, count: 7, expectedBitWidth: 32, bitWidth: 32))
        #expect(result.misbehaving[2] == .invalidSignature(signer: 2))
        #expect(!result.survivors.contains(1) && !result.survivors.contains(2))
        #expect(result.sum == harness.plaintextSum(of: result.survivors))

        var reuse = try RoundHarness(cohortSize: 6, threshold: 3)
        var firstKeys: DeviceMessage?
        reuse.tamperUp = { device, message in
            if device == 0 { firstKeys = message }
            if device == 1, let firstKeys { return firstKeys }
            return message
        }
        let reuseOutcome = reuse.run()
        let reuseResult = try #require(finished(reuseOutcome))
        #expect(reuseResult.misbehaving[1] == .reusedKey(device: 1))
        #expect(reuseResult.sum == reuse.plaintextSum(of: reuseResult.survivors))
    }

    @Test func roundAbortsWhenTooManyDevicesDrop() throws {
        var harness = try RoundHarness(cohortSize: 8, threshold: 5)
        harness.dropBefore = [0: .maskedInputCollection, 1: .maskedInputCollection, 2: .maskedInputCollection, 3: .maskedInputCollection]
        #expect(harness.run() == .aborted(.tooFewDevices(phase: .maskedInputCollection, remaining: 4, needed: 6)))

        var unmasking = try RoundHarness(cohortSize: 8, threshold: 5)
        unmasking.dropBefore = [0: .unmasking, 1: .unmasking, 2: .unmasking, 3: .unmasking]
        guard case .aborted(.notEnoughShares) = unmasking.run() else { Issue.record("expected notEnoughShares"); return }
    }
}
