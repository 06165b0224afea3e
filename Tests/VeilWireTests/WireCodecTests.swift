import Foundation
import SwiftProtobuf
import Testing
import VeilCrypto
import VeilProtocol
@testable import VeilWire

/// Builds a small round configuration for codec tests.
func makeConfiguration(n: Int = 8, m: Int = 16, b: Int = 24, threat: ThreatModel = .active, seed: UInt64 = 1) throws -> RoundConfiguration {
    var random = SeededRandomSource(seed: seed, label: "wire")
    return try RoundConfiguration(
        roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: n, dimension: m, bitWidth: b,
        prg: .chacha20, graph: .complete, threshold: n / 2 + 1, threatModel: threat)
}

@Suite struct WireCodecTests {
    /// A whole active round in which every message in both directions crosses the codec.
    @Test func aRoundThroughTheCodecGivesTheExactSum() throws {
        let configuration = try makeConfiguration()
        let graph = NeighbourGraph(configuration: configuration)
        var random = SeededRandomSource(seed: 2, label: "wire-round")
        let identities = (0..<8).map { _ in Ed25519.PrivateKey(using: &random) }
        let inputs = (0..<8).map { _ in try! ModularVector(values: (0..<16).map { _ in random.nextUInt64() & 0xFF_FFFF }, bitWidth: 24) }
        var devices = try (0..<8).map { d in
            try DeviceSession(configuration: configuration, graph: graph, device: UInt32(d), identity: identities[d], input: inputs[d],
                              policy: DevicePolicy(requiredThreatModel: .active, minimumCohort: 3, assumedDropout: 0))
        }
        var server = try AggregationSession(
            configuration: configuration, graph: graph,
            identities: Dictionary(uniqueKeysWithValues: identities.enumerated().map { (UInt32($0.offset), $0.element.publicKey) }))
        let round = configuration.roundID
        func up(_ message: DeviceMessage, _ d: UInt32) throws {
            let decoded = try WireCodec.decodeDeviceMessage(WireCodec.encode(message, round: round), from: d, configuration: configuration)
            #expect(decoded == message)
            try server.receive(decoded, from: d)
        }
        for d in 0..<UInt32(8) where d != 7 { try up(devices[Int(d)].start(using: &random), d) }
        while server.closePhase(using: &random) == nil {
            for d in server.recipients {
                let message = try #require(server.outgoingMessage(for: d))
                let decoded = try WireCodec.decodeServerMessage(
                    WireCodec.encode(message, round: round, cohortSize: 8), for: d, configuration: configuration)
                #expect(decoded == message)
                try up(devices[Int(d)].handle(decoded, using: &random), d)
            }
        }
        guard case let .finished(result) = server.outcome else { Issue.record("round did not finish"); return }
        var expected = ModularVector(zerosOfCount: 16, bitWidth: 24)
        for d in result.survivors { expected.add(inputs[Int(d)]) }
        #expect(result.survivors.count == 7)
        #expect(result.sum == expected)
    }

    @Test func maskedInputUploadIsWithinTenPercentOfThePlaintext() throws {
        let configuration = try makeConfiguration(m: 100_000, b: 32)
        let vector = ModularVector(zerosOfCount: 100_000, bitWidth: 32)
        let bytes = WireCodec.encode(.maskedInput(vector), round: configuration.roundID)
        #expect(Double(bytes.count) <= 1.1 * 400_000)
    }

    @Test func packedVectorsRoundTripAtEveryWidth() throws {
        var random = SeededRandomSource(seed: 4, label: "pack")
        for b in 1...64 {
            let values = (0..<37).map { _ in random.nextUInt64() & ModularVector.modulusMask(b) }
            let vector = try ModularVector(values: values, bitWidth: b)
            let packed = vector.packed()
            #expect(packed.count == 37 * ((b + 7) / 8))
            #expect(try ModularVector(packed: packed, count: 37, bitWidth: b) == vector)
        }
    }
}

/// Every malformed or foreign input gets a typed error that names the field.
@Suite struct WireDecodingNegativeTests {
    let configuration = try! makeConfiguration()

    func deviceError(_ bytes: [UInt8]) -> WireError? {
        do {
            _ = try WireCodec.decodeDeviceMessage(bytes, from: 1, configuration: configuration)
            return nil
        } catch { return error }
    }

    func envelope(_ build: (inout Veil_V1_DeviceToServer) -> Void) -> [UInt8] {
        var e = Veil_V1_DeviceToServer()
        e.roundID = Data(configuration.roundID.bytes)
        build(&e)
        return Array(try! e.serializedBytes() as Data)
    }

    @Test func garbageTruncatedAndEmptyInput() throws {
        #expect(deviceError([0xFF, 0xFF, 0xFF, 0x0F]).map { if case .undecodable = $0 { true } else { false } } == true)
        let good = WireCodec.encode(.consistencySignature(try Ed25519.Signature(rawRepresentation: Array(repeating: 1, count: 64))), round: configuration.roundID)
        #expect(deviceError(Array(good.dropLast(3))).map { if case .undecodable = $0 { true } else { false } } == true)
        #expect(deviceError([]) == .wrongRound)
        #expect(deviceError(envelope { _ in }) == .missingMessage)
    }

    @Test func wrongRoundAndOversizedMessages() throws {
        let other = try makeConfiguration(seed: 99)
        let foreign = WireCodec.encode(.consistencySignature(try Ed25519.Signature(rawRepresentation: Array(repeating: 1, count: 64))), round: other.roundID)
        #expect(deviceError(foreign) == .wrongRound)
        let limit = WireCodec.maximumDeviceMessageByteCount(configuration)
        #expect(deviceError(Array(repeating: 0, count: limit + 1)) == .tooLarge(bytes: limit + 1, limit: limit))
    }

    @Test func unknownFieldsAreRefused() throws {
        var bytes = envelope { $0.consistencySignature.signature = Data(repeating: 1, count: 64) }
        // Field 15, varint 1: not part of veil.v1.
        bytes += [0x78, 0x01]
        guard case let .invalidField(field, _)? = deviceError(bytes) else { Issue.record("unknown field accepted"); return }
        #expect(field == "envelope")
    }

    @Test func everyFieldLengthIsChecked() {
        let key = Data(repeating: 9, count: 32)
        let cases: [(String, [UInt8])] = [
            ("advertise_keys.encryption_key", envelope { $0.advertiseKeys.encryptionKey = Data(count: 31); $0.advertiseKeys.maskingKey = key }),
            ("advertise_keys.masking_key", envelope { $0.advertiseKeys.encryptionKey = key; $0.advertiseKeys.maskingKey = Data(count: 33) }),
            ("advertise_keys.signature", envelope { $0.advertiseKeys.encryptionKey = key; $0.advertiseKeys.maskingKey = key; $0.advertiseKeys.signature = Data(count: 63) }),
            ("share_keys.masking_key_commitment", envelope { $0.shareKeys.maskingKeyCommitment = Data(count: 5); $0.shareKeys.selfMaskCommitment = key }),
            ("share_keys.self_mask_commitment", envelope { $0.shareKeys.maskingKeyCommitment = key; $0.shareKeys.selfMaskCommitment = Data() }),
            ("share_keys.shares[0].ciphertext", envelope {
                $0.shareKeys.maskingKeyCommitment = key; $0.shareKeys.selfMaskCommitment = key
                var s = Veil_V1_SealedShares(); s.recipient = 2; s.ciphertext = Data(count: 95); $0.shareKeys.shares = [s]
            }),
            ("masked_input.packed_vector", envelope { $0.maskedInput.packedVector = Data(count: 16 * 3 - 1) }),
            ("consistency_signature.signature", envelope { $0.consistencySignature.signature = Data(count: 65) }),
            ("unmasking_shares.self_mask_shares[0].values", envelope {
                var r = Veil_V1_RevealedShare(); r.owner = 2; r.values = Data(count: 39); $0.unmaskingShares.selfMaskShares = [r]
            }),
            ("unmasking_shares.masking_key_shares[0].values", envelope {
                var r = Veil_V1_RevealedShare(); r.owner = 2; r.values = Data(count: 41); $0.unmaskingShares.maskingKeyShares = [r]
            }),
        ]
        for (name, bytes) in cases {
            guard case let .invalidField(field, _)? = deviceError(bytes) else { Issue.record("\(name) accepted"); continue }
            #expect(field == name)
        }
    }

    @Test func vectorElementsOutOfRangeAreRefused() {
        // b = 24: an element of 0xFFFFFF is fine, but 3-byte words cannot exceed it; use b = 20.
        let narrow = try! makeConfiguration(m: 2, b: 20)
        var e = Veil_V1_DeviceToServer()
        e.roundID = Data(narrow.roundID.bytes)
        e.maskedInput.packedVector = Data([0xFF, 0xFF, 0x0F, 0x00, 0x00, 0x10])
        do {
            _ = try WireCodec.decodeDeviceMessage(Array(try! e.serializedBytes() as Data), from: 0, configuration: narrow)
            Issue.record("out-of-range element accepted")
        } catch {
            #expect(error == .invalidField(field: "masked_input.packed_vector", reason: "element 1 is not below 2^20"))
        }
    }

    @Test func serverMessagesAreCheckedToo() throws {
        func serverError(_ build: (inout Veil_V1_ServerToDevice) -> Void) -> WireError? {
            var e = Veil_V1_ServerToDevice()
            e.roundID = Data(configuration.roundID.bytes)
            build(&e)
            do {
                _ = try WireCodec.decodeServerMessage(Array(try! e.serializedBytes() as Data), for: 0, configuration: configuration)
                return nil
            } catch { return error }
        }
        #expect(serverError { _ in } == .missingMessage)
        guard case .invalidField("consistency_check.survivor_bitmap", _)? = serverError({ $0.consistencyCheck.survivorBitmap = Data([0xFF, 0x01]) }) else {
            Issue.record("bitmap with a bit beyond the cohort accepted"); return
        }
        guard case .invalidField("neighbour_keys.neighbours[0].signature", _)? = serverError({
            var n = Veil_V1_NeighbourKeys(); n.device = 1; n.encryptionKey = Data(count: 32); n.maskingKey = Data(count: 32)
            $0.neighbourKeys.neighbours = [n]
        }) else { Issue.record("unsigned keys accepted in the active model"); return }
        guard case .invalidField("unmasking_request.signatures[1].device", _)? = serverError({
            var s = Veil_V1_NeighbourSignature(); s.device = 3; s.signature = Data(count: 64)
            $0.unmaskingRequest.signatures = [s, s]
        }) else { Issue.record("duplicate signature accepted"); return }
        guard case .invalidField("incoming_shares.shares[0].ciphertext", _)? = serverError({
            var s = Veil_V1_IncomingShares(); s.sender = 3; s.ciphertext = Data(count: 12)
            $0.incomingShares.shares = [s]
        }) else { Issue.record("short ciphertext accepted"); return }
        #expect(try SurvivorBitmap.decode(SurvivorBitmap.encode([0, 3, 7], cohortSize: 8), cohortSize: 8) == [0, 3, 7])
    }

    /// ALREADY_COUNTED names a window and the round that counted the device; no other outcome may.
    @Test func roundEndedFramesAreCheckedByOutcome() throws {
        let round = try makeConfiguration().roundID
        let good = TransportCodec.alreadyCountedFrame(task: "fleet/v1/1800000000", countedRoundID: "\(round)")
        guard case let .ended(ended) = try TransportCodec.content(of: good) else { Issue.record("not ended"); return }
        #expect(ended.outcome == .alreadyCounted && ended.task == "fleet/v1/1800000000" && ended.countedRoundID == "\(round)")
        #expect(RoundID(hex: ended.countedRoundID) == round)

        var noTask = good
        noTask.ended.task = ""
        #expect(throws: WireError.invalidField(field: "ended.task", reason: "ALREADY_COUNTED must name the window")) { try TransportCodec.content(of: noTask) }
        for bad in ["", "zz" + String(repeating: "0", count: 30), String(repeating: "0", count: 31)] {
            var badRound = good
            badRound.ended.countedRoundID = bad
            #expect(throws: WireError.invalidField(field: "ended.counted_round_id", reason: "must be 32 hex digits")) { try TransportCodec.content(of: badRound) }
        }
        var counted = TransportCodec.endedFrame(.counted, reason: "ok")
        counted.ended.task = "fleet/v1/1800000000"
        #expect(throws: WireError.invalidField(field: "ended.task", reason: "only ALREADY_COUNTED names a window")) { try TransportCodec.content(of: counted) }
        var unknown = TransportCodec.endedFrame(.counted, reason: "ok")
        unknown.ended.outcome = .UNRECOGNIZED(9)
        #expect(throws: WireError.invalidField(field: "ended.outcome", reason: "unknown outcome 9")) { try TransportCodec.content(of: unknown) }
    }

    /// H2/H3: the windows a check-in offers are bounded, non-negative and strictly increasing,
    /// and the whole frame fits the pre-assignment limit.
    @Test func checkInOffersAreChecked() throws {
        var random = SeededRandomSource(seed: 7, label: "check-in")
        let identity = Ed25519.PrivateKey(using: &random)
        let signature = identity.signature(for: [1, 2, 3])
        let good = TransportCodec.checkInFrame(identityKey: identity.publicKey, signature: signature, offeredWindows: [3600, 7200])
        #expect(try TransportCodec.checkIn(from: good).offeredWindows == [3600, 7200])
        let full = TransportCodec.checkInFrame(
            identityKey: identity.publicKey, signature: signature, offeredWindows: (0..<64).map { 1_800_000_000 + $0 * 86_400 })
        #expect(try TransportCodec.checkIn(from: full).offeredWindows.count == 64)
        #expect(WireCodec.serialize(full).count <= TransportCodec.maximumCheckInFrameByteCount)
        let cases: [([Int64], String)] = [
            ([7200, 3600], "window starts must be non-negative and strictly increasing"),
            ([3600, 3600], "window starts must be non-negative and strictly increasing"),
            ([-3600], "window starts must be non-negative and strictly increasing"),
            ((0..<65).map { Int64($0) * 3600 }, "more than 64 windows"),
        ]
        for (windows, reason) in cases {
            var bad = good
            bad.checkIn.offeredWindows = windows
            #expect(throws: WireError.invalidField(field: "check_in.offered_windows", reason: reason)) { try TransportCodec.checkIn(from: bad) }
        }
        // The largest valid offer (64 windows of the longest encoding) fits the limit.
        var largest = good
        largest.checkIn.offeredWindows = (0..<64).map { Int64.max - 64 + $0 }
        #expect(try TransportCodec.checkIn(from: largest).offeredWindows.count == 64)
        #expect(WireCodec.serialize(largest).count <= TransportCodec.maximumCheckInFrameByteCount)
    }
}
