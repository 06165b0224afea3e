import Foundation
import Testing
import VeilCrypto
@testable import VeilDevice
import VeilProtocol
import VeilWire

/// Issue 12, finding 2: a device durably remembers the round ids it took part in and refuses a
/// reused one, before it signs anything.
@Suite struct SignedRoundLedgerTests {
    static func temporaryPath() -> String {
        NSTemporaryDirectory() + "veil-ledger-\(UUID().uuidString)"
    }

    static func roundIDs(_ count: Int) -> [RoundID] {
        var random = SystemRandomSource()
        return (0..<count).map { _ in RoundID(using: &random) }
    }

    @Test func roundsSurviveARestartAndAReusedIDIsRefused() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        let ids = Self.roundIDs(3)
        do {
            let ledger = try SignedRoundLedger(at: path)
            try ledger.record(ids[0])
            try ledger.record(ids[1])
            #expect(throws: SignedRoundLedger.LedgerError.reused(.roundReused(ids[0]))) { try ledger.record(ids[0]) }
        }
        let reopened = try SignedRoundLedger(at: path)
        #expect(reopened.count == 2)
        #expect(reopened.contains(ids[1]))
        #expect(throws: SignedRoundLedger.LedgerError.reused(.roundReused(ids[1]))) { try reopened.record(ids[1]) }
        try reopened.record(ids[2])
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_size == 3 * 24)
    }

    @Test func aRecordCutShortByACrashIsDroppedAndTheRestKept() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        let ids = Self.roundIDs(2)
        try SignedRoundLedger(at: path).record(ids[0])
        // A crash in the middle of appending the second record.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: ids[1].bytes.prefix(5))
        try handle.close()
        let repaired = try SignedRoundLedger(at: path)
        #expect(repaired.count == 1)
        #expect(repaired.contains(ids[0]) && !repaired.contains(ids[1]))
        try repaired.record(ids[1])
        #expect(try SignedRoundLedger(at: path).count == 2)
    }

    @Test func aLedgerReadableByOthersIsRefused() throws {
        let path = Self.temporaryPath()
        defer { unlink(path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(), attributes: [.posixPermissions: 0o644]))
        #expect(throws: DeviceError.self) { try SignedRoundLedger(at: path) }
    }

    /// The device's round logic: a second assignment with a round id it already took part in is
    /// refused with ROUND_REUSED before anything is signed, and the refusal is not retried.
    @Test func aReusedRoundIDIsRefusedBeforeAdvertiseKeys() async throws {
        var random = SystemRandomSource()
        let configuration = try RoundConfiguration(
            roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: 12, dimension: 4, bitWidth: 16,
            prg: .aes128CTR, graph: .complete, threshold: 7, threatModel: .active)
        let assignment = RoundAssignmentContent(configuration: configuration, deviceIndex: 3, task: "default", phaseTimeoutMilliseconds: 1000)
        let identity = DeviceIdentity.generate()
        let ledger = SignedRoundLedger.inMemory()
        let policy = DevicePolicy(minimumCohort: 3, assumedDropout: 0.01)
        let input: VeilDevice.InputProvider = { a in ModularVector(zerosOfCount: a.configuration.dimension, bitWidth: a.configuration.bitWidth) }

        var first = ClientRound(identity: identity, options: .init(), policy: policy, signedRounds: ledger)
        _ = try await first.handle(.challenge(nonce: random.bytes(count: 32)), input: input)
        guard case let .send(frame) = try await first.handle(.assignment(assignment), input: input), case .protocolMessage? = frame.frame else {
            Issue.record("the first assignment must be answered with AdvertiseKeys")
            return
        }
        #expect(ledger.contains(configuration.roundID))

        var second = ClientRound(identity: identity, options: .init(), policy: policy, signedRounds: ledger)
        _ = try await second.handle(.challenge(nonce: random.bytes(count: 32)), input: input)
        guard case let .refuse(refusal, error) = try await second.handle(.assignment(assignment), input: input) else {
            Issue.record("a reused round id must be refused")
            return
        }
        guard case let .refusal(r)? = refusal.frame else { Issue.record("expected a refusal frame"); return }
        #expect(r.reason == .roundReused)
        #expect(error.policyViolation == .roundReused(configuration.roundID))
        #expect(!error.isRetryable)
    }

    /// A round that breaks the policy gets a POLICY refusal naming the rule, and nothing signed.
    @Test func aPolicyRefusalIsReportedWithItsReason() async throws {
        var random = SystemRandomSource()
        let configuration = try RoundConfiguration(
            roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: 12, dimension: 4, bitWidth: 16,
            prg: .aes128CTR, graph: .complete, threshold: 7, threatModel: .honestButCurious)
        let assignment = RoundAssignmentContent(configuration: configuration, deviceIndex: 0, task: "default", phaseTimeoutMilliseconds: 1000)
        var round = ClientRound(identity: .generate(), options: .init(), policy: DevicePolicy(minimumCohort: 3, assumedDropout: 0.01), signedRounds: .inMemory())
        let input: VeilDevice.InputProvider = { a in ModularVector(zerosOfCount: a.configuration.dimension, bitWidth: a.configuration.bitWidth) }
        _ = try await round.handle(.challenge(nonce: random.bytes(count: 32)), input: input)
        guard case let .refuse(refusal, error) = try await round.handle(.assignment(assignment), input: input),
              case let .refusal(r)? = refusal.frame else {
            Issue.record("an honest-but-curious round must be refused by an active policy")
            return
        }
        #expect(r.reason == .policy)
        #expect(r.detail.contains("honest-but-curious"))
        #expect(error.policyViolation == .threatModel(required: .active, offered: .honestButCurious))
    }
}
