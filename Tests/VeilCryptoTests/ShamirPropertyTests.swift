import Testing
@testable import VeilCrypto

@Suite struct ShamirPropertyTests {
    @Test(arguments: 1...200)
    func anyThresholdSubsetReconstructsAndFewerAreRefused(seed: Int) throws {
        var random = SeededRandomSource(seed: UInt64(seed), label: "shamir")
        let n = 1 + Int(random.nextUInt64(below: 40))
        let t = 1 + Int(random.nextUInt64(below: UInt64(n)))
        // Some dealings use arbitrary x-coordinates, including ones above 65,536.
        var xs = Set<UInt32>()
        while xs.count < n { xs.insert(UInt32(1 + random.nextUInt64(below: seed.isMultiple(of: 2) ? UInt64(n) * 3 : 4_000_000_000))) }
        let secret = SecretBytes(randomCount: 32, using: &random)
        let shares = try ShamirSecretSharing.split(secret, threshold: t, xCoordinates: Array(xs), using: &random)
        var order = Array(shares.indices)
        for i in order.indices.reversed() { order.swapAt(i, Int(random.nextUInt64(below: UInt64(i + 1)))) }
        let subset = order.prefix(t).map { shares[$0] }
        #expect(try ShamirSecretSharing.reconstruct(subset, threshold: t) == secret)
        if t > 1 {
            #expect(throws: ShamirError.tooFewShares(have: t - 1, need: t)) { try ShamirSecretSharing.reconstruct(Array(subset.prefix(t - 1)), threshold: t) }
        }
    }

    @Test func sharesOfTwoSecretsNeverCombine() throws {
        var random = SeededRandomSource(seed: 3, label: "mix")
        let a = try ShamirSecretSharing.split(SecretBytes(randomCount: 32, using: &random), threshold: 3, shareCount: 5, using: &random)
        let b = try ShamirSecretSharing.split(SecretBytes(randomCount: 32, using: &random), threshold: 3, shareCount: 5, using: &random)
        #expect(throws: ShamirError.mixedCommitments) { try ShamirSecretSharing.reconstruct([a[0], a[1], b[2]], threshold: 3) }
        // Relabelling b's share with a's commitment does not help: the result fails the commitment.
        let forged = try ShamirShare(x: b[2].x, values: b[2].values, commitment: a[0].commitment)
        #expect(throws: ShamirError.commitmentMismatch) { try ShamirSecretSharing.reconstruct([a[0], a[1], forged], threshold: 3) }
    }

    @Test func aWrongShareIsFoundAndNamed() throws {
        var random = SeededRandomSource(seed: 4, label: "robust")
        let secret = SecretBytes(randomCount: 32, using: &random)
        var shares = try ShamirSecretSharing.split(secret, threshold: 4, shareCount: 7, using: &random)
        var values = shares[1].values.unprotectedCopy()
        values[0] ^= 1
        shares[1] = try ShamirShare(x: shares[1].x, values: SecretBytes(copying: values), commitment: shares[1].commitment)
        #expect(throws: ShamirError.commitmentMismatch) { try ShamirSecretSharing.reconstruct(shares, threshold: 4) }
        let robust = try ShamirSecretSharing.reconstructIdentifyingBadShares(shares, threshold: 4, using: &random)
        #expect(robust.secret == secret)
        #expect(robust.badShares == [shares[1].x])
        // With exactly t shares, one of them wrong, there is nothing to choose from.
        #expect(throws: ShamirError.noConsistentSubset(shareCount: 4, attempts: 64)) {
            try ShamirSecretSharing.reconstructIdentifyingBadShares(Array(shares.prefix(4)), threshold: 4, using: &random)
        }
    }

    @Test func maximumShareCountAndLargeDealings() throws {
        var random = SeededRandomSource(seed: 5, label: "large")
        let secret = SecretBytes(randomCount: 32, using: &random)
        let all = try ShamirSecretSharing.split(secret, threshold: 2, shareCount: 65_536, using: &random)
        #expect(all.count == 65_536)
        #expect(try ShamirSecretSharing.reconstruct([all[65_535], all[12]], threshold: 2) == secret)
        let thousand = try ShamirSecretSharing.split(secret, threshold: 501, shareCount: 1000, using: &random)
        #expect(try ShamirSecretSharing.reconstruct(Array(thousand.suffix(501)), threshold: 501) == secret)
        #expect(throws: ShamirError.tooManyShares(65_537)) { try ShamirSecretSharing.split(secret, threshold: 2, shareCount: 65_537, using: &random) }
    }

    @Test func invalidArgumentsAreTyped() throws {
        var random = SeededRandomSource(seed: 6, label: "invalid")
        let secret = SecretBytes(randomCount: 32, using: &random)
        #expect(throws: ShamirError.invalidSecretLength(31)) { try ShamirSecretSharing.split(SecretBytes(randomCount: 31, using: &random), threshold: 1, shareCount: 2, using: &random) }
        #expect(throws: ShamirError.invalidThreshold(threshold: 0, shareCount: 3)) { try ShamirSecretSharing.split(secret, threshold: 0, shareCount: 3, using: &random) }
        #expect(throws: ShamirError.invalidThreshold(threshold: 4, shareCount: 3)) { try ShamirSecretSharing.split(secret, threshold: 4, shareCount: 3, using: &random) }
        #expect(throws: ShamirError.invalidXCoordinate(0)) { try ShamirSecretSharing.split(secret, threshold: 1, xCoordinates: [1, 0], using: &random) }
        #expect(throws: ShamirError.invalidXCoordinate(5)) { try ShamirSecretSharing.split(secret, threshold: 1, xCoordinates: [5, 5], using: &random) }
        let shares = try ShamirSecretSharing.split(secret, threshold: 2, shareCount: 3, using: &random)
        #expect(throws: ShamirError.duplicateShare(x: 1)) { try ShamirSecretSharing.reconstruct([shares[0], shares[0]], threshold: 2) }
        #expect(throws: ShamirError.invalidThreshold(threshold: 0, shareCount: 3)) { try ShamirSecretSharing.reconstruct(shares, threshold: 0) }
        #expect(throws: ShamirError.malformedShare(x: 0, reason: "x-coordinate is zero")) {
            try ShamirShare(x: 0, values: shares[0].values, commitment: shares[0].commitment)
        }
        #expect(throws: ShamirError.malformedShare(x: 1, reason: "values are 39 bytes, expected 40")) {
            try ShamirShare(x: 1, values: SecretBytes(randomCount: 39, using: &random), commitment: shares[0].commitment)
        }
        let outOfField = SecretBytes(copying: [UInt8](repeating: 0xFF, count: 40))
        #expect(throws: ShamirError.malformedShare(x: 1, reason: "a value is not a field element")) {
            try ShamirShare(x: 1, values: outOfField, commitment: shares[0].commitment)
        }
        #expect(throws: CryptoError.invalidLength(what: "Shamir commitment", expected: 32, actual: 3)) { try ShamirCommitment(bytes: [1, 2, 3]) }
        // Every error describes itself without secret material.
        #expect(ShamirError.commitmentMismatch.description.contains("commitment"))
    }

    @Test func primeFieldArithmetic() {
        var random = SeededRandomSource(seed: 7, label: "field")
        let p = PrimeField.p
        for _ in 0..<1000 {
            let a = random.nextUInt64() % p, b = 1 + random.nextUInt64() % (p - 1)
            #expect(PrimeField.multiply(PrimeField.multiply(a, b), PrimeField.inverse(b)) == a)
            #expect(PrimeField.add(PrimeField.subtract(a, b), b) == a)
            // Reference product via 128-bit arithmetic.
            let reference = UInt64((UInt128(a) * UInt128(b)) % UInt128(p))
            #expect(PrimeField.multiply(a, b) == reference)
        }
        let values = (1...50).map { UInt64($0) * 7_919 }
        #expect(PrimeField.batchInverse(values) == values.map(PrimeField.inverse))
        #expect(PrimeField.multiply(p - 1, p - 1) == 1)
    }
}

@Suite struct BerlekampWelchTests {
    /// Up to floor((s - t) / 2) wrong shares, anywhere, are corrected and named.
    @Test(arguments: 1...40)
    func correctsAsManyErrorsAsTheRedundancyAllows(seed: Int) throws {
        var random = SeededRandomSource(seed: UInt64(seed), label: "bw")
        let t = 2 + Int(random.nextUInt64(below: 30))
        let s = t + Int(random.nextUInt64(below: 20))
        let secret = SecretBytes(randomCount: 32, using: &random)
        var shares = try ShamirSecretSharing.split(secret, threshold: t, shareCount: s, using: &random)
        let errors = (s - t) / 2
        var corrupted = Set<Int>()
        while corrupted.count < errors { corrupted.insert(Int(random.nextUInt64(below: UInt64(s)))) }
        for i in corrupted {
            var values = shares[i].values.unprotectedCopy()
            values[8 * Int(random.nextUInt64(below: 5))] ^= 0x04
            shares[i] = try ShamirShare(x: shares[i].x, values: SecretBytes(copying: values), commitment: shares[i].commitment)
        }
        // No random subsets: decoding alone must succeed.
        let result = try ShamirSecretSharing.reconstructIdentifyingBadShares(shares, threshold: t, using: &random, maximumAttempts: 0)
        #expect(result.secret == secret)
        #expect(Set(result.badShares) == Set(corrupted.map { shares[$0].x }))
    }
}
