import Foundation
import Testing
import VeilCrypto
@testable import VeilProtocol

/// The committed known-answer vectors in `Protocols/vectors/` are reproduced by the code: every
/// derivation is recomputed, the PRG re-expanded, Shamir shares rebuilt and reconstructed, the
/// recorded round replayed message for message from its recorded randomness, and the random draws
/// of every file re-derived from SPEC.md Appendix A with a ChaCha20 written out in this file.
///
/// A failure here means an encoding, a derivation or the protocol changed. If the change is
/// intended, run `Protocols/vectors/generate`, review the diff and update `SPEC.md` with it.
@Suite struct VectorTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocols/vectors")

    static func load<T: Decodable>(_: T.Type, _ name: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: folder.appendingPathComponent(name)))
    }

    // MARK: - kdf.json

    struct KDFFile: Decodable {
        let cases: [Case]
        struct Case: Decodable { let secret, label, context, input, output: String; let outputByteCount: Int }
    }

    @Test func kdfVectorsMatch() throws {
        let file = try Self.load(KDFFile.self, "kdf.json")
        #expect(file.cases.count >= 8)
        for c in file.cases {
            let context = try bytes(c.context)
            #expect(try bytes(c.input) == [UInt8(c.label.utf8.count)] + Array(c.label.utf8) + context, "input of \(c.label)")
            let output = try KeyDerivation.derive(
                from: SecretBytes(copying: bytes(c.secret)), label: c.label, context: context, outputByteCount: c.outputByteCount)
            #expect(output.unprotectedCopy() == (try bytes(c.output)), "KDF output for \(c.label)")
        }
    }

    // MARK: - prg.json

    struct PRGFile: Decodable {
        let count, tailStart: Int
        let cases: [Case]
        struct Case: Decodable {
            let algorithm: String
            let bitWidth, count, wordByteCount: Int
            let seed, label, keyMaterial, keystream: String
            let elements, tailElements: [UInt64]
        }
    }

    @Test func prgVectorsMatch() throws {
        let file = try Self.load(PRGFile.self, "prg.json")
        #expect(file.cases.count == 10)
        for c in file.cases {
            let name = "\(c.algorithm) b=\(c.bitWidth)"
            // Each case records how many elements it expanded; the tail is its last 16.
            #expect(c.count == file.count, "element count of \(name)")
            #expect(c.count > 16 * 1024 / c.wordByteCount, "\(name) crosses a 16 KiB keystream chunk")
            #expect(file.tailStart == c.count - c.tailElements.count, "tail start of \(name)")
            let algorithm = try #require(PRGAlgorithm(rawValue: c.algorithm))
            let seed = SecretBytes(copying: try bytes(c.seed))
            let label = try bytes(c.label)
            let material = try KeyDerivation.derive(from: seed, label: "veil/v1/prg/" + c.algorithm, context: label, outputByteCount: 48)
            #expect(material.unprotectedCopy() == (try bytes(c.keyMaterial)), "key material of \(name)")

            // The raw keystream: words at full width, as little-endian bytes.
            let w = c.wordByteCount
            #expect(w == (c.bitWidth <= 32 ? 4 : 8))
            let generator = MaskGenerator(algorithm: algorithm)
            var words = [UInt64]()
            if w == 4 {
                var out = [UInt32](repeating: 0, count: c.elements.count)
                try out.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in try generator.fill(p, seed: seed, label: label, bitWidth: 32) }
                words = out.map(UInt64.init)
            } else {
                var out = [UInt64](repeating: 0, count: c.elements.count)
                try out.withUnsafeMutableBufferPointer { (p) throws(CryptoError) in try generator.fill(p, seed: seed, label: label, bitWidth: 64) }
                words = out
            }
            let keystream = words.flatMap { word in (0..<w).map { UInt8(truncatingIfNeeded: word >> UInt64(8 * $0)) } }
            #expect(keystream == (try bytes(c.keystream)), "keystream of \(name)")

            // Elements are the words' low b bits (SPEC.md §3.5), checked independently of the code.
            let mask = ModularVector.modulusMask(c.bitWidth)
            #expect(c.elements == words.map { $0 & mask }, "reduction rule for \(name)")

            // The protocol's path: accumulate into a zero vector.
            var vector = ModularVector(zerosOfCount: c.count, bitWidth: c.bitWidth)
            try vector.applyMask(seed: seed, label: label, generator: generator)
            let elements = vector.elements
            #expect(Array(elements.prefix(c.elements.count)) == c.elements, "first elements of \(name)")
            #expect(elements.count == c.count)
            #expect(Array(elements.suffix(c.tailElements.count)) == c.tailElements, "last elements of \(name)")
        }
    }

    // MARK: - shamir.json

    struct ShamirFile: Decodable {
        let secret, commitment, randomKey: String
        let threshold: Int
        let limbs: [UInt64]
        let coefficients: [[UInt64]]
        let shares: [Share]
        let reconstructions: [Reconstruction]
        struct Share: Decodable { let x: UInt32; let values: String }
        struct Reconstruction: Decodable { let xs: [UInt32]; let secret: String }
    }

    @Test func shamirVectorsMatch() throws {
        let file = try Self.load(ShamirFile.self, "shamir.json")
        let p: UInt64 = (1 << 61) - 1
        let secretBytes = try bytes(file.secret)
        let secret = SecretBytes(copying: secretBytes)
        #expect(BLAKE2b.hash(label: "veil/v1/shamir-commitment", message: secretBytes) == (try bytes(file.commitment)))

        // Limbs: 7, 7, 7, 7 and 4 bytes, little-endian.
        var offset = 0
        var limbs = [UInt64]()
        for width in [7, 7, 7, 7, 4] {
            limbs.append((0..<width).reduce(UInt64(0)) { $0 | UInt64(secretBytes[offset + $1]) << UInt64(8 * $1) })
            offset += width
        }
        #expect(file.limbs == limbs)

        // Coefficients: constant term the limb, then draws of (nextUInt64 & p) rejecting p, limb-major.
        var replay = try SeededRandomSource(seed: SecretBytes(copying: bytes(file.randomKey)))
        for (j, polynomial) in file.coefficients.enumerated() {
            #expect(polynomial.count == file.threshold)
            #expect(polynomial.first == limbs[j])
            for degree in 1..<file.threshold {
                var draw = replay.nextUInt64() & p
                while draw == p { draw = replay.nextUInt64() & p }
                #expect(polynomial[degree] == draw, "coefficient \(degree) of limb \(j)")
            }
        }

        // Share values: f_0(x) ... f_4(x), 8 bytes little-endian each, evaluated independently.
        func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 { p.dividingFullWidth(a.multipliedFullWidth(by: b)).remainder }
        for share in file.shares {
            let expected = file.coefficients.flatMap { polynomial in
                let value = polynomial.reversed().reduce(UInt64(0)) { (multiply($0, UInt64(share.x)) + $1) % p }
                return (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) }
            }
            #expect(try bytes(share.values) == expected, "share at x = \(share.x)")
        }

        // The code's split reproduces the shares from the same random source.
        var random = try SeededRandomSource(seed: SecretBytes(copying: bytes(file.randomKey)))
        let split = try ShamirSecretSharing.split(secret, threshold: file.threshold, xCoordinates: file.shares.map(\.x), using: &random)
        #expect(split.map { $0.values.unprotectedCopy() } == (try file.shares.map { try bytes($0.values) }))

        // Reconstruction from the listed subsets.
        let commitment = try ShamirCommitment(bytes: bytes(file.commitment))
        for reconstruction in file.reconstructions {
            let chosen = try reconstruction.xs.map { x in
                let share = try #require(file.shares.first { $0.x == x })
                return try ShamirShare(x: x, values: SecretBytes(copying: bytes(share.values)), commitment: commitment)
            }
            let rebuilt = try ShamirSecretSharing.reconstruct(chosen, threshold: file.threshold)
            #expect(rebuilt.unprotectedCopy() == (try bytes(reconstruction.secret)), "reconstruction from \(reconstruction.xs)")
            #expect(rebuilt == secret)
        }
    }

    // MARK: - sealed-share.json

    struct SealedShareFile: Decodable {
        let roundID: String
        let sender, recipient: UInt32
        let senderPrivateKey, senderPublicKey, recipientPrivateKey, recipientPublicKey: String
        let sharedSecret, context, key, nonce, associatedData, plaintext, ciphertext: String
    }

    @Test func sealedShareVectorMatches() throws {
        let file = try Self.load(SealedShareFile.self, "sealed-share.json")
        let round = try RoundID(bytes: bytes(file.roundID))
        let a = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: bytes(file.senderPrivateKey)))
        let b = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: bytes(file.recipientPrivateKey)))
        #expect(a.publicKey.rawRepresentation == (try bytes(file.senderPublicKey)))
        #expect(b.publicKey.rawRepresentation == (try bytes(file.recipientPublicKey)))
        let senderSide = try a.sharedSecret(with: b.publicKey)
        let recipientSide = try b.sharedSecret(with: a.publicKey)
        #expect(senderSide.bytes.unprotectedCopy() == (try bytes(file.sharedSecret)))
        #expect(recipientSide == senderSide)

        let context = round.bytes + bigEndian(file.sender) + bigEndian(file.recipient)
        #expect(context == (try bytes(file.context)))
        let key = try KeyDerivation.derive(from: senderSide.bytes, label: "veil/v1/share-key", context: context, outputByteCount: 32)
        let nonce = try KeyDerivation.derive(from: senderSide.bytes, label: "veil/v1/share-nonce", context: context, outputByteCount: 24)
        #expect(key.unprotectedCopy() == (try bytes(file.key)))
        #expect(nonce.unprotectedCopy() == (try bytes(file.nonce)))
        let ad = Array("veil/v1/share".utf8) + context
        #expect(ad == (try bytes(file.associatedData)))
        #expect(ProtocolEncoding.shareAssociatedData(round: round, sender: file.sender, recipient: file.recipient) == ad)

        // The protocol's derivation seals to the recorded ciphertext; the recipient's opens it.
        let plaintext = SecretBytes(copying: try bytes(file.plaintext))
        let (sealKey, sealNonce) = try ProtocolEncoding.shareEncryptionKey(sharedSecret: senderSide, round: round, sender: file.sender, recipient: file.recipient)
        #expect(sealNonce.bytes == nonce.unprotectedCopy())
        let ciphertext = XChaCha20Poly1305.seal(plaintext, key: sealKey, nonce: sealNonce, associatedData: ad)
        #expect(ciphertext == (try bytes(file.ciphertext)))
        #expect(ciphertext == XChaCha20Poly1305.seal(plaintext, key: try XChaCha20Poly1305.Key(key), nonce: sealNonce, associatedData: ad))
        let (openKey, openNonce) = try ProtocolEncoding.shareEncryptionKey(sharedSecret: recipientSide, round: round, sender: file.sender, recipient: file.recipient)
        #expect(try XChaCha20Poly1305.open(bytes(file.ciphertext), key: openKey, nonce: openNonce, associatedData: ad) == plaintext)
    }

    // MARK: - harary.json

    struct HararyFile: Decodable {
        let roundSeed, permutationKey: String
        let cohortSize, degree: Int
        let swaps: [Swap]
        let permutation: [UInt32]
        let neighbours: [[UInt32]]
        struct Swap: Decodable { let i, j: Int }
    }

    @Test func hararyVectorMatches() throws {
        let file = try Self.load(HararyFile.self, "harary.json")
        let seed = try bytes(file.roundSeed)
        let key = BLAKE2b.hash(label: "veil/v1/harary-permutation", message: seed)
        #expect(key == (try bytes(file.permutationKey)))

        // Fisher-Yates, replayed step by step from the seeded source.
        var random = try SeededRandomSource(seed: SecretBytes(copying: key))
        var order = (0..<UInt32(file.cohortSize)).map { $0 }
        #expect(file.swaps.map(\.i) == Array(stride(from: file.cohortSize - 1, through: 1, by: -1)))
        for swap in file.swaps {
            let j = Int(random.nextUInt64(below: UInt64(swap.i + 1)))
            #expect(j == swap.j, "swap at i = \(swap.i)")
            order.swapAt(swap.i, j)
        }
        #expect(order == file.permutation)
        #expect(NeighbourGraph.permutation(count: file.cohortSize, roundSeed: seed) == file.permutation)

        let configuration = try RoundConfiguration(
            roundID: RoundID(bytes: [UInt8](repeating: 0, count: 16)), roundSeed: seed, cohortSize: file.cohortSize, dimension: 1,
            bitWidth: 8, prg: .aes128CTR, graph: .harary(degree: file.degree), threshold: 1, threatModel: .honestButCurious)
        let graph = NeighbourGraph(configuration: configuration)
        for d in 0..<UInt32(file.cohortSize) {
            let list = file.neighbours[Int(d)]
            #expect(graph.neighbours(of: d) == list, "neighbours of \(d)")
            // Ring positions p ± 1 ... p ± k/2, independently of the code.
            let p = file.permutation.firstIndex(of: d)!
            let n = file.cohortSize
            let ring = (1...(file.degree / 2)).flatMap { [file.permutation[(p + $0) % n], file.permutation[(p - $0 + n) % n]] }
            #expect(ring.sorted() == list)
            for j in list { #expect(file.neighbours[Int(j)].contains(d), "symmetry of \(d) and \(j)") }
        }
    }

    // MARK: - round.json

    struct RoundFile: Decodable {
        let configuration: Configuration
        let devices: [Device]
        let serverRandomKey: String
        let silentFrom: [Silence]
        let messages: [Record]
        let phases: [PhaseRecord]
        let result: Result

        struct Configuration: Decodable {
            let roundID, roundSeed: String
            let cohortSize, dimension, bitWidth, degree, threshold: Int
            let prg, graph, threatModel: String
        }
        struct Device: Decodable {
            let device: UInt32
            let randomKey, encryptionPrivateKey, maskingPrivateKey, selfMaskSeed: String
            let input: [UInt64]
        }
        struct Silence: Decodable { let device: UInt32; let phase: String }
        struct PhaseRecord: Decodable { let phase: String; let recipients: [UInt32] }
        struct Result: Decodable {
            let survivors: [UInt32]
            let sum: [UInt64]
            let droppedInPhase: [String: [UInt32]]
            let misbehaving: [UInt32]
        }
    }

    /// One recorded message; only the fields of its `type` are present.
    struct Record: Decodable {
        let from: String
        let device: UInt32
        let phase, type: String
        let encryptionKey, maskingKey, signature, maskingKeyCommitment, selfMaskCommitment, packed: String?
        let shares: [Sealed]?
        let elements: [UInt64]?
        let selfMaskShares, maskingKeyShares: [Revealed]?
        let neighbours: [Keys]?
        let survivors, survivingNeighbours, droppedNeighbours: [UInt32]?
        let signatures: [NeighbourSignature]?

        struct Sealed: Decodable { let sender, recipient: UInt32; let ciphertext, maskingKeyShareDigest, selfMaskShareDigest: String }
        struct Revealed: Decodable { let owner: UInt32; let values: String }
        struct Keys: Decodable { let device: UInt32; let encryptionKey, maskingKey: String; let signature, identityKey: String? }
        struct NeighbourSignature: Decodable { let device: UInt32; let signature: String }
    }

    @Test func roundVectorReplaysMessageForMessage() throws {
        let file = try Self.load(RoundFile.self, "round.json")
        let c = file.configuration
        let configuration = try RoundConfiguration(
            roundID: RoundID(bytes: bytes(c.roundID)), roundSeed: bytes(c.roundSeed), cohortSize: c.cohortSize,
            dimension: c.dimension, bitWidth: c.bitWidth, prg: #require(PRGAlgorithm(rawValue: c.prg)),
            graph: c.graph == "complete" ? .complete : .harary(degree: c.degree), threshold: c.threshold,
            threatModel: #require(ThreatModel(rawValue: c.threatModel)))
        #expect(configuration.degree == c.degree)
        let graph = NeighbourGraph(configuration: configuration)
        let n = UInt32(c.cohortSize)
        #expect(file.devices.map(\.device) == Array(0..<n))

        // Each device's first three draws are its two X25519 private keys and its self-mask seed.
        var randoms = try file.devices.map { try SeededRandomSource(seed: SecretBytes(copying: bytes($0.randomKey))) }
        for device in file.devices {
            var replay = randoms[Int(device.device)]
            #expect(replay.bytes(count: 32) == (try bytes(device.encryptionPrivateKey)))
            #expect(replay.bytes(count: 32) == (try bytes(device.maskingPrivateKey)))
            #expect(replay.bytes(count: 32) == (try bytes(device.selfMaskSeed)))
        }
        var sessions = try file.devices.map { device in
            try DeviceSession(
                configuration: configuration, graph: graph, device: device.device, identity: nil,
                input: ModularVector(values: device.input, bitWidth: c.bitWidth), policy: .permissiveForTests)
        }
        var serverRandom = try SeededRandomSource(seed: SecretBytes(copying: bytes(file.serverRandomKey)))
        var server = try AggregationSession(configuration: configuration, graph: graph, workers: 1)
        let silence = try Dictionary(uniqueKeysWithValues: file.silentFrom.map { ($0.device, try #require(Phase(rawValue: $0.phase))) })

        var pending = file.messages[...]
        func next(_ from: String, _ device: UInt32, _ phase: Phase) throws -> Record {
            let popped = pending.popFirst()
            let record = try #require(popped, "the vector has fewer messages than the round")
            #expect(record.from == from && record.device == device && record.phase == phase.rawValue,
                    "expected a \(phase.rawValue) message from \(from) for device \(device), found \(record.from) \(record.device) \(record.phase)")
            return record
        }

        // Every produced message must equal the recorded one; the recorded one is what the other
        // side receives, so the file alone is enough to drive either side.
        for d in 0..<n {
            let produced = try sessions[Int(d)].start(using: &randoms[Int(d)])
            let recorded = try deviceMessage(next("device", d, .advertiseKeys), bitWidth: c.bitWidth, dimension: c.dimension)
            #expect(produced == recorded, "AdvertiseKeys of device \(d)")
            if case let .advertiseKeys(encryptionKey, maskingKey, _, _) = recorded {
                let device = file.devices[Int(d)]
                #expect(try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: bytes(device.encryptionPrivateKey))).publicKey == encryptionKey)
                #expect(try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: bytes(device.maskingPrivateKey))).publicKey == maskingKey)
            }
            try server.receive(recorded, from: d)
        }
        var phases = file.phases[...]
        while server.closePhase(using: &serverRandom) == nil {
            let phase = try #require(server.phase)
            let openedPhase = phases.popFirst()
            let opened = try #require(openedPhase)
            #expect(opened.phase == phase.rawValue && opened.recipients == server.recipients, "phase \(phase.rawValue) and its recipients")
            for d in server.recipients {
                let produced = try #require(server.outgoingMessage(for: d))
                let recorded = try serverMessage(next("server", d, phase), for: d)
                #expect(produced == recorded, "\(phase.rawValue) message to device \(d)")
                if let silent = silence[d], phase >= silent {
                    server.deviceLeft(d)
                    continue
                }
                let answer = try sessions[Int(d)].handle(recorded, using: &randoms[Int(d)])
                let recordedAnswer = try deviceMessage(next("device", d, phase), bitWidth: c.bitWidth, dimension: c.dimension)
                #expect(answer == recordedAnswer, "\(phase.rawValue) answer of device \(d)")
                try server.receive(recordedAnswer, from: d)
            }
        }
        #expect(pending.isEmpty, "the vector has \(pending.count) messages the round did not produce")
        #expect(phases.isEmpty)

        guard case let .finished(result) = try #require(server.outcome) else { Issue.record("the round did not finish"); return }
        #expect(result.survivors == file.result.survivors)
        #expect(result.sum.elements == file.result.sum)
        #expect(result.misbehaving.keys.sorted() == file.result.misbehaving)
        let dropped = Dictionary(uniqueKeysWithValues: result.droppedInPhase.filter { !$0.value.isEmpty }.map { ($0.key.rawValue, $0.value) })
        #expect(dropped == file.result.droppedInPhase)
        // And the sum is the plaintext sum of the survivors' inputs modulo 2^b.
        let mask = ModularVector.modulusMask(c.bitWidth)
        let plaintext = (0..<c.dimension).map { e in
            file.result.survivors.reduce(UInt64(0)) { ($0 &+ file.devices[Int($1)].input[e]) & mask }
        }
        #expect(file.result.sum == plaintext)
    }

    // MARK: - random-source.json: SPEC.md Appendix A

    struct RandomSourceFile: Decodable {
        let streams: [Stream]
        struct Stream: Decodable {
            let seed: UInt64?
            let label, hashInput: String?
            let key: String
            let draws: [Draw]
        }
        struct Draw: Decodable { let byteCount: Int; let nonce: String?; let output: String }
    }

    /// The ChaCha20 written out in this file agrees with libsodium's: the published all-zero
    /// vector, the library's zero-key keystream, and the ChaCha20 keystreams of prg.json (§3.5),
    /// which libsodium produced under KDF-derived keys and nonces.
    @Test func referenceChaCha20MatchesLibsodium() throws {
        let zeroKey = [UInt8](repeating: 0, count: 32)
        let zeroNonce = [UInt8](repeating: 0, count: 8)
        let published = try bytes(
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586")
        #expect(ReferenceChaCha20.keystream(key: zeroKey, nonce: zeroNonce, count: 64) == published)
        var library = [UInt8](repeating: 0, count: 300)
        library.withUnsafeMutableBytes { MaskGenerator.writeBaselineKeystream(algorithm: .chacha20, into: $0) }
        #expect(ReferenceChaCha20.keystream(key: zeroKey, nonce: zeroNonce, count: library.count) == library)

        let prg = try Self.load(PRGFile.self, "prg.json")
        let chacha = prg.cases.filter { $0.algorithm == PRGAlgorithm.chacha20.rawValue }
        #expect(chacha.count == 5)
        for c in chacha {
            let material = try bytes(c.keyMaterial)
            let keystream = try bytes(c.keystream)
            #expect(ReferenceChaCha20.keystream(key: Array(material[0..<32]), nonce: Array(material[32..<40]), count: keystream.count) == keystream,
                    "ChaCha20 keystream of b=\(c.bitWidth)")
        }
    }

    /// SPEC.md Appendix A, written out here over the reference ChaCha20, reproduces
    /// random-source.json and `SeededRandomSource`, and the draws the other vector files record:
    /// the Shamir coefficients of shamir.json, the Fisher-Yates swaps of harary.json and the
    /// devices' keys and seeds in round.json.
    @Test func randomSourceFollowsAppendixA() throws {
        let file = try Self.load(RandomSourceFile.self, "random-source.json")
        #expect(file.streams.count == 2)
        #expect(file.streams.contains { $0.label != nil })
        for stream in file.streams {
            let key = try bytes(stream.key)
            var codeSources = [try SeededRandomSource(seed: SecretBytes(copying: key))]
            if let seed = stream.seed, let label = stream.label {
                let material = littleEndian64(seed) + Array(label.utf8)
                #expect(try bytes(#require(stream.hashInput)) == [UInt8(21)] + Array("veil/v1/seeded-random".utf8) + material)
                #expect(BLAKE2b.hash(label: "veil/v1/seeded-random", message: material, outputByteCount: 32) == key, "key of \(label)")
                #expect(AppendixARandomSource(seed: seed, label: label).key == key)
                codeSources.append(SeededRandomSource(seed: seed, label: label))
            }
            var spec = AppendixARandomSource(key: key)
            var nonce: UInt64 = 0
            #expect(stream.draws.contains { $0.byteCount == 0 } && stream.draws.contains { $0.byteCount > 64 })
            for draw in stream.draws {
                let expected = try bytes(draw.output)
                #expect(expected.count == draw.byteCount)
                if draw.byteCount > 0 {
                    #expect(try bytes(#require(draw.nonce)) == littleEndian64(nonce), "nonce of draw \(nonce)")
                    nonce += 1
                } else {
                    #expect(draw.nonce == nil, "an empty draw uses no nonce")
                }
                #expect(spec.draw(draw.byteCount) == expected, "draw of \(draw.byteCount) bytes by the SPEC rule")
                for index in codeSources.indices {
                    #expect(codeSources[index].bytes(count: draw.byteCount) == expected, "draw of \(draw.byteCount) bytes by SeededRandomSource")
                }
            }
        }

        // shamir.json: limb-major, degrees 1...t-1, u64() & p redrawn while equal to p.
        let shamir = try Self.load(ShamirFile.self, "shamir.json")
        let p: UInt64 = (1 << 61) - 1
        var shamirSource = AppendixARandomSource(key: try bytes(shamir.randomKey))
        for (limb, polynomial) in shamir.coefficients.enumerated() {
            for degree in 1..<shamir.threshold {
                var coefficient = shamirSource.u64() & p
                while coefficient == p { coefficient = shamirSource.u64() & p }
                #expect(polynomial[degree] == coefficient, "shamir.json coefficient \(degree) of limb \(limb)")
            }
        }

        // harary.json: j = below(i + 1) from the source keyed with permutationKey.
        let harary = try Self.load(HararyFile.self, "harary.json")
        var hararySource = AppendixARandomSource(key: try bytes(harary.permutationKey))
        for swap in harary.swaps {
            #expect(hararySource.below(UInt64(swap.i + 1)) == UInt64(swap.j), "harary.json swap at i = \(swap.i)")
        }

        // round.json: each device's first three draws are c_sk, s_sk and β.
        let round = try Self.load(RoundFile.self, "round.json")
        for device in round.devices {
            var source = AppendixARandomSource(key: try bytes(device.randomKey))
            #expect(source.draw(32) == (try bytes(device.encryptionPrivateKey)), "round.json c_sk of \(device.device)")
            #expect(source.draw(32) == (try bytes(device.maskingPrivateKey)), "round.json s_sk of \(device.device)")
            #expect(source.draw(32) == (try bytes(device.selfMaskSeed)), "round.json β of \(device.device)")
        }
    }

    // MARK: - Record decoding

    func deviceMessage(_ r: Record, bitWidth: Int, dimension: Int) throws -> DeviceMessage {
        switch r.type {
        case "advertise-keys":
            return .advertiseKeys(
                encryptionKey: try X25519.PublicKey(rawRepresentation: bytes(#require(r.encryptionKey))),
                maskingKey: try X25519.PublicKey(rawRepresentation: bytes(#require(r.maskingKey))),
                signature: try r.signature.map { try Ed25519.Signature(rawRepresentation: bytes($0)) })
        case "share-keys":
            return .shareKeys(
                maskingKeyCommitment: try ShamirCommitment(bytes: bytes(#require(r.maskingKeyCommitment))),
                selfMaskCommitment: try ShamirCommitment(bytes: bytes(#require(r.selfMaskCommitment))),
                shares: try #require(r.shares).map {
                    SealedShares(sender: $0.sender, recipient: $0.recipient, ciphertext: try #require(SealedShares.Ciphertext(try bytes($0.ciphertext))),
                                 maskingKeyShareDigest: try #require(ShareDigest(try bytes($0.maskingKeyShareDigest))), selfMaskShareDigest: try #require(ShareDigest(try bytes($0.selfMaskShareDigest))))
                })
        case "masked-input":
            let vector = try ModularVector(values: #require(r.elements), bitWidth: bitWidth)
            #expect(try ModularVector(packed: bytes(#require(r.packed)), count: dimension, bitWidth: bitWidth) == vector, "packed form")
            return .maskedInput(vector)
        case "consistency-signature":
            return .consistencySignature(try Ed25519.Signature(rawRepresentation: bytes(#require(r.signature))))
        case "unmasking-shares":
            return .unmaskingShares(
                selfMaskShares: try #require(r.selfMaskShares).map { RevealedShare(owner: $0.owner, values: SecretBytes(copying: try bytes($0.values))) },
                maskingKeyShares: try #require(r.maskingKeyShares).map { RevealedShare(owner: $0.owner, values: SecretBytes(copying: try bytes($0.values))) })
        default:
            throw VectorError.unknownType(r.type)
        }
    }

    func serverMessage(_ r: Record, for device: UInt32) throws -> ServerMessage {
        switch r.type {
        case "neighbour-keys":
            return .neighbourKeys(try #require(r.neighbours).map {
                AdvertisedKeys(
                    device: $0.device, encryptionKey: try X25519.PublicKey(rawRepresentation: bytes($0.encryptionKey)),
                    maskingKey: try X25519.PublicKey(rawRepresentation: bytes($0.maskingKey)),
                    signature: try $0.signature.map { try Ed25519.Signature(rawRepresentation: bytes($0)) },
                    identityKey: try $0.identityKey.map { try Ed25519.PublicKey(rawRepresentation: bytes($0)) })
            })
        case "sealed-shares":
            let shares = try #require(r.shares)
            #expect(shares.allSatisfy { $0.recipient == device })
            return .sealedShares(try shares.map {
                SealedShares(sender: $0.sender, recipient: $0.recipient, ciphertext: try #require(SealedShares.Ciphertext(try bytes($0.ciphertext))),
                             maskingKeyShareDigest: try #require(ShareDigest(try bytes($0.maskingKeyShareDigest))), selfMaskShareDigest: try #require(ShareDigest(try bytes($0.selfMaskShareDigest))))
            })
        case "consistency-check":
            return .consistencyCheck(survivors: try #require(r.survivors))
        case "unmasking-request":
            var signatures: [UInt32: Ed25519.Signature] = [:]
            for s in try #require(r.signatures) { signatures[s.device] = try Ed25519.Signature(rawRepresentation: bytes(s.signature)) }
            return .unmaskingRequest(
                survivingNeighbours: try #require(r.survivingNeighbours), droppedNeighbours: try #require(r.droppedNeighbours),
                signatures: signatures)
        default:
            throw VectorError.unknownType(r.type)
        }
    }

    enum VectorError: Error { case unknownType(String), badHex(String) }
}

/// Decodes vector hex, failing the test on malformed text.
private func bytes(_ text: String) throws -> [UInt8] {
    guard let decoded = Hex.decode(text) else { throw VectorTests.VectorError.badHex(text) }
    return decoded
}

private func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

/// `u64le(x)`: the eight little-endian bytes of `value` (SPEC.md Appendix A).
private func littleEndian64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }

/// SPEC.md Appendix A written out: draw number c (0, 1, ...) of L ≥ 1 bytes is the first L bytes of
/// the original ChaCha20 keystream under the key with nonce u64le(c); an empty draw uses no number.
struct AppendixARandomSource {
    /// The 32-byte ChaCha20 key.
    let key: [UInt8]
    /// The number of the next non-empty draw, which is also its nonce.
    private var counter: UInt64 = 0

    /// A source with a given 32-byte key.
    init(key: [UInt8]) { self.key = key }

    /// A source keyed with H("veil/v1/seeded-random", u64le(seed) || UTF-8(label), 32).
    init(seed: UInt64, label: String) {
        key = BLAKE2b.hash(label: "veil/v1/seeded-random", message: littleEndian64(seed) + Array(label.utf8), outputByteCount: 32)
    }

    /// The next `count` bytes.
    mutating func draw(_ count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        defer { counter += 1 }
        return ReferenceChaCha20.keystream(key: key, nonce: littleEndian64(counter), count: count)
    }

    /// u64(): one 8-byte draw read as a little-endian integer.
    mutating func u64() -> UInt64 {
        draw(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// below(B): u64() until v < (2^64 − 1) − ((2^64 − 1) mod B), then v mod B.
    mutating func below(_ bound: UInt64) -> UInt64 {
        let limit = UInt64.max - UInt64.max % bound
        while true {
            let v = u64()
            if v < limit { return v % bound }
        }
    }
}

/// The original ChaCha20 (D. J. Bernstein, 2008): 20 rounds, 64-bit block counter from 0 in words
/// 12–13, 64-bit nonce in words 14–15, all words little-endian. Written out so that the random
/// source test depends on nothing but this text and the SPEC.
enum ReferenceChaCha20 {
    /// The first `count` keystream bytes under a 32-byte `key` and 8-byte `nonce`.
    static func keystream(key: [UInt8], nonce: [UInt8], count: Int) -> [UInt8] {
        precondition(key.count == 32 && nonce.count == 8, "ChaCha20 takes a 32-byte key and an 8-byte nonce")
        func word(_ bytes: [UInt8], _ i: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[4 * i + $1]) << (8 * UInt32($1)) }
        }
        var output = [UInt8]()
        output.reserveCapacity(count)
        var block: UInt64 = 0
        while output.count < count {
            let input: [UInt32] = [0x6170_7865, 0x3320_646E, 0x7962_2D32, 0x6B20_6574]
                + (0..<8).map { word(key, $0) }
                + [UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32), word(nonce, 0), word(nonce, 1)]
            var x = input
            func quarterRound(_ a: Int, _ b: Int, _ c: Int, _ d: Int) {
                x[a] &+= x[b]
                x[d] = rotate(x[d] ^ x[a], 16)
                x[c] &+= x[d]
                x[b] = rotate(x[b] ^ x[c], 12)
                x[a] &+= x[b]
                x[d] = rotate(x[d] ^ x[a], 8)
                x[c] &+= x[d]
                x[b] = rotate(x[b] ^ x[c], 7)
            }
            for _ in 0..<10 {
                quarterRound(0, 4, 8, 12)
                quarterRound(1, 5, 9, 13)
                quarterRound(2, 6, 10, 14)
                quarterRound(3, 7, 11, 15)
                quarterRound(0, 5, 10, 15)
                quarterRound(1, 6, 11, 12)
                quarterRound(2, 7, 8, 13)
                quarterRound(3, 4, 9, 14)
            }
            for i in 0..<16 {
                let value = x[i] &+ input[i]
                for shift in stride(from: UInt32(0), to: 32, by: 8) where output.count < count {
                    output.append(UInt8(truncatingIfNeeded: value >> shift))
                }
            }
            block &+= 1
        }
        return output
    }

    /// Rotates `value` left by `n` bits.
    static func rotate(_ value: UInt32, _ n: UInt32) -> UInt32 { value << n | value >> (32 - n) }
}
