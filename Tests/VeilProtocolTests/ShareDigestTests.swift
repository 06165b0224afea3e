import Testing
import VeilCrypto
@testable import VeilProtocol

/// Issue 12, finding 7: dealers commit to each share with a digest sent beside the sealed pair, so
/// the server drops a bad revealed share in O(1) and names its holder with evidence, and a holder
/// never keeps (or reveals) a share its dealer did not commit to.
@Suite struct ShareDigestTests {
    /// Flips one byte of every self-mask share the given holders reveal.
    static func lying(_ liars: Set<UInt32>) -> (UInt32, DeviceMessage) -> DeviceMessage {
        { device, message in
            guard liars.contains(device), case let .unmaskingShares(selfShares, keyShares) = message else { return message }
            let bad = selfShares.map { share in
                RevealedShare(owner: share.owner, values: SecretBytes(copying: share.values.unprotectedCopy().enumerated().map { $0.offset == 3 ? $0.element ^ 0x40 : $0.element }))
            }
            return .unmaskingShares(selfMaskShares: bad, maskingKeyShares: keyShares)
        }
    }

    /// Three lying holders among ten: more than the old decoder could correct on the shares it had
    /// (it aborted the round); now each is caught by its digest and named, and the round finishes.
    @Test func manyLyingHoldersAreNamedAndTheRoundFinishes() throws {
        var harness = try RoundHarness(cohortSize: 10, threshold: 6, seed: 51)
        harness.tamperUp = Self.lying([1, 4, 7])
        let outcome = harness.run()
        guard case let .finished(result) = outcome else { Issue.record("round did not finish: \(outcome)"); return }
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
        #expect(Set(result.misbehaving.keys) == [1, 4, 7])
        for kind in result.misbehaving.values {
            guard case let .wrongShareSet(why) = kind, why.contains("digest") else { Issue.record("\(kind)"); continue }
        }
        #expect(harness.server.statistics.robustReconstructions == 0)
    }

    /// A dealer whose digest does not match what it sealed: the holder does not keep that share,
    /// so it never reveals it and is never blamed; the round finishes from the other holders.
    @Test func aHolderRefusesAShareItsDealerDidNotCommitTo() throws {
        var harness = try RoundHarness(cohortSize: 8, threshold: 5, seed: 52)
        harness.tamperUp = { device, message in
            guard device == 2, case let .shareKeys(maskingCommitment, selfCommitment, shares) = message else { return message }
            let bent = shares.map { s in
                guard s.recipient == 5 else { return s }
                var bytes = s.selfMaskShareDigest.bytes
                bytes[0] ^= 1
                let digest = ShareDigest(bytes)!
                return SealedShares(sender: s.sender, recipient: s.recipient, ciphertext: s.ciphertext,
                                    maskingKeyShareDigest: s.maskingKeyShareDigest, selfMaskShareDigest: digest)
            }
            return .shareKeys(maskingKeyCommitment: maskingCommitment, selfMaskCommitment: selfCommitment, shares: bent)
        }
        var revealedByFiveForTwo = false
        let tamperDown = harness.tamperDown
        harness.tamperDown = { device, message in tamperDown?(device, message) ?? message }
        let previous = harness.tamperUp!
        harness.tamperUp = { device, message in
            let message = previous(device, message)
            if device == 5, case let .unmaskingShares(selfShares, _) = message, selfShares.contains(where: { $0.owner == 2 }) {
                revealedByFiveForTwo = true
            }
            return message
        }
        let outcome = harness.run()
        guard case let .finished(result) = outcome else { Issue.record("round did not finish: \(outcome)"); return }
        #expect(result.sum == harness.plaintextSum(of: result.survivors))
        #expect(!revealedByFiveForTwo, "the holder must not keep a share that does not match its digest")
        #expect(result.misbehaving.isEmpty, "nobody is blamed without evidence: \(result.misbehaving)")
    }

    @Test func digestsBindEveryField() throws {
        var random = SeededRandomSource(seed: 53, label: "digest")
        let tau = random.bytes(count: 32)
        let values = SecretBytes(copying: random.bytes(count: 40))
        let base = ProtocolEncoding.shareDigest(transcript: tau, dealer: 1, holder: 2, kind: .selfMask, values: values)
        #expect(base.bytes.count == 16)
        #expect(ShareDigest(base.bytes) == base)
        #expect(ShareDigest([UInt8](repeating: 0, count: 15)) == nil)
        let others = [
            ProtocolEncoding.shareDigest(transcript: random.bytes(count: 32), dealer: 1, holder: 2, kind: .selfMask, values: values),
            ProtocolEncoding.shareDigest(transcript: tau, dealer: 2, holder: 1, kind: .selfMask, values: values),
            ProtocolEncoding.shareDigest(transcript: tau, dealer: 1, holder: 3, kind: .selfMask, values: values),
            ProtocolEncoding.shareDigest(transcript: tau, dealer: 1, holder: 2, kind: .maskingKey, values: values),
            ProtocolEncoding.shareDigest(transcript: tau, dealer: 1, holder: 2, kind: .selfMask, values: SecretBytes(copying: random.bytes(count: 40))),
        ]
        #expect(Set(others + [base]).count == others.count + 1)
        // The formula of SPEC §4.11, written out.
        let message = tau + [0, 0, 0, 1, 0, 0, 0, 2, 2] + values.unprotectedCopy()
        #expect(BLAKE2b.hash(label: "veil/v1/share-digest", message: message, outputByteCount: 16) == base.bytes)
    }
}
