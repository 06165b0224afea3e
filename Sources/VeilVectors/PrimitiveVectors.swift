import VeilCrypto
import VeilProtocol

/// The known-answer vectors of single primitives and derivations: KDF, PRG, Shamir, sealed share
/// and Harary graph. Every file is a function of fixed inputs only.
enum PrimitiveVectors {
    /// The round id used where a derivation needs one.
    static let roundID = try! RoundID(bytes: pattern(16, from: 0x10))

    // MARK: - kdf.json

    struct KDFFile: Encodable {
        let description: String
        let cases: [Case]

        struct Case: Encodable {
            let secret, label, context, input, output: String
            let outputByteCount: Int
        }
    }

    static func kdf() -> KDFFile {
        let ctx = context(roundID, 3, 5)
        let specs: [(secret: [UInt8], label: String, context: [UInt8], length: Int)] = [
            (pattern(32, from: 0x00), "veil/v1/share-key", ctx, 32),
            (pattern(32, from: 0x00), "veil/v1/share-nonce", ctx, 24),
            (pattern(32, from: 0x20), "veil/v1/pairwise-seed", ctx, 32),
            (pattern(32, from: 0x40), "veil/v1/prg/aes-128-ctr", ProtocolEncoding.selfMaskLabel(round: roundID, device: 7), 48),
            (pattern(32, from: 0x60), "veil/v1/prg/chacha20", ProtocolEncoding.pairwiseMaskLabel(round: roundID, 2, 9), 48),
            (pattern(16, from: 0x80), "veil/v1/example", [], 16),
            (pattern(64, from: 0x90), "v", pattern(100, from: 0x01), 64),
            (pattern(32, from: 0xA0), String(repeating: "L", count: 255), pattern(3, from: 0xFD), 33),
        ]
        let cases = specs.map { spec in
            let secret = SecretBytes(copying: spec.secret)
            let output = try! KeyDerivation.derive(from: secret, label: spec.label, context: spec.context, outputByteCount: spec.length)
            let input = [UInt8(spec.label.utf8.count)] + Array(spec.label.utf8) + spec.context
            return KDFFile.Case(
                secret: hex(spec.secret), label: spec.label, context: hex(spec.context), input: hex(input),
                output: hex(output), outputByteCount: spec.length)
        }
        return KDFFile(
            description: "KDF(secret, label, context, outputByteCount) = keyed BLAKE2b (key = secret, outlen = outputByteCount) of input = len(label) || label || context (SPEC.md §1, §3.2). Every input is a fixed byte string recorded here: nothing is drawn from a random source",
            cases: cases)
    }

    // MARK: - prg.json

    struct PRGFile: Encodable {
        let description: String
        let count: Int
        let tailStart: Int
        let cases: [Case]

        struct Case: Encodable {
            let algorithm: String
            let bitWidth: Int
            let seed, label, keyMaterial, keystream: String
            let count, wordByteCount: Int
            let elements: [UInt64]
            let tailElements: [UInt64]
        }
    }

    /// Elements expanded per case; more than 16 KiB of keystream at either word width, so that a
    /// keystream produced in pieces is checked across piece boundaries.
    static let prgCount = 5000
    static let prgHead = 16

    static func prg() -> PRGFile {
        var cases = [PRGFile.Case]()
        for algorithm in PRGAlgorithm.allCases {
            for bits in [1, 16, 32, 33, 64] {
                let seed = SecretBytes(copying: pattern(32, from: UInt8(bits) &* 3))
                let label = bits <= 32
                    ? ProtocolEncoding.selfMaskLabel(round: roundID, device: UInt32(bits))
                    : ProtocolEncoding.pairwiseMaskLabel(round: roundID, 1, UInt32(bits))
                let material = try! KeyDerivation.derive(
                    from: seed, label: "veil/v1/prg/" + algorithm.rawValue, context: label, outputByteCount: 48)
                let wordBytes = bits <= 32 ? 4 : 8
                let generator = MaskGenerator(algorithm: algorithm)
                var vector = ModularVector(zerosOfCount: prgCount, bitWidth: bits)
                try! vector.applyMask(seed: seed, label: label, generator: generator)
                let elements = vector.elements
                precondition(filled(generator, seed: seed, label: label, bitWidth: bits, count: prgHead) == Array(elements.prefix(prgHead)),
                             "fill and accumulate disagree")
                let words = filled(generator, seed: seed, label: label, bitWidth: wordBytes * 8, count: prgHead)
                let keystream = words.flatMap { word in (0..<wordBytes).map { UInt8(truncatingIfNeeded: word >> UInt64(8 * $0)) } }
                cases.append(PRGFile.Case(
                    algorithm: algorithm.rawValue, bitWidth: bits, seed: hex(seed), label: hex(label),
                    keyMaterial: hex(material), keystream: hex(keystream), count: prgCount, wordByteCount: wordBytes,
                    elements: Array(elements.prefix(prgHead)), tailElements: Array(elements.suffix(prgHead))))
            }
        }
        return PRGFile(
            description: "PRG(seed, label, b, count) (SPEC.md §3.5): keyMaterial = KDF(seed, \"veil/v1/prg/\" || algorithm, label, 48); keystream = its first 16 words; elements = the first 16 and tailElements the last 16 of count elements (count is given per case and at the top level; tailElements start at tailStart = count - 16). Every input is a fixed byte string recorded here: nothing is drawn from a random source",
            count: prgCount, tailStart: prgCount - prgHead, cases: cases)
    }

    /// The first `count` elements through `MaskGenerator.fill`, at the word type b requires.
    static func filled(_ generator: MaskGenerator, seed: SecretBytes, label: [UInt8], bitWidth: Int, count: Int) -> [UInt64] {
        if bitWidth <= 32 {
            var out = [UInt32](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { try! generator.fill($0, seed: seed, label: label, bitWidth: bitWidth) }
            return out.map(UInt64.init)
        }
        var out = [UInt64](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { try! generator.fill($0, seed: seed, label: label, bitWidth: bitWidth) }
        return out
    }

    // MARK: - shamir.json

    struct ShamirFile: Encodable {
        let description: String
        let secret, commitment, randomKey: String
        let threshold: Int
        let limbs: [UInt64]
        let coefficients: [[UInt64]]
        let shares: [Share]
        let reconstructions: [Reconstruction]

        struct Share: Encodable { let x: UInt32; let values: String }
        struct Reconstruction: Encodable { let xs: [UInt32]; let secret: String }
    }

    static func shamir() -> ShamirFile {
        let secret = SecretBytes(copying: pattern(32, from: 0xA0))
        let randomKey = pattern(32, from: 0x07)
        let threshold = 3
        // Share holders 0, 1, 2, 4 and 7: x = holder + 1.
        let xs: [UInt32] = [0, 1, 2, 4, 7].map { ProtocolEncoding.shareXCoordinate(holder: $0) }

        // The coefficients the split draws, replayed from a copy of its random source (SPEC.md §3.6).
        let bytes = secret.unprotectedCopy()
        var offset = 0
        var limbs = [UInt64]()
        for width in [7, 7, 7, 7, 4] {
            limbs.append((0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << UInt64(8 * $1) })
            offset += width
        }
        var replay = try! SeededRandomSource(seed: SecretBytes(copying: randomKey))
        let p: UInt64 = (1 << 61) - 1
        let coefficients = limbs.map { limb in
            [limb] + (1..<threshold).map { _ in
                while true {
                    let candidate = replay.nextUInt64() & p
                    if candidate < p { return candidate }
                }
            }
        }

        var random = try! SeededRandomSource(seed: SecretBytes(copying: randomKey))
        let shares = try! ShamirSecretSharing.split(secret, threshold: threshold, xCoordinates: xs, using: &random)
        let subsets: [[UInt32]] = [[1, 2, 3], [2, 5, 8], [8, 5, 1], [3, 5, 8, 1]]
        let reconstructions = subsets.map { subset in
            let chosen = subset.map { x in shares.first { $0.x == x }! }
            return ShamirFile.Reconstruction(xs: subset, secret: hex(try! ShamirSecretSharing.reconstruct(chosen, threshold: threshold)))
        }
        return ShamirFile(
            description: "Shamir t-of-n over GF(2^61 - 1) of a 32-byte secret (SPEC.md §3.6): limbs are the secret's 7,7,7,7,4-byte little-endian pieces; coefficients[j] is f_j lowest degree first, the random ones drawn from the SPEC.md Appendix A source keyed with randomKey: limb-major (limb 0 to 4, and within a limb degree 1 to threshold - 1), each coefficient is u64() & (2^61 - 1), drawn again while it equals 2^61 - 1, where u64() is one 8-byte draw read little-endian; each share's values are f_0(x)..f_4(x) as 8-byte little-endian words; a reconstruction uses the first threshold shares of xs, in that order",
            secret: hex(secret), commitment: hex(shares[0].commitment.bytes), randomKey: hex(randomKey), threshold: threshold,
            limbs: limbs, coefficients: coefficients,
            shares: shares.map { ShamirFile.Share(x: $0.x, values: hex($0.values)) },
            reconstructions: reconstructions)
    }

    // MARK: - sealed-share.json

    struct SealedShareFile: Encodable {
        let description: String
        let roundID: String
        let sender, recipient: UInt32
        let senderPrivateKey, senderPublicKey, recipientPrivateKey, recipientPublicKey: String
        let sharedSecret, context, key, nonce, associatedData, plaintext, ciphertext: String
    }

    static func sealedShare() -> SealedShareFile {
        let (sender, recipient): (UInt32, UInt32) = (3, 5)
        let a = try! X25519.PrivateKey(rawRepresentation: SecretBytes(copying: pattern(32, from: 0x20)))
        let b = try! X25519.PrivateKey(rawRepresentation: SecretBytes(copying: pattern(32, from: 0x60)))
        let shared = try! a.sharedSecret(with: b.publicKey)
        precondition(shared == (try! b.sharedSecret(with: a.publicKey)), "X25519 is not symmetric")
        let ctx = context(roundID, sender, recipient)
        let key = try! KeyDerivation.derive(from: shared.bytes, label: "veil/v1/share-key", context: ctx, outputByteCount: 32)
        let nonce = try! KeyDerivation.derive(from: shared.bytes, label: "veil/v1/share-nonce", context: ctx, outputByteCount: 24)
        let (aeadKey, aeadNonce) = try! ProtocolEncoding.shareEncryptionKey(sharedSecret: shared, round: roundID, sender: sender, recipient: recipient)
        precondition(aeadNonce.bytes == nonce.unprotectedCopy(), "share nonce derivation differs from SPEC.md §4.1")
        let ad = ProtocolEncoding.shareAssociatedData(round: roundID, sender: sender, recipient: recipient)
        let plaintext = SecretBytes(copying: pattern(80, from: 0xC0))
        let ciphertext = XChaCha20Poly1305.seal(plaintext, key: aeadKey, nonce: aeadNonce, associatedData: ad)
        precondition(ciphertext == XChaCha20Poly1305.seal(
            plaintext, key: try! XChaCha20Poly1305.Key(key), nonce: aeadNonce, associatedData: ad), "share key derivation differs from SPEC.md §4.1")
        return SealedShareFile(
            description: "A share pair sealed from sender to recipient (SPEC.md §4.1, §4.2): sharedSecret = X25519(senderPrivateKey, recipientPublicKey); context = rid || u32(sender) || u32(recipient); key = KDF(sharedSecret, \"veil/v1/share-key\", context, 32); nonce = KDF(sharedSecret, \"veil/v1/share-nonce\", context, 24); ciphertext = XChaCha20-Poly1305-IETF(key, nonce, associatedData, plaintext) with the tag appended. Every input is a fixed byte string recorded here: nothing is drawn from a random source",
            roundID: hex(roundID.bytes), sender: sender, recipient: recipient,
            senderPrivateKey: hex(a.rawRepresentation), senderPublicKey: hex(a.publicKey.rawRepresentation),
            recipientPrivateKey: hex(b.rawRepresentation), recipientPublicKey: hex(b.publicKey.rawRepresentation),
            sharedSecret: hex(shared.bytes), context: hex(ctx), key: hex(key), nonce: hex(nonce), associatedData: hex(ad),
            plaintext: hex(plaintext), ciphertext: hex(ciphertext))
    }

    // MARK: - harary.json

    struct HararyFile: Encodable {
        let description: String
        let roundSeed, permutationKey: String
        let cohortSize, degree: Int
        let swaps: [Swap]
        let permutation: [UInt32]
        let neighbours: [[UInt32]]

        struct Swap: Encodable { let i: Int; let j: Int }
    }

    static func harary() -> HararyFile {
        let (n, k) = (20, 6)
        let seed = pattern(32, from: 0x33)
        let configuration = try! RoundConfiguration(
            roundID: roundID, roundSeed: seed, cohortSize: n, dimension: 1, bitWidth: 8,
            prg: .aes128CTR, graph: .harary(degree: k), threshold: 4, threatModel: .honestButCurious)
        let graph = NeighbourGraph(configuration: configuration)

        // The permutation by the procedure of SPEC.md §5, from the public API only.
        let key = BLAKE2b.hash(label: "veil/v1/harary-permutation", message: seed, outputByteCount: 32)
        var random = try! SeededRandomSource(seed: SecretBytes(copying: key))
        var order = (0..<UInt32(n)).map { $0 }
        var swaps = [HararyFile.Swap]()
        for i in stride(from: n - 1, through: 1, by: -1) {
            let j = Int(random.nextUInt64(below: UInt64(i + 1)))
            swaps.append(.init(i: i, j: j))
            order.swapAt(i, j)
        }
        var neighbours = [[UInt32]]()
        for d in 0..<UInt32(n) {
            let p = order.firstIndex(of: d)!
            let ring = (1...(k / 2)).flatMap { [order[(p + $0) % n], order[(p - $0 + n) % n]] }.sorted()
            precondition(ring == graph.neighbours(of: d), "Harary neighbours differ from SPEC.md §5")
            neighbours.append(ring)
        }
        return HararyFile(
            description: "Harary graph (SPEC.md §5): permutationKey = BLAKE2b-256 of len || \"veil/v1/harary-permutation\" || roundSeed; swaps are the Fisher-Yates steps (j = below(i + 1) from the SPEC.md Appendix A source keyed with permutationKey, which is the source R of §5); permutation[p] is the device at ring position p; neighbours[d] ascending",
            roundSeed: hex(seed), permutationKey: hex(key), cohortSize: n, degree: k, swaps: swaps,
            permutation: order, neighbours: neighbours)
    }

    // MARK: - random-source.json

    struct RandomSourceFile: Encodable {
        let description: String
        let streams: [Stream]

        struct Stream: Encodable {
            /// Set for a source made from a 64-bit number and a label; key is then derived.
            let seed: UInt64?
            let label, hashInput: String?
            let key: String
            let draws: [Draw]
        }

        struct Draw: Encodable {
            let byteCount: Int
            /// The ChaCha20 nonce of the draw; absent for an empty draw, which uses none.
            let nonce: String?
            let output: String
        }
    }

    /// Draw sizes: two 32-byte keys, one `u64()`, an empty draw, a draw over a ChaCha20 block
    /// boundary and another `u64()`.
    static let randomDrawSizes = [32, 32, 8, 0, 100, 8]

    static func randomSource() -> RandomSourceFile {
        func draws(_ source: inout SeededRandomSource) -> [RandomSourceFile.Draw] {
            var counter: UInt64 = 0
            return randomDrawSizes.map { size in
                let output = source.bytes(count: size)
                guard size > 0 else { return .init(byteCount: 0, nonce: nil, output: "") }
                defer { counter += 1 }
                return .init(byteCount: size, nonce: hex(withUnsafeBytes(of: counter.littleEndian) { Array($0) }), output: hex(output))
            }
        }
        let key = pattern(32, from: 0x40)
        var keyed = try! SeededRandomSource(seed: SecretBytes(copying: key))

        let (number, label) = (UInt64(7), "device-3")
        let material = withUnsafeBytes(of: number.littleEndian) { Array($0) } + Array(label.utf8)
        let derivedKey = BLAKE2b.hash(label: "veil/v1/seeded-random", message: material, outputByteCount: 32)
        var labelled = SeededRandomSource(seed: number, label: label)
        var rekeyed = try! SeededRandomSource(seed: SecretBytes(copying: derivedKey))
        let labelledDraws = draws(&labelled)
        precondition(labelledDraws.map(\.output) == draws(&rekeyed).map(\.output), "init(seed:label:) differs from SPEC.md Appendix A")

        return RandomSourceFile(
            description: "The vectors' deterministic random source (SPEC.md Appendix A): draw number c (c = 0, 1, ...; an empty draw uses no number) of L bytes is the first L bytes of the original ChaCha20 keystream (64-bit nonce, 64-bit block counter from 0) under key with nonce u64le(c); draws lists each stream's draws in order. A stream made from a 64-bit seed and a label has key = BLAKE2b-256 of hashInput = len(\"veil/v1/seeded-random\") || \"veil/v1/seeded-random\" || u64le(seed) || UTF-8(label)",
            streams: [
                .init(seed: nil, label: nil, hashInput: nil, key: hex(key), draws: draws(&keyed)),
                .init(
                    seed: number, label: label,
                    hashInput: hex([UInt8("veil/v1/seeded-random".utf8.count)] + Array("veil/v1/seeded-random".utf8) + material),
                    key: hex(derivedKey), draws: labelledDraws),
            ])
    }
}
