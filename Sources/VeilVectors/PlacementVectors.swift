import VeilCrypto
import VeilProtocol

/// placement.json: committed placement (SPEC.md §5.1) and the share digests (§4.11), from fixed
/// byte patterns: the commitment to a placement secret, every leaf of a 13-device cohort in which
/// devices 4 and 9 did not advertise (padded to 16 leaves), every inner level, the root, each
/// device's path, the ring seed and the ring order it gives; and the digests of two shares.
enum PlacementVectors {
    struct File: Encodable {
        let description: String
        let placement: Placement
        let shareDigests: [ShareDigest]
    }

    struct Placement: Encodable {
        let configuration: RoundVector.Configuration
        let transcript, secret, commitment: String
        /// The contribution of every device that advertised, by index (absent: did not advertise).
        let contributions: [String: String]
        /// levels[0] are the 16 leaves; the last level is the root alone.
        let levels: [[String]]
        let root: String
        /// Each advertising device's path, sibling hashes from its leaf up.
        let paths: [String: [String]]
        let seed: String
        /// The ring order (device at each ring position) that §5's shuffle gives from the seed.
        let ring: [UInt32]
        /// Each device's neighbours on that ring, ascending.
        let neighbours: [[UInt32]]
    }

    struct ShareDigest: Encodable {
        let transcript: String
        let dealer, holder: UInt32
        let kind: UInt8
        let values, hashInput, digest: String
    }

    static let absent: Set<UInt32> = [4, 9]

    static func file() -> File {
        let secret = pattern(32, from: 0x90)
        let configuration = try! RoundConfiguration(
            roundID: RoundID(bytes: pattern(16, from: 0x10)), roundSeed: pattern(32, from: 0x30), cohortSize: 13, dimension: 4,
            bitWidth: 16, prg: .aes128CTR, graph: .harary(degree: 4), threshold: 3, threatModel: .active,
            placementCommitment: VeilProtocol.Placement.commitment(to: secret))
        let transcript = ProtocolEncoding.roundTranscript(configuration)
        var contributions: [UInt32: [UInt8]] = [:]
        for d in 0..<UInt32(13) where !absent.contains(d) { contributions[d] = pattern(32, from: UInt8(d) &* 16) }
        let tree = VeilProtocol.Placement.Tree(cohortSize: 13, contributions: contributions)
        let seed = VeilProtocol.Placement.seed(transcript: transcript, secret: secret, root: tree.root)
        let graph = NeighbourGraph(configuration: configuration, placementSeed: seed)
        let placement = Placement(
            configuration: RoundVector.Configuration(
                roundID: hex(configuration.roundID.bytes), roundSeed: hex(configuration.roundSeed), cohortSize: configuration.cohortSize,
                dimension: configuration.dimension, bitWidth: configuration.bitWidth, degree: configuration.degree,
                threshold: configuration.threshold, prg: configuration.prg.rawValue, graph: "harary",
                threatModel: configuration.threatModel.rawValue),
            transcript: hex(transcript), secret: hex(secret), commitment: hex(configuration.placementCommitment!),
            contributions: Dictionary(uniqueKeysWithValues: contributions.map { ("\($0.key)", hex($0.value)) }),
            levels: tree.levels.map { $0.map { hex($0) } }, root: hex(tree.root),
            paths: Dictionary(uniqueKeysWithValues: contributions.keys.map { ("\($0)", tree.path(for: $0).map { hex($0) }) }),
            seed: hex(seed), ring: graph.ringOrder,
            neighbours: (0..<UInt32(13)).map { graph.neighbours(of: $0) })
        let values = SecretBytes(copying: pattern(40, from: 0xC0))
        let digests = [(ShareKind.maskingKey, UInt32(2), UInt32(7)), (ShareKind.selfMask, UInt32(2), UInt32(7))].map { kind, dealer, holder in
            ShareDigest(
                transcript: hex(transcript), dealer: dealer, holder: holder, kind: kind.rawValue, values: hex(values),
                hashInput: hex([UInt8("veil/v1/share-digest".utf8.count)] + Array("veil/v1/share-digest".utf8)
                    + transcript + u32(dealer) + u32(holder) + [kind.rawValue] + values.unprotectedCopy()),
                digest: hex(ProtocolEncoding.shareDigest(transcript: transcript, dealer: dealer, holder: holder, kind: kind, values: values).bytes))
        }
        return File(
            description: "Committed placement (SPEC.md §5.1) for a 13-device active round on a Harary graph of degree 4 in which devices 4 and 9 did not advertise: commitment = H(\"veil/v1/placement-commitment\", s, 32); leaf_i = H(\"veil/v1/placement-leaf\", u32(i) || r_i, 32) for advertising devices, 32 zero bytes otherwise, padded to 16 leaves; node = H(\"veil/v1/placement-node\", left || right, 32); seed = H(\"veil/v1/placement-seed\", τ || s || R, 32), which replaces the round seed in §5's shuffle. Then two share digests (§4.11): H(\"veil/v1/share-digest\", τ || u32(dealer) || u32(holder) || u8(kind) || values, 16), kind 1 for a masking-key share and 2 for a self-mask share. Every input is a fixed byte pattern; nothing is drawn from a random source.",
            placement: placement, shareDigests: digests)
    }
}
