import Foundation
import VeilCrypto
public import VeilProtocol

/// Draws each device's input vector from the scenario's generators, reproducibly per device.
public struct SyntheticData: Sendable {
    /// The scenario whose generators are used.
    public let scenario: Scenario
    /// Cumulative probabilities per zipf generator (index into `scenario.data`).
    let zipfTables: [Int: [Double]]

    /// Prepares the generators of `scenario`.
    public init(scenario: Scenario) {
        self.scenario = scenario
        var tables: [Int: [Double]] = [:]
        for (i, g) in scenario.data.enumerated() where g.kind == "zipf" {
            let ranks = Int(g.value)
            let s = g.spread ?? 1
            let weights = (1...ranks).map { 1 / Foundation.pow(Double($0), s) }
            let total = weights.reduce(0, +)
            var running = 0.0
            tables[i] = weights.map { running += $0 / total; return running }
        }
        zipfTables = tables
    }

    /// The input of `device`: every element reduced modulo 2^b.
    public func input(for device: UInt32) -> ModularVector {
        var random = SeededRandomSource(seed: scenario.seed, label: "data-\(device)")
        var values = [Int64](repeating: 0, count: scenario.dimension)
        for (i, g) in scenario.data.enumerated() {
            let count = g.end - g.start
            // One keystream call per generator: two 64-bit words per element.
            let words = random.bytes(count: 16 * count).withUnsafeBytes { raw in
                (0..<(2 * count)).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)) }
            }
            for e in 0..<count {
                let u = Double(words[2 * e] >> 11) * 0x1.0p-53
                let v = Double(words[2 * e + 1] >> 11) * 0x1.0p-53
                let value: Double
                switch g.kind {
                case "constant": value = g.value
                case "uniform": value = (u * (g.value + 1)).rounded(.down)
                case "normal":
                    let z = Foundation.sqrt(-2 * Foundation.log(max(u, 0x1.0p-53))) * Foundation.cos(2 * Double.pi * v)
                    value = max(0, (g.value + (g.spread ?? 1) * z).rounded())
                default:
                    let table = zipfTables[i]!
                    value = Double(table.firstIndex { $0 >= u } ?? (table.count - 1)) + 1
                }
                values[g.start + e] = Int64(min(value, 9.0e18))
            }
        }
        return ModularVector(reducing: values, bitWidth: scenario.bitWidth)
    }
}
