import VeilCrypto

/// The undirected graph that says which devices mask pairwise and hold each other's shares.
///
/// For the complete graph every pair of devices is connected. For a Harary graph of even degree
/// k on n nodes, the devices are placed on a ring in a pseudo-random order derived from the round
/// seed, and each device is connected to the k/2 devices on either side of it. The order is the
/// Fisher-Yates shuffle of 0..<n (`SPEC.md` §5 gives the byte-exact procedure), so every party
/// computes the same graph from public data.
///
/// Instances are immutable and may be shared between threads and sessions.
public final class NeighbourGraph: Sendable {
    /// n.
    public let cohortSize: Int
    /// k.
    public let degree: Int
    /// `deviceAtPosition[p]` is the device placed at ring position p (Harary only).
    let deviceAtPosition: [UInt32]
    /// `positionOfDevice[d]` is the ring position of device d (Harary only).
    let positionOfDevice: [UInt32]

    /// Builds the graph a configuration describes, its ring order drawn from the round seed.
    ///
    /// With committed placement (``RoundConfiguration/usesCommittedPlacement``) the ring order is
    /// known only once AdvertiseKeys closes; use ``init(configuration:placementSeed:)`` then. This
    /// graph has the right size and degree but a ring order nobody uses.
    public convenience init(configuration: RoundConfiguration) {
        self.init(configuration: configuration, placementSeed: configuration.roundSeed)
    }

    /// Builds the graph of `configuration` with its ring order drawn from `placementSeed` (the
    /// ``Placement/seed(transcript:secret:root:)`` of a round with committed placement).
    public init(configuration: RoundConfiguration, placementSeed: [UInt8]) {
        cohortSize = configuration.cohortSize
        degree = configuration.degree
        switch configuration.graph {
        case .complete:
            deviceAtPosition = []
            positionOfDevice = []
        case .harary:
            let order = NeighbourGraph.permutation(count: cohortSize, roundSeed: placementSeed)
            var inverse = [UInt32](repeating: 0, count: cohortSize)
            for (position, device) in order.enumerated() { inverse[Int(device)] = UInt32(position) }
            deviceAtPosition = order
            positionOfDevice = inverse
        }
    }

    /// The device at each ring position (Harary graphs; empty for the complete graph), for vectors
    /// and reports.
    public var ringOrder: [UInt32] { deviceAtPosition }

    /// Whether this is the complete graph.
    public var isComplete: Bool { deviceAtPosition.isEmpty }

    /// The neighbours of `device`, in increasing index order.
    public func neighbours(of device: UInt32) -> [UInt32] {
        precondition(Int(device) < cohortSize, "device index out of range")
        if isComplete {
            return (0..<UInt32(cohortSize)).filter { $0 != device }
        }
        let n = cohortSize
        let p = Int(positionOfDevice[Int(device)])
        var result = [UInt32]()
        result.reserveCapacity(degree)
        for offset in 1...(degree / 2) {
            result.append(deviceAtPosition[(p + offset) % n])
            result.append(deviceAtPosition[(p - offset + n) % n])
        }
        return result.sorted()
    }

    /// Whether `a` and `b` are neighbours (distinct and connected).
    public func areNeighbours(_ a: UInt32, _ b: UInt32) -> Bool {
        guard a != b, Int(a) < cohortSize, Int(b) < cohortSize else { return false }
        if isComplete { return true }
        let n = cohortSize
        let pa = Int(positionOfDevice[Int(a)]), pb = Int(positionOfDevice[Int(b)])
        let distance = min((pa - pb + n) % n, (pb - pa + n) % n)
        return distance <= degree / 2
    }

    /// The Fisher-Yates shuffle of 0..<count driven by the round seed.
    ///
    /// The random source is `SeededRandomSource` keyed with
    /// `BLAKE2b(label: "veil/v1/harary-permutation", message: roundSeed)`; for i = n-1 down to 1,
    /// j = a uniform draw in 0...i (rejection sampling on 64-bit words), then swap(i, j).
    static func permutation(count: Int, roundSeed: [UInt8]) -> [UInt32] {
        let key = BLAKE2b.hash(label: "veil/v1/harary-permutation", message: roundSeed, outputByteCount: 32)
        var random = try! SeededRandomSource(seed: SecretBytes(copying: key))
        var order = (0..<UInt32(count)).map { $0 }
        var i = count - 1
        while i > 0 {
            let j = Int(random.nextUInt64(below: UInt64(i + 1)))
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }
}
