import VeilCrypto
import VeilProtocol

/// statements.json: every byte string the active model and the transport hash or sign, with its
/// inputs and output: the round transcript hash τ (SPEC.md §4.10), the advertise and consistency
/// statements with their Ed25519 signatures (§4.7, §4.9), the survivor digest (§4.8), the survivor
/// bitmap (§6.3), the enrolment and check-in statements and the device id (§11.2, §11.3).
///
/// Every input is a fixed byte pattern and Ed25519 signing is deterministic (RFC 8032), so the
/// file is a function of the code alone; nothing is drawn from a random source.
enum StatementVectors {
    struct File: Encodable {
        let description: String
        let transcripts: [Transcript]
        let advertise: [Advertise]
        let survivorDigests: [SurvivorDigest]
        let consistency: [Consistency]
        let survivorBitmaps: [Bitmap]
        let enrolment: Enrolment
        let checkIn: CheckIn
        let deviceID: DeviceID
    }

    /// τ of one configuration: the hashed message, the whole BLAKE2b input and the output.
    struct Transcript: Encodable {
        let name: String
        let configuration: RoundVector.Configuration
        let placementSecret, placementCommitment: String?
        let message, hashInput, transcript: String
    }

    /// One device's AdvertiseKeys statement and its signature.
    struct Advertise: Encodable {
        let transcript: String
        let device: UInt32
        let encryptionPrivateKey, encryptionKey, maskingPrivateKey, maskingKey: String
        let placementContribution: String?
        let identitySeed, identityKey, statement, signature: String
    }

    /// The digest of one ascending survivor list.
    struct SurvivorDigest: Encodable {
        let survivors: [UInt32]
        let hashInput, digest: String
    }

    /// One device's ConsistencyCheck statement and its signature.
    struct Consistency: Encodable {
        let transcript: String
        let device: UInt32
        let encryptionKey, maskingKey: String
        let survivors: [UInt32]
        let survivorDigest, identitySeed, identityKey, statement, signature: String
    }

    /// A survivor set as the n-bit bitmap of a ConsistencyCheck message.
    struct Bitmap: Encodable {
        let cohortSize: Int
        let survivors: [UInt32]
        let bitmap: String
    }

    /// The enrolment proof of possession.
    struct Enrolment: Encodable {
        let token, identitySeed, identityKey, statement, signature: String
    }

    /// The answer to a check-in challenge.
    struct CheckIn: Encodable {
        let nonce, identitySeed, identityKey, statement, signature: String
    }

    /// The name the aggregator gives an enrolled identity key.
    struct DeviceID: Encodable {
        let identityKey, hashInput, hash, deviceID: String
    }

    /// The survivor sets of the two signed consistency statements.
    static let completeSurvivors: [UInt32] = [0, 1, 2, 3, 5, 6, 8, 9]
    static let hararySurvivors: [UInt32] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 13, 14, 16, 17, 19]

    static func statements() -> File {
        let configurations: [(name: String, configuration: RoundConfiguration, placementSecret: [UInt8]?)] = [
            // The configuration of round.json.
            ("complete-honest-but-curious", try! RoundConfiguration(
                roundID: RoundID(bytes: pattern(16, from: 0x01)), roundSeed: pattern(32, from: 0x44), cohortSize: 6,
                dimension: 8, bitWidth: 32, prg: .aes128CTR, graph: .complete, threshold: 3, threatModel: .honestButCurious), nil),
            ("complete-active", try! RoundConfiguration(
                roundID: RoundID(bytes: pattern(16, from: 0x21)), roundSeed: pattern(32, from: 0x61), cohortSize: 10,
                dimension: 100, bitWidth: 16, prg: .chacha20, graph: .complete, threshold: 6, threatModel: .active), nil),
            ("harary-honest-but-curious", try! RoundConfiguration(
                roundID: RoundID(bytes: pattern(16, from: 0x41)), roundSeed: pattern(32, from: 0xA1), cohortSize: 12,
                dimension: 50, bitWidth: 33, prg: .aes128CTR, graph: .harary(degree: 4), threshold: 3, threatModel: .honestButCurious), nil),
            ("harary-active", try! RoundConfiguration(
                roundID: RoundID(bytes: pattern(16, from: 0x31)), roundSeed: pattern(32, from: 0x81), cohortSize: 20,
                dimension: 1_000, bitWidth: 64, prg: .chacha20, graph: .harary(degree: 6), threshold: 4, threatModel: .active,
                placementCommitment: Placement.commitment(to: pattern(32, from: 0xB0))), pattern(32, from: 0xB0)),
        ]
        let transcripts = configurations.map { entry in
            transcript(entry.name, entry.configuration, placementSecret: entry.placementSecret)
        }
        let tau = Dictionary(uniqueKeysWithValues: configurations.map { ($0.name, ProtocolEncoding.roundTranscript($0.configuration)) })

        // Signers: (transcript, device, c_sk pattern start, s_sk pattern start, identity seed start,
        // r_i pattern start under committed placement, U3).
        let signers: [(transcript: String, device: UInt32, c: UInt8, s: UInt8, identity: UInt8, placement: UInt8?, survivors: [UInt32])] = [
            ("complete-active", 3, 0x71, 0x91, 0xD0, nil, completeSurvivors),
            ("harary-active", 5, 0x72, 0x92, 0xD1, 0xE5, hararySurvivors),
        ]
        var advertise = [Advertise]()
        var consistency = [Consistency]()
        for signer in signers {
            let encryption = try! X25519.PrivateKey(rawRepresentation: SecretBytes(copying: pattern(32, from: signer.c)))
            let masking = try! X25519.PrivateKey(rawRepresentation: SecretBytes(copying: pattern(32, from: signer.s)))
            let identity = try! Ed25519.PrivateKey(seed: SecretBytes(copying: pattern(32, from: signer.identity)))
            let contribution = signer.placement.map { pattern(32, from: $0) }
            let transcript = tau[signer.transcript]!
            let c = encryption.publicKey.rawRepresentation
            let s = masking.publicKey.rawRepresentation

            // SPEC.md §4.7, written out; the protocol's encoding must agree.
            let advertiseStatement = Array("veil/v1/advertise-keys".utf8) + transcript + u32(signer.device) + c + s + (contribution ?? [])
            precondition(advertiseStatement == ProtocolEncoding.advertiseStatement(
                transcript: transcript, device: signer.device, encryptionKey: encryption.publicKey, maskingKey: masking.publicKey,
                placementContribution: contribution), "advertise statement differs from SPEC.md §4.7")
            let advertiseSignature = identity.signature(for: advertiseStatement)
            precondition(identity.publicKey.isValidSignature(advertiseSignature, for: advertiseStatement))
            advertise.append(Advertise(
                transcript: signer.transcript, device: signer.device,
                encryptionPrivateKey: hex(encryption.rawRepresentation), encryptionKey: hex(c),
                maskingPrivateKey: hex(masking.rawRepresentation), maskingKey: hex(s),
                placementContribution: contribution.map { hex($0) },
                identitySeed: hex(identity.seed), identityKey: hex(identity.publicKey.rawRepresentation),
                statement: hex(advertiseStatement), signature: hex(advertiseSignature.rawRepresentation)))

            // SPEC.md §4.9, written out.
            let digest = survivorDigest(signer.survivors).digest
            let consistencyStatement = Array("veil/v1/consistency".utf8) + transcript + u32(signer.device) + c + s + digest
            precondition(consistencyStatement == ProtocolEncoding.consistencyStatement(
                transcript: transcript, device: signer.device, encryptionKey: encryption.publicKey, maskingKey: masking.publicKey,
                survivors: signer.survivors), "consistency statement differs from SPEC.md §4.9")
            let consistencySignature = identity.signature(for: consistencyStatement)
            precondition(identity.publicKey.isValidSignature(consistencySignature, for: consistencyStatement))
            consistency.append(Consistency(
                transcript: signer.transcript, device: signer.device, encryptionKey: hex(c), maskingKey: hex(s),
                survivors: signer.survivors, survivorDigest: hex(digest),
                identitySeed: hex(identity.seed), identityKey: hex(identity.publicKey.rawRepresentation),
                statement: hex(consistencyStatement), signature: hex(consistencySignature.rawRepresentation)))
        }

        let digests = [completeSurvivors, hararySurvivors, [0, 1, 2, 3, 5], [7, 300, 70_000, 4_294_967_294]].map { list in
            let (input, digest) = survivorDigest(list)
            return SurvivorDigest(survivors: list, hashInput: hex(input), digest: hex(digest))
        }
        let bitmaps: [(Int, [UInt32])] = [(10, completeSurvivors), (20, hararySurvivors), (6, [0, 1, 2, 3, 5]), (8, Array(0..<8)), (9, [8])]

        // The transport's statements (SPEC.md §11.2, §11.3). VeilVectors does not link VeilTransport
        // or VeilAggregator, so these follow the SPEC formulas; `TransportStatement.enrolment`,
        // `TransportStatement.checkIn` and `StoreNames.deviceID` compute the same bytes.
        let identity = try! Ed25519.PrivateKey(seed: SecretBytes(copying: pattern(32, from: 0xD0)))
        let identityKey = identity.publicKey.rawRepresentation
        let token = "veil-enrol-" + hex(pattern(24, from: 0x30))
        let enrolment = labelled("veil/v1/enrol", Array(token.utf8))
        let nonce = pattern(32, from: 0xC0)
        let checkIn = labelled("veil/v1/check-in", nonce)
        let deviceIDInput = labelled("veil/v1/device-id", identityKey)
        let deviceIDHash = BLAKE2b.hash(label: "veil/v1/device-id", message: identityKey, outputByteCount: 16)

        return File(
            description: "Hashed and signed statements (SPEC.md §4.7-4.10, §6.3, §11.2, §11.3). H(L, M, l) = unkeyed BLAKE2b with l-byte output of hashInput = len(L) || L || M. transcripts: message = rid || seed || u32(n) || u32(m) || u32(b) || u32(prg: 1 aes-128-ctr, 2 chacha20) || u32(k, 0 for the complete graph) || u32(t) || u32(model: 1 honest-but-curious, 2 active) [|| placementCommitment, present with committed placement, placementCommitment = H(\"veil/v1/placement-commitment\", placementSecret, 32)]; transcript = H(\"veil/v1/round-transcript\", message, 32). advertise: statement = \"veil/v1/advertise-keys\" || transcript || u32(device) || encryptionKey || maskingKey [|| placementContribution], the public keys being X25519(privateKey, 9). survivorDigests: digest = H(\"veil/v1/survivor-set\", u32(count) || u32(u_1) || ... , 32) over the ascending list. consistency: statement = \"veil/v1/consistency\" || transcript || u32(device) || encryptionKey || maskingKey || survivorDigest. survivorBitmaps: ceil(cohortSize / 8) bytes, device i is bit (i mod 8) of byte floor(i / 8), least significant bit first. enrolment: statement = len(\"veil/v1/enrol\") || \"veil/v1/enrol\" || UTF-8(token). checkIn: statement = len(\"veil/v1/check-in\") || \"veil/v1/check-in\" || nonce. deviceID: hash = H(\"veil/v1/device-id\", identityKey, 16), deviceID = \"dev-\" || hex of its first 8 bytes. Every signature is Ed25519 (RFC 8032, deterministic) by the key whose 32-byte seed is identitySeed; transcript names a transcripts entry. Every input is a fixed byte string recorded here: nothing is drawn from a random source",
            transcripts: transcripts, advertise: advertise, survivorDigests: digests, consistency: consistency,
            survivorBitmaps: bitmaps.map { Bitmap(cohortSize: $0.0, survivors: $0.1, bitmap: hex(bitmap($0.1, cohortSize: $0.0))) },
            enrolment: Enrolment(
                token: token, identitySeed: hex(identity.seed), identityKey: hex(identityKey), statement: hex(enrolment),
                signature: hex(identity.signature(for: enrolment).rawRepresentation)),
            checkIn: CheckIn(
                nonce: hex(nonce), identitySeed: hex(identity.seed), identityKey: hex(identityKey), statement: hex(checkIn),
                signature: hex(identity.signature(for: checkIn).rawRepresentation)),
            deviceID: DeviceID(
                identityKey: hex(identityKey), hashInput: hex(deviceIDInput), hash: hex(deviceIDHash),
                deviceID: "dev-" + hex(deviceIDHash.prefix(8))))
    }

    /// τ by SPEC.md §4.10 written out, checked against `ProtocolEncoding.roundTranscript`.
    static func transcript(_ name: String, _ configuration: RoundConfiguration, placementSecret: [UInt8]?) -> Transcript {
        let degree: UInt32
        let graph: String
        switch configuration.graph {
        case .complete: (degree, graph) = (0, "complete")
        case let .harary(k): (degree, graph) = (UInt32(k), "harary")
        }
        let prg: UInt32 = configuration.prg == .aes128CTR ? 1 : 2
        let model: UInt32 = configuration.threatModel == .honestButCurious ? 1 : 2
        let message = configuration.roundID.bytes + configuration.roundSeed
            + u32(UInt32(configuration.cohortSize)) + u32(UInt32(configuration.dimension)) + u32(UInt32(configuration.bitWidth))
            + u32(prg) + u32(degree) + u32(UInt32(configuration.threshold)) + u32(model) + (configuration.placementCommitment ?? [])
        let output = BLAKE2b.hash(label: "veil/v1/round-transcript", message: message, outputByteCount: 32)
        precondition(output == ProtocolEncoding.roundTranscript(configuration), "round transcript differs from SPEC.md §4.10")
        return Transcript(
            name: name,
            configuration: RoundVector.Configuration(
                roundID: hex(configuration.roundID.bytes), roundSeed: hex(configuration.roundSeed), cohortSize: configuration.cohortSize,
                dimension: configuration.dimension, bitWidth: configuration.bitWidth, degree: configuration.degree,
                threshold: configuration.threshold, prg: configuration.prg.rawValue, graph: graph,
                threatModel: configuration.threatModel.rawValue),
            placementSecret: placementSecret.map { hex($0) }, placementCommitment: configuration.placementCommitment.map { hex($0) },
            message: hex(message), hashInput: hex(labelled("veil/v1/round-transcript", message)), transcript: hex(output))
    }

    /// The survivor digest of SPEC.md §4.8 and the BLAKE2b input it hashes.
    static func survivorDigest(_ survivors: [UInt32]) -> (input: [UInt8], digest: [UInt8]) {
        let message = u32(UInt32(survivors.count)) + survivors.flatMap(u32)
        let digest = BLAKE2b.hash(label: "veil/v1/survivor-set", message: message, outputByteCount: 32)
        precondition(digest == ProtocolEncoding.survivorSetDigest(survivors), "survivor digest differs from SPEC.md §4.8")
        return (labelled("veil/v1/survivor-set", message), digest)
    }

    /// The survivor bitmap of SPEC.md §6.3 (what `SurvivorBitmap.encode` in VeilWire computes).
    static func bitmap(_ survivors: [UInt32], cohortSize: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: (cohortSize + 7) / 8)
        for s in survivors { bytes[Int(s / 8)] |= 1 << (s % 8) }
        return bytes
    }

    /// `len(label) || label || payload` (SPEC.md §1).
    static func labelled(_ label: String, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(label.utf8.count)] + Array(label.utf8) + payload
    }
}
