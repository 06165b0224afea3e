import VeilCrypto

/// Placement the server cannot choose (`SPEC.md` §5.1): in the active model with a Harary graph,
/// the ring order comes from a secret the server commits to in the configuration, before it sees
/// any key, mixed with 32 random bytes every device contributes in AdvertiseKeys.
///
/// - The server draws s and sends `commitment(s)` in the configuration.
/// - Device i sends r_i with its keys (signed, in the advertise statement).
/// - When AdvertiseKeys closes, the server builds a Merkle tree over one leaf per index:
///   `leaf(i, r_i)` for every device whose keys it accepted, 32 zero bytes for the others, padded
///   with zero leaves to a power of two. It reveals s, the root R and, to each device, the path
///   that proves that device's own leaf.
/// - Everyone derives the ring's seed as `seed(τ, s, R)`; a device checks the commitment and its
///   own leaf before it uses the graph.
///
/// What the server can still do is try several candidate placements (by claiming devices dropped,
/// or with colluding devices choosing their contributions late) before its deadline; the
/// parameter finder and the device policy charge for that with ``CohortAssumptions/placementGrindingBits``.
public enum Placement {
    /// The size of secrets, contributions, leaves, roots and path entries.
    public static let byteCount = 32

    /// The commitment to the server's placement secret:
    /// H("veil/v1/placement-commitment", s, 32).
    public static func commitment(to secret: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/placement-commitment", message: secret, outputByteCount: byteCount)
    }

    /// The leaf of device `device` with contribution `contribution`:
    /// H("veil/v1/placement-leaf", u32(i) || r_i, 32). An index without an accepted contribution
    /// has the all-zero leaf.
    public static func leaf(device: UInt32, contribution: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/placement-leaf", message: device.bigEndianBytes + contribution, outputByteCount: byteCount)
    }

    /// An inner node: H("veil/v1/placement-node", left || right, 32).
    static func node(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/placement-node", message: left + right, outputByteCount: byteCount)
    }

    /// The seed the ring order is drawn from: H("veil/v1/placement-seed", τ || s || R, 32). It
    /// takes the place of the configuration's round seed in §5's permutation.
    public static func seed(transcript: [UInt8], secret: [UInt8], root: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(label: "veil/v1/placement-seed", message: transcript + secret + root, outputByteCount: byteCount)
    }

    /// The Merkle tree over a cohort's contributions (server side).
    public struct Tree: Sendable {
        /// levels[0] are the leaves (padded to a power of two), the last level is the root alone.
        public let levels: [[[UInt8]]]

        /// Builds the tree for a cohort of `cohortSize` from the accepted contributions by index.
        public init(cohortSize: Int, contributions: [UInt32: [UInt8]]) {
            var width = 1
            while width < cohortSize { width *= 2 }
            let zero = [UInt8](repeating: 0, count: Placement.byteCount)
            var level = (0..<width).map { i -> [UInt8] in
                guard let r = contributions[UInt32(i)] else { return zero }
                return Placement.leaf(device: UInt32(i), contribution: r)
            }
            var levels = [level]
            while level.count > 1 {
                level = stride(from: 0, to: level.count, by: 2).map { Placement.node(level[$0], level[$0 + 1]) }
                levels.append(level)
            }
            self.levels = levels
        }

        /// R.
        public var root: [UInt8] { levels.last![0] }

        /// The sibling hashes from `device`'s leaf up to (not including) the root.
        public func path(for device: UInt32) -> [[UInt8]] {
            var index = Int(device)
            var path: [[UInt8]] = []
            for level in levels.dropLast() {
                path.append(level[index ^ 1])
                index /= 2
            }
            return path
        }
    }

    /// Whether `path` proves `leaf` at index `device` under `root` in a tree for `cohortSize`.
    public static func verify(leaf: [UInt8], device: UInt32, path: [[UInt8]], root: [UInt8], cohortSize: Int) -> Bool {
        var depth = 0
        while (1 << depth) < cohortSize { depth += 1 }
        guard path.count == depth, path.allSatisfy({ $0.count == byteCount }), root.count == byteCount else { return false }
        var hash = leaf
        var index = Int(device)
        for sibling in path {
            hash = index % 2 == 0 ? node(hash, sibling) : node(sibling, hash)
            index /= 2
        }
        return hash == root
    }
}

/// What the server reveals about placement with the neighbour keys (`SPEC.md` §5.1).
public struct PlacementReveal: Sendable, Equatable {
    /// s, the secret the configuration committed to.
    public let secret: [UInt8]
    /// R, the root over the accepted contributions.
    public let root: [UInt8]
    /// The sibling hashes proving the recipient's own leaf.
    public let path: [[UInt8]]

    /// Creates a reveal.
    public init(secret: [UInt8], root: [UInt8], path: [[UInt8]]) {
        self.secret = secret
        self.root = root
        self.path = path
    }
}
