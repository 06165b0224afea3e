import Foundation
import Testing
import VeilCrypto
@testable import VeilProtocol

/// `Protocols/vectors/placement.json`: committed placement (SPEC.md §5.1) and share digests
/// (§4.11) rebuilt here from the SPEC formulas with BLAKE2b alone, then compared with the file and
/// with the protocol's own code.
@Suite struct PlacementVectorTests {
    struct File: Decodable {
        struct Configuration: Decodable {
            let roundID, roundSeed: String
            let cohortSize, dimension, bitWidth, degree, threshold: Int
            let prg, graph, threatModel: String
        }
        struct Placement: Decodable {
            let configuration: Configuration
            let transcript, secret, commitment: String
            let contributions: [String: String]
            let levels: [[String]]
            let root: String
            let paths: [String: [String]]
            let seed: String
            let ring: [UInt32]
            let neighbours: [[UInt32]]
        }
        struct ShareDigest: Decodable {
            let transcript: String
            let dealer, holder: UInt32
            let kind: UInt8
            let values, hashInput, digest: String
        }
        let placement: Placement
        let shareDigests: [ShareDigest]
    }

    static func load() throws -> File {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocols/vectors/placement.json")
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
    }

    static func bytes(_ text: String) throws -> [UInt8] { try #require(Hex.decode(text)) }
    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func h(_ label: String, _ message: [UInt8], _ length: Int = 32) -> [UInt8] {
        BLAKE2b.hash(label: label, message: message, outputByteCount: length)
    }

    @Test func theTreeTheSeedAndTheRingFollowFromTheFormulas() throws {
        let p = try Self.load().placement
        let c = p.configuration
        let secret = try Self.bytes(p.secret)
        let commitment = Self.h("veil/v1/placement-commitment", secret)
        #expect(try Self.bytes(p.commitment) == commitment)
        let configuration = try RoundConfiguration(
            roundID: RoundID(bytes: Self.bytes(c.roundID)), roundSeed: Self.bytes(c.roundSeed), cohortSize: c.cohortSize,
            dimension: c.dimension, bitWidth: c.bitWidth, prg: #require(PRGAlgorithm(rawValue: c.prg)), graph: .harary(degree: c.degree),
            threshold: c.threshold, threatModel: .active, placementCommitment: commitment)
        let tau = ProtocolEncoding.roundTranscript(configuration)
        #expect(try Self.bytes(p.transcript) == tau)

        // Leaves: one per index, zero for a device that did not advertise, padded to 16.
        var level: [[UInt8]] = try (0..<16).map { i in
            guard let r = p.contributions["\(i)"] else { return [UInt8](repeating: 0, count: 32) }
            return Self.h("veil/v1/placement-leaf", Self.u32(UInt32(i)) + (try Self.bytes(r)))
        }
        #expect(p.contributions.count == 11 && p.contributions["4"] == nil && p.contributions["9"] == nil)
        var levels = [level]
        while level.count > 1 {
            level = stride(from: 0, to: level.count, by: 2).map { Self.h("veil/v1/placement-node", level[$0] + level[$0 + 1]) }
            levels.append(level)
        }
        #expect(try p.levels.map { try $0.map(Self.bytes) } == levels)
        let root = levels.last![0]
        #expect(try Self.bytes(p.root) == root)

        // Paths: siblings from the leaf up; each proves its own leaf and nothing else.
        for (index, path) in p.paths {
            let i = try #require(UInt32(index))
            var expected: [[UInt8]] = []
            var position = Int(i)
            for l in levels.dropLast() {
                expected.append(l[position ^ 1])
                position /= 2
            }
            #expect(try path.map(Self.bytes) == expected, "path of \(i)")
            #expect(Placement.verify(leaf: levels[0][Int(i)], device: i, path: expected, root: root, cohortSize: c.cohortSize))
        }

        // The seed, and the ring §5's shuffle draws from it.
        let seed = Self.h("veil/v1/placement-seed", tau + secret + root)
        #expect(try Self.bytes(p.seed) == seed)
        let graph = NeighbourGraph(configuration: configuration, placementSeed: seed)
        #expect(graph.ringOrder == p.ring)
        #expect((0..<UInt32(c.cohortSize)).map { graph.neighbours(of: $0) } == p.neighbours)
        // The protocol's tree gives the same root.
        var contributions: [UInt32: [UInt8]] = [:]
        for (index, r) in p.contributions { contributions[UInt32(index)!] = try Self.bytes(r) }
        #expect(Placement.Tree(cohortSize: c.cohortSize, contributions: contributions).root == root)
    }

    @Test func shareDigestsFollowFromTheFormula() throws {
        let digests = try Self.load().shareDigests
        #expect(Set(digests.map(\.kind)) == [1, 2])
        for d in digests {
            let message = try Self.bytes(d.transcript) + Self.u32(d.dealer) + Self.u32(d.holder) + [d.kind] + Self.bytes(d.values)
            let input = [UInt8("veil/v1/share-digest".utf8.count)] + Array("veil/v1/share-digest".utf8) + message
            #expect(try Self.bytes(d.hashInput) == input)
            let digest = Self.h("veil/v1/share-digest", message, 16)
            #expect(try Self.bytes(d.digest) == digest)
            #expect(ProtocolEncoding.shareDigest(
                transcript: try Self.bytes(d.transcript), dealer: d.dealer, holder: d.holder, kind: try #require(ShareKind(rawValue: d.kind)),
                values: SecretBytes(copying: try Self.bytes(d.values))).bytes == digest)
        }
    }
}
