import Foundation
import Testing
import VeilCrypto
import VeilProtocol

/// `Protocols/vectors/statements.json`: every hashed or signed statement is rebuilt here from the
/// SPEC.md formulas written out byte by byte (§4.7–4.10, §6.3, §11.2, §11.3), hashed with BLAKE2b
/// and signed with Ed25519, and compared with the file and, where this target can reach it, with
/// the protocol's own encoding. The transport statements, the device id and the survivor bitmap
/// live in targets this one does not link (VeilTransport, VeilAggregator, VeilWire), so for them
/// the SPEC text alone is checked: what an implementation from SPEC.md would compute.
@Suite struct StatementVectorTests {
    static let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Protocols/vectors/statements.json")

    struct File: Decodable {
        let transcripts: [Transcript]
        let advertise: [Advertise]
        let survivorDigests: [SurvivorDigest]
        let consistency: [Consistency]
        let survivorBitmaps: [Bitmap]
        let enrolment: Enrolment
        let checkIn: CheckIn
        let deviceID: DeviceID

        struct Configuration: Decodable {
            let roundID, roundSeed: String
            let cohortSize, dimension, bitWidth, degree, threshold: Int
            let prg, graph, threatModel: String
        }
        struct Transcript: Decodable {
            let name: String
            let configuration: Configuration
            let placementSecret, placementCommitment: String?
            let message, hashInput, transcript: String
        }
        struct Advertise: Decodable {
            let transcript: String
            let device: UInt32
            let encryptionPrivateKey, encryptionKey, maskingPrivateKey, maskingKey: String
            let placementContribution: String?
            let identitySeed, identityKey, statement, signature: String
        }
        struct SurvivorDigest: Decodable {
            let survivors: [UInt32]
            let hashInput, digest: String
        }
        struct Consistency: Decodable {
            let transcript: String
            let device: UInt32
            let encryptionKey, maskingKey: String
            let survivors: [UInt32]
            let survivorDigest, identitySeed, identityKey, statement, signature: String
        }
        struct Bitmap: Decodable {
            let cohortSize: Int
            let survivors: [UInt32]
            let bitmap: String
        }
        struct Enrolment: Decodable { let token, identitySeed, identityKey, statement, signature: String }
        struct CheckIn: Decodable { let nonce, identitySeed, identityKey, statement, signature: String }
        struct DeviceID: Decodable { let identityKey, hashInput, hash, deviceID: String }
    }

    static func load() throws -> File {
        try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
    }

    // MARK: - §4.10 round transcript hash

    @Test func roundTranscriptsMatch() throws {
        let file = try Self.load()
        #expect(Set(file.transcripts.map(\.configuration.graph)) == ["complete", "harary"])
        #expect(file.transcripts.contains { $0.placementCommitment != nil }, "a transcript with committed placement")
        for t in file.transcripts {
            let c = t.configuration
            let roundID = try hexBytes(c.roundID)
            let seed = try hexBytes(c.roundSeed)
            #expect(roundID.count == 16 && seed.count == 32, "\(t.name): rid and seed sizes")
            let prg: UInt32 = try #require(["aes-128-ctr": 1, "chacha20": 2][c.prg], "\(t.name): prg")
            let model: UInt32 = try #require(["honest-but-curious": 1, "active": 2][c.threatModel], "\(t.name): model")
            let degree: UInt32 = c.graph == "complete" ? 0 : UInt32(c.degree)
            var commitment = [UInt8]()
            if let secret = t.placementSecret {
                // The placement commitment H("veil/v1/placement-commitment", s, 32) (§5.1).
                commitment = BLAKE2b.hash(label: "veil/v1/placement-commitment", message: try hexBytes(secret), outputByteCount: 32)
                #expect(try hexBytes(#require(t.placementCommitment)) == commitment, "\(t.name): placement commitment")
            }
            let message = roundID + seed + be32(UInt32(c.cohortSize)) + be32(UInt32(c.dimension)) + be32(UInt32(c.bitWidth))
                + be32(prg) + be32(degree) + be32(UInt32(c.threshold)) + be32(model) + commitment
            #expect(message.count == 76 + commitment.count)
            #expect(try hexBytes(t.message) == message, "\(t.name): transcript message")
            #expect(try hexBytes(t.hashInput) == labelled("veil/v1/round-transcript", message), "\(t.name): BLAKE2b input")
            let tau = BLAKE2b.hash(label: "veil/v1/round-transcript", message: message, outputByteCount: 32)
            #expect(try hexBytes(t.transcript) == tau, "\(t.name): τ")

            // The protocol computes the same τ from the configuration.
            let configuration = try RoundConfiguration(
                roundID: RoundID(bytes: roundID), roundSeed: seed, cohortSize: c.cohortSize, dimension: c.dimension,
                bitWidth: c.bitWidth, prg: #require(PRGAlgorithm(rawValue: c.prg)),
                graph: c.graph == "complete" ? .complete : .harary(degree: c.degree), threshold: c.threshold,
                threatModel: #require(ThreatModel(rawValue: c.threatModel)),
                placementCommitment: t.placementCommitment.map(hexBytes))
            #expect(configuration.degree == c.degree)
            #expect(ProtocolEncoding.roundTranscript(configuration) == tau, "\(t.name): ProtocolEncoding.roundTranscript")
        }
    }

    // MARK: - §4.7 advertise statement

    @Test func advertiseStatementsMatch() throws {
        let file = try Self.load()
        #expect(file.advertise.contains { $0.placementContribution == nil } && file.advertise.contains { $0.placementContribution != nil })
        for a in file.advertise {
            let name = "advertise of device \(a.device) under \(a.transcript)"
            let tau = try hexBytes(#require(file.transcripts.first { $0.name == a.transcript }, "\(name)").transcript)
            let encryption = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: hexBytes(a.encryptionPrivateKey)))
            let masking = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: hexBytes(a.maskingPrivateKey)))
            #expect(encryption.publicKey.rawRepresentation == (try hexBytes(a.encryptionKey)), "\(name): c_pk")
            #expect(masking.publicKey.rawRepresentation == (try hexBytes(a.maskingKey)), "\(name): s_pk")
            let contribution = try a.placementContribution.map(hexBytes)

            var statement: [UInt8] = Array("veil/v1/advertise-keys".utf8)
            statement += tau
            statement += be32(a.device)
            statement += try hexBytes(a.encryptionKey)
            statement += try hexBytes(a.maskingKey)
            statement += contribution ?? []
            #expect(statement.count == 22 + 32 + 4 + 32 + 32 + (contribution?.count ?? 0))
            #expect(try hexBytes(a.statement) == statement, "\(name): statement")
            #expect(ProtocolEncoding.advertiseStatement(
                transcript: tau, device: a.device, encryptionKey: encryption.publicKey, maskingKey: masking.publicKey,
                placementContribution: contribution) == statement, "\(name): ProtocolEncoding.advertiseStatement")
            try checkSignature(seed: a.identitySeed, key: a.identityKey, message: statement, signature: a.signature, name)
        }
    }

    // MARK: - §4.8 survivor digest

    @Test func survivorDigestsMatch() throws {
        let file = try Self.load()
        #expect(file.survivorDigests.count >= 3)
        for s in file.survivorDigests {
            #expect(zip(s.survivors, s.survivors.dropFirst()).allSatisfy { $0 < $1 }, "survivors \(s.survivors) ascending")
            let message = be32(UInt32(s.survivors.count)) + s.survivors.flatMap(be32)
            #expect(try hexBytes(s.hashInput) == labelled("veil/v1/survivor-set", message), "BLAKE2b input of \(s.survivors)")
            let digest = BLAKE2b.hash(label: "veil/v1/survivor-set", message: message, outputByteCount: 32)
            #expect(try hexBytes(s.digest) == digest, "digest of \(s.survivors)")
            #expect(ProtocolEncoding.survivorSetDigest(s.survivors) == digest)
        }
    }

    // MARK: - §4.9 consistency statement

    @Test func consistencyStatementsMatch() throws {
        let file = try Self.load()
        #expect(!file.consistency.isEmpty)
        for c in file.consistency {
            let name = "consistency of device \(c.device) under \(c.transcript)"
            let tau = try hexBytes(#require(file.transcripts.first { $0.name == c.transcript }, "\(name)").transcript)
            #expect(c.survivors.contains(c.device), "\(name): the signer survived")
            let digest = BLAKE2b.hash(
                label: "veil/v1/survivor-set", message: be32(UInt32(c.survivors.count)) + c.survivors.flatMap(be32), outputByteCount: 32)
            #expect(try hexBytes(c.survivorDigest) == digest, "\(name): survivor digest")
            let encryptionKey = try hexBytes(c.encryptionKey)
            let maskingKey = try hexBytes(c.maskingKey)
            var statement: [UInt8] = Array("veil/v1/consistency".utf8)
            statement += tau
            statement += be32(c.device)
            statement += encryptionKey + maskingKey + digest
            #expect(statement.count == 19 + 32 + 4 + 32 + 32 + 32)
            #expect(try hexBytes(c.statement) == statement, "\(name): statement")
            #expect(ProtocolEncoding.consistencyStatement(
                transcript: tau, device: c.device, encryptionKey: try X25519.PublicKey(rawRepresentation: encryptionKey),
                maskingKey: try X25519.PublicKey(rawRepresentation: maskingKey), survivors: c.survivors) == statement,
                    "\(name): ProtocolEncoding.consistencyStatement")
            try checkSignature(seed: c.identitySeed, key: c.identityKey, message: statement, signature: c.signature, name)
        }
    }

    // MARK: - §6.3 survivor bitmap

    @Test func survivorBitmapsMatch() throws {
        let file = try Self.load()
        #expect(file.survivorBitmaps.count >= 3)
        for b in file.survivorBitmaps {
            let name = "bitmap of \(b.survivors) in \(b.cohortSize)"
            // Bit i of byte ⌊i/8⌋, least significant first, ⌈n/8⌉ bytes.
            var expected = [UInt8](repeating: 0, count: (b.cohortSize + 7) / 8)
            for i in b.survivors { expected[Int(i) / 8] |= UInt8(1) << (i % 8) }
            let bitmap = try hexBytes(b.bitmap)
            #expect(bitmap == expected, "\(name)")
            // Reading it back by the same rule: no bit at or beyond n, the same ascending list.
            let decoded = (0..<(8 * bitmap.count)).filter { bitmap[$0 / 8] & (1 << ($0 % 8)) != 0 }
            #expect(decoded.allSatisfy { $0 < b.cohortSize }, "\(name): bits beyond n")
            #expect(decoded.map(UInt32.init) == b.survivors, "\(name): decoded")
        }
    }

    // MARK: - §11.2 enrolment, §11.3 check-in, device id

    @Test func enrolmentStatementMatches() throws {
        let e = try Self.load().enrolment
        let statement = [UInt8(13)] + Array("veil/v1/enrol".utf8) + Array(e.token.utf8)
        #expect(try hexBytes(e.statement) == statement)
        try checkSignature(seed: e.identitySeed, key: e.identityKey, message: statement, signature: e.signature, "enrolment")
    }

    @Test func checkInStatementMatches() throws {
        let c = try Self.load().checkIn
        let nonce = try hexBytes(c.nonce)
        #expect(nonce.count == 32)
        let statement = [UInt8(16)] + Array("veil/v1/check-in".utf8) + nonce
        #expect(try hexBytes(c.statement) == statement)
        try checkSignature(seed: c.identitySeed, key: c.identityKey, message: statement, signature: c.signature, "check-in")
    }

    @Test func deviceIDMatches() throws {
        let d = try Self.load().deviceID
        let key = try hexBytes(d.identityKey)
        let input = [UInt8(17)] + Array("veil/v1/device-id".utf8) + key
        #expect(try hexBytes(d.hashInput) == input)
        let hash = BLAKE2b.hash(label: "veil/v1/device-id", message: key, outputByteCount: 16)
        #expect(try hexBytes(d.hash) == hash)
        #expect(d.deviceID == "dev-" + Hex.encode(hash.prefix(8)))
        #expect(d.deviceID.count == 4 + 16)
    }

    // MARK: - Helpers

    /// The identity key derives from its seed, the recorded signature is the deterministic
    /// RFC 8032 signature of `message`, and it verifies (and stops verifying if the message changes).
    func checkSignature(seed: String, key: String, message: [UInt8], signature: String, _ name: String) throws {
        let identity = try Ed25519.PrivateKey(seed: SecretBytes(copying: hexBytes(seed)))
        #expect(identity.publicKey.rawRepresentation == (try hexBytes(key)), "\(name): identity key")
        let recorded = try Ed25519.Signature(rawRepresentation: hexBytes(signature))
        #expect(identity.signature(for: message) == recorded, "\(name): signature")
        let publicKey = try Ed25519.PublicKey(rawRepresentation: hexBytes(key))
        #expect(publicKey.isValidSignature(recorded, for: message), "\(name): verification")
        var altered = message
        altered[altered.count - 1] ^= 1
        #expect(!publicKey.isValidSignature(recorded, for: altered), "\(name): a changed statement must not verify")
    }
}

/// `len(label) || label || payload` (SPEC.md §1).
private func labelled(_ label: String, _ payload: [UInt8]) -> [UInt8] {
    [UInt8(label.utf8.count)] + Array(label.utf8) + payload
}

/// `u32(x)`: four bytes, big-endian (SPEC.md §1).
private func be32(_ value: UInt32) -> [UInt8] {
    [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) }
}

/// Decodes vector hex, failing the test on malformed text.
private func hexBytes(_ text: String) throws -> [UInt8] {
    guard let decoded = Hex.decode(text) else { throw StatementVectorError.badHex(text) }
    return decoded
}

/// Why a statement vector could not be read.
enum StatementVectorError: Error { case badHex(String) }
