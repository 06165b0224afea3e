import Testing
import VeilCrypto

/// Secret hygiene of the crypto layer: commitments hash the secret where it lies and still give
/// the committed bytes, the pointer form of BLAKE2b equals the array form, and `SecureMemory`
/// zeroes what it is given.
@Suite struct SecretHygieneCryptoTests {
    /// `Protocols/vectors/shamir.json`: the secret a0 a1 … bf and its commitment.
    static let vectorSecret = (0xa0...0xbf).map { UInt8($0) }
    static let vectorCommitment = "c0d676e4c14946776f4a4adfdba09b6f551a4e391fceb1ba61e3aac0aa44be0b"

    @Test func commitmentMatchesTheKnownAnswer() throws {
        let commitment = ShamirCommitment(committingTo: SecretBytes(copying: Self.vectorSecret))
        #expect(Hex.encode(commitment.bytes) == Self.vectorCommitment)
    }

    @Test func commitmentEqualsBLAKE2bOfTheSecretBytes() throws {
        var random = SeededRandomSource(seed: 3, label: "commitments")
        for _ in 0..<32 {
            let secret = SecretBytes(randomCount: 32, using: &random)
            let expected = BLAKE2b.hash(label: "veil/v1/shamir-commitment", message: secret.unprotectedCopy(), outputByteCount: 32)
            #expect(ShamirCommitment(committingTo: secret).bytes == expected)
        }
    }

    @Test(arguments: [0, 1, 31, 32, 33, 64, 127, 128, 129, 255, 256, 1000])
    func pointerFormOfBLAKE2bEqualsTheArrayForm(length: Int) throws {
        var random = SeededRandomSource(seed: UInt64(length), label: "blake2b-forms")
        let message = random.bytes(count: length)
        for (label, outputByteCount) in [("veil/v1/shamir-commitment", 32), ("x", 16), (String(repeating: "l", count: 255), 64)] {
            let viaPointer = message.withUnsafeBytes { BLAKE2b.hash(label: label, message: $0, outputByteCount: outputByteCount) }
            #expect(viaPointer == BLAKE2b.hash(label: label, message: message, outputByteCount: outputByteCount), "label of \(label.utf8.count) bytes")
            #expect(viaPointer.count == outputByteCount)
        }
    }

    @Test func splitAndReconstructStillRoundTripWithTheSameCommitment() throws {
        let secret = SecretBytes(copying: Self.vectorSecret)
        var random = SeededRandomSource(seed: 4, label: "split")
        let shares = try ShamirSecretSharing.split(secret, threshold: 3, shareCount: 6, using: &random)
        #expect(shares.allSatisfy { Hex.encode($0.commitment.bytes) == Self.vectorCommitment })
        #expect(try ShamirSecretSharing.reconstruct(Array(shares[2...4]), threshold: 3) == secret)
        let robust = try ShamirSecretSharing.reconstructIdentifyingBadShares(shares, threshold: 3, using: &random)
        #expect(robust.secret == secret)
        #expect(robust.badShares.isEmpty)
    }

    @Test func secureMemoryZeroesArraysAndBuffers() {
        var limbs: [UInt64] = [0x00de_adbe_ef01_2345, 1, UInt64.max]
        let address = limbs.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        SecureMemory.zero(&limbs)
        #expect(limbs == [0, 0, 0])
        #expect(limbs.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } == address, "zeroed in place")

        var bytes: [UInt8] = Array(1...40)
        SecureMemory.zero(&bytes)
        #expect(bytes == Array(repeating: 0, count: 40))

        var empty: [UInt32] = []
        SecureMemory.zero(&empty)
        #expect(empty.isEmpty)

        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: 24, alignment: 8)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0xa5)
        SecureMemory.zero(raw)
        #expect(raw.allSatisfy { $0 == 0 })
        SecureMemory.zero(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }
}
