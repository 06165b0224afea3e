import Synchronization
import VeilCrypto

extension DeviceSession {
    /// With committed placement (§5.1), checks the server's reveal and switches to the graph it
    /// gives: the secret must match the configuration's commitment and the path must prove this
    /// device's own contribution at its own index under the root. Without committed placement a
    /// reveal is refused.
    mutating func adoptPlacement(_ reveal: PlacementReveal?) throws(ProtocolViolation) {
        let phase = Phase.shareKeys
        guard let commitment = configuration.placementCommitment else {
            guard reveal == nil else { throw violation(phase, .malformed("a placement reveal in a round without committed placement")) }
            return
        }
        guard let reveal else { throw violation(phase, .placementRefused("the neighbour keys came without the placement reveal")) }
        guard reveal.secret.count == Placement.byteCount, Placement.commitment(to: reveal.secret) == commitment else {
            throw violation(phase, .placementRefused("the revealed secret does not match the configuration's commitment"))
        }
        let leaf = Placement.leaf(device: device, contribution: placementContribution!)
        guard Placement.verify(leaf: leaf, device: device, path: reveal.path, root: reveal.root, cohortSize: configuration.cohortSize) else {
            throw violation(phase, .placementRefused("the placement root does not include this device's contribution at its index"))
        }
        let seed = Placement.seed(transcript: transcript, secret: reveal.secret, root: reveal.root)
        graph = graphCache?.graph(for: configuration, placementSeed: seed) ?? NeighbourGraph(configuration: configuration, placementSeed: seed)
    }
}

/// Graphs by placement seed, shared by the sessions of one simulated round so that a revealed
/// placement's graph is built once rather than once per device. Thread-safe.
public final class NeighbourGraphCache: Sendable {
    private let graphs = Mutex<[[UInt8]: NeighbourGraph]>([:])

    /// An empty cache.
    public init() {}

    /// The graph of `configuration` with its ring drawn from `placementSeed`, built on first use.
    public func graph(for configuration: RoundConfiguration, placementSeed: [UInt8]) -> NeighbourGraph {
        if let cached = graphs.withLock({ $0[placementSeed] }) { return cached }
        let built = NeighbourGraph(configuration: configuration, placementSeed: placementSeed)
        return graphs.withLock { graphs in
            if let cached = graphs[placementSeed] { return cached }
            graphs[placementSeed] = built
            return built
        }
    }
}
