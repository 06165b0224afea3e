import Testing
@testable import VeilCrypto

@Suite struct MaskGeneratorPropertyTests {
    let seed = SecretBytes(copying: (0..<32).map { UInt8($0) })

    func fill<E: MaskElement>(_: E.Type, _ algorithm: PRGAlgorithm, seed: SecretBytes, label: [UInt8], bits: Int, count: Int) throws -> [E] {
        var out = [E](repeating: 0, count: count)
        try out.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in
            try MaskGenerator(algorithm: algorithm).fill(p, seed: seed, label: label, bitWidth: bits)
        }
        return out
    }

    @Test(arguments: PRGAlgorithm.allCases)
    func deterministicAndSeparatedBySeedLabelAndAlgorithm(_ algorithm: PRGAlgorithm) throws {
        let a = try fill(UInt32.self, algorithm, seed: seed, label: [1], bits: 32, count: 64)
        #expect(a == (try fill(UInt32.self, algorithm, seed: seed, label: [1], bits: 32, count: 64)))
        #expect(a != (try fill(UInt32.self, algorithm, seed: seed, label: [2], bits: 32, count: 64)))
        #expect(a != (try fill(UInt32.self, algorithm, seed: SecretBytes(copying: [UInt8](repeating: 7, count: 32)), label: [1], bits: 32, count: 64)))
        let other: PRGAlgorithm = algorithm == .aes128CTR ? .chacha20 : .aes128CTR
        #expect(a != (try fill(UInt32.self, other, seed: seed, label: [1], bits: 32, count: 64)))
        // A prefix of a longer expansion is the shorter expansion.
        #expect(Array(try fill(UInt32.self, algorithm, seed: seed, label: [1], bits: 32, count: 10_000).prefix(64)) == a)
    }

    @Test(arguments: PRGAlgorithm.allCases)
    func everyBitWidthStaysBelowItsModulus(_ algorithm: PRGAlgorithm) throws {
        for bits in 1...64 {
            let values: [UInt64] = bits <= 32
                ? try fill(UInt32.self, algorithm, seed: seed, label: [UInt8(bits)], bits: bits, count: 257).map(UInt64.init)
                : try fill(UInt64.self, algorithm, seed: seed, label: [UInt8(bits)], bits: bits, count: 257)
            let limit: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
            #expect(values.allSatisfy { $0 <= limit })
            // Not degenerate: the top allowed bit occurs.
            #expect(values.contains { $0 >> UInt64(bits - 1) == 1 })
        }
    }

    @Test(arguments: PRGAlgorithm.allCases, [17, 32, 40, 64])
    func accumulateAgreesWithFillAndSubtractionUndoesIt(_ algorithm: PRGAlgorithm, bits: Int) throws {
        // 10,001 elements cross several 16 KiB chunks and end on a partial one.
        let count = 10_001
        let generator = MaskGenerator(algorithm: algorithm)
        func check<E: MaskElement>(_: E.Type) throws {
            let mask = try fill(E.self, algorithm, seed: seed, label: [9], bits: bits, count: count)
            var zeros = [E](repeating: 0, count: count)
            try zeros.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in
                try generator.accumulate(into: p, seed: seed, label: [9], bitWidth: bits)
            }
            #expect(zeros == mask)
            let limit = E(truncatingIfNeeded: bits == 64 ? UInt64.max : (UInt64(1) << UInt64(bits)) - 1)
            let original = (0..<count).map { E(truncatingIfNeeded: $0 &* 2_654_435_761) & limit }
            var vector = original
            try vector.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in
                try generator.accumulate(into: p, seed: seed, label: [9], bitWidth: bits)
                try generator.accumulate(into: p, seed: seed, label: [9], bitWidth: bits, subtracting: true)
            }
            #expect(vector == original)
        }
        if bits <= 32 { try check(UInt32.self) } else { try check(UInt64.self) }
    }

    @Test func wrongElementTypeOrSeedIsRefused() {
        #expect(throws: CryptoError.invalidBitWidth(40, elementBits: 32)) { try fill(UInt32.self, .chacha20, seed: seed, label: [], bits: 40, count: 4) }
        #expect(throws: CryptoError.invalidBitWidth(16, elementBits: 64)) { try fill(UInt64.self, .chacha20, seed: seed, label: [], bits: 16, count: 4) }
        #expect(throws: CryptoError.invalidBitWidth(0, elementBits: 32)) { try fill(UInt32.self, .aes128CTR, seed: seed, label: [], bits: 0, count: 4) }
        #expect(throws: CryptoError.invalidBitWidth(65, elementBits: 64)) { try fill(UInt64.self, .aes128CTR, seed: seed, label: [], bits: 65, count: 4) }
        #expect(throws: CryptoError.invalidLength(what: "PRG seed", expected: 32, actual: 16)) {
            try fill(UInt32.self, .aes128CTR, seed: SecretBytes(copying: [UInt8](repeating: 1, count: 16)), label: [], bits: 32, count: 4)
        }
    }

    @Test func kdfSeparatesLabelsAndContextsAndChecksLengths() throws {
        let a = try KeyDerivation.derive(from: seed, label: "veil/v1/a", context: [1], outputByteCount: 32)
        #expect(a == (try KeyDerivation.derive(from: seed, label: "veil/v1/a", context: [1], outputByteCount: 32)))
        #expect(a != (try KeyDerivation.derive(from: seed, label: "veil/v1/b", context: [1], outputByteCount: 32)))
        #expect(a != (try KeyDerivation.derive(from: seed, label: "veil/v1/a", context: [2], outputByteCount: 32)))
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        #expect(BLAKE2b.hash(label: "ab", message: Array("c".utf8)) != BLAKE2b.hash(label: "a", message: Array("bc".utf8)))
        #expect(throws: CryptoError.invalidOutputLength(15)) { try KeyDerivation.derive(from: seed, label: "x", context: [], outputByteCount: 15) }
        #expect(throws: CryptoError.invalidOutputLength(65)) { try KeyDerivation.derive(from: seed, label: "x", context: [], outputByteCount: 65) }
        #expect(throws: CryptoError.invalidLength(what: "KDF input secret", expected: 32, actual: 8)) {
            try KeyDerivation.derive(from: SecretBytes(copying: [UInt8](repeating: 0, count: 8)), label: "x", context: [], outputByteCount: 32)
        }
    }
}
