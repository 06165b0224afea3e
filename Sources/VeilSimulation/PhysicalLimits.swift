public import VeilCrypto

/// This machine's speed for the work secure aggregation cannot avoid, measured in the same run as
/// the simulation: raw cipher keystream (the PRG's primitive) and wrapping vector addition.
public struct PhysicalLimits: Sendable, Codable, Equatable {
    /// Raw keystream throughput of the scenario's cipher on one core, bytes per second.
    public let keystreamBytesPerSecond: Double
    /// Wrapping addition throughput of cache-resident vectors on one core, bytes per second.
    public let addBytesPerSecond: Double
    /// Cores available for parallel work.
    public let cores: Int

    /// Measures both on one core: the median of 5 runs over a 1 MiB buffer.
    public static func measure(algorithm: PRGAlgorithm, cores: Int) -> PhysicalLimits {
        let bytes = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 1)
        let keystream = median { MaskGenerator.writeBaselineKeystream(algorithm: algorithm, into: buffer) }
        let words = buffer.bindMemory(to: UInt64.self)
        let half = words.count / 2
        let add = median {
            for i in 0..<half { words[i] = words[i] &+ words[half + i] }
        }
        return PhysicalLimits(
            keystreamBytesPerSecond: Double(bytes) / keystream,
            addBytesPerSecond: Double(half * 8) / add,
            cores: cores)
    }

    /// Seconds to expand one mask of `bytes` and add it to a vector, on one core.
    public func maskSeconds(bytes: Double) -> Double {
        bytes / keystreamBytesPerSecond + bytes / addBytesPerSecond
    }

    /// The median CPU seconds of one `body`, over 5 timed batches of 20 after 3 untimed runs. CPU
    /// time of this thread, like the devices' compute it is set against, so that other work on
    /// the machine slows neither the limit nor what is measured against it.
    static func median(_ body: () -> Void) -> Double {
        for _ in 0..<3 { body() }
        var samples = [Double]()
        for _ in 0..<5 {
            let start = ResourceUsage.threadCPUSeconds()
            for _ in 0..<20 { body() }
            samples.append((ResourceUsage.threadCPUSeconds() - start) / 20)
        }
        return samples.sorted()[2]
    }
}

extension Duration {
    /// Seconds as a double.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
