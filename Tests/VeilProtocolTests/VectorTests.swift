import Foundation
import Testing
import VeilCrypto
@testable import VeilProtocol

/// The committed known-answer vectors in `Protocols/vectors/` are reproduced by the code: every
/// derivation is recomputed, the PRG re-expanded, Shamir shares rebuilt and reconstructed, and the
/// recorded round replayed message for message from its recorded randomness.
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
            let bitWidth, wordByteCount: Int
            let seed, label, keyMaterial, keystream: String
            let elements, tailElements: [UInt64]
        }
    }

    @Test func prgVectorsMatch() throws {
        let file = try Self.load(PRGFile.self, "prg.json")
        #expect(file.cases.count == 10)
        for c in file.cases {
            let name = "\(c.algorithm) b=\(c.bitWidth)"
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
            var vector = ModularVector(zerosOfCount: file.count, bitWidth: c.bitWidth)
            try vector.applyMask(seed: seed, label: label, generator: generator)
            let elements = vector.elements
            #expect(Array(elements.prefix(c.elements.count)) == c.elements, "first elements of \(name)")
            #expect(Array(elements[file.tailStart...]) == c.tailElements, "last elements of \(name)")
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

        struct Sealed: Decodable { let sender, recipient: UInt32; let ciphertext: String }
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
                input: ModularVector(values: device.input, bitWidth: c.bitWidth))
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
            if case let .advertiseKeys(encryptionKey, maskingKey, _) = recorded {
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
                shares: try #require(r.shares).map { SealedShares(sender: $0.sender, recipient: $0.recipient, ciphertext: try bytes($0.ciphertext)) })
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
            return .sealedShares(try shares.map { SealedShares(sender: $0.sender, recipient: $0.recipient, ciphertext: try bytes($0.ciphertext)) })
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
