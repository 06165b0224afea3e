#if canImport(Glibc)
import Glibc
#endif
import VeilCrypto
import VeilProtocol

// veil-bench: micro-benchmark of Veil's cryptographic primitives.
// Usage: swift run -c release veil-bench [--quick] [--json PATH]
// Figures are medians of 5 runs (3 with --quick) after a warm-up, on one core.

let arguments = CommandLine.arguments.dropFirst()
let quick = arguments.contains("--quick")
var jsonPath: String?
if let i = arguments.firstIndex(of: "--json") {
    guard arguments.index(after: i) < arguments.endIndex else {
        print("usage: veil-bench [--quick] [--json PATH]")
        exit(2)
    }
    jsonPath = arguments[arguments.index(after: i)]
}
if let unknown = arguments.first(where: { $0.hasPrefix("-") && $0 != "--quick" && $0 != "--json" }) {
    print("unknown option \(unknown); usage: veil-bench [--quick] [--json PATH]")
    exit(2)
}

let cases = Cases(harness: Harness(repetitions: quick ? 3 : 5), quick: quick)
var figures = [Figure]()
var ratioLines = [String]()

print("Physical limits (one core)")
var raw: [PRGAlgorithm: Double] = [:]
for algorithm in PRGAlgorithm.allCases {
    raw[algorithm] = cases.rawKeystream(algorithm)
    figures.append(Figure(name: "raw \(algorithm.rawValue) keystream", value: raw[algorithm]!, unit: "GB/s"))
}
figures.append(Figure(name: "vector add UInt32", value: cases.vectorAdd(UInt32.self), unit: "GB/s"))
figures.append(Figure(name: "vector add UInt64", value: cases.vectorAdd(UInt64.self), unit: "GB/s"))

for algorithm in PRGAlgorithm.allCases {
    for bits in [32, 64] {
        for (label, count) in [("1 MiB", 0), ("100,000 elements", 100_000)] {
            let elements = count == 0 ? (1 << 20) / (bits == 32 ? 4 : 8) : count
            let fill = bits == 32
                ? cases.mask(UInt32.self, algorithm, bits: bits, count: elements, accumulate: false)
                : cases.mask(UInt64.self, algorithm, bits: bits, count: elements, accumulate: false)
            let add = bits == 32
                ? cases.mask(UInt32.self, algorithm, bits: bits, count: elements, accumulate: true)
                : cases.mask(UInt64.self, algorithm, bits: bits, count: elements, accumulate: true)
            figures.append(Figure(name: "\(algorithm.rawValue) fill b=\(bits), \(label)", value: fill, unit: "GB/s"))
            figures.append(Figure(name: "\(algorithm.rawValue) accumulate b=\(bits), \(label)", value: add, unit: "GB/s"))
            ratioLines.append("\(algorithm.rawValue) b=\(bits) \(label): fill/raw \(formatted(fill / raw[algorithm]!, 2)), accumulate/raw \(formatted(add / raw[algorithm]!, 2))")
        }
    }
}
figures += cases.publicKeyCases()
figures += cases.shamirCases()

// Distributed DP: one device's noise for m = 100,000 beside its mask expansion (issue 14).
let noiseCount = 100_000
let expansion = cases.maskMilliseconds(.aes128CTR, count: noiseCount)
figures.append(Figure(name: "aes128-ctr mask expansion m=100,000 b=64 (one mask)", value: expansion, unit: "ms"))
// A device expands its self mask and one mask per neighbour: k + 1 expansions in a round.
let neighbours = [1_000, 10_000].map { n in
    (n, (try? ParameterFinder.find(for: CohortAssumptions(cohortSize: n, dropoutFraction: 0.05)).degree) ?? n - 1)
}
for sigma: UInt64 in [4, 100, 10_000] {
    let noise = cases.noiseMilliseconds(count: noiseCount, sigma: sigma)
    figures.append(Figure(name: "discrete Gaussian noise m=100,000, σ=\(sigma)", value: noise, unit: "ms"))
    let perRound = neighbours.map { n, k in "n=\(n) (k=\(k)): \(formatted(noise / (Double(k + 1) * expansion), 2)) ×" }.joined(separator: ", ")
    ratioLines.append("noise m=100,000 σ=\(sigma): \(formatted(noise, 2)) ms = \(formatted(noise / expansion, 1)) × one mask expansion; × a SecAgg+ device's k + 1 expansions at 5 % dropout, \(perRound) (target: below 1)")
}

let width = figures.map(\.name.count).max() ?? 10
for f in figures {
    let pad = String(repeating: " ", count: width - f.name.count)
    print("  \(f.name)\(pad)  \(formatted(f.value, f.unit == "GB/s" ? 2 : 3)) \(f.unit)")
}
print("\nMask expansion against the raw cipher (target: fill/raw >= 0.80)")
for line in ratioLines { print("  " + line) }

if let jsonPath {
    var json = "{\n"
    json += figures.map { "  \"\($0.name)\": {\"value\": \($0.value), \"unit\": \"\($0.unit)\"}" }.joined(separator: ",\n")
    json += "\n}\n"
    do {
        try json.write(toFile: jsonPath)
    } catch {
        print("could not write \(jsonPath): \(error)")
        exit(1)
    }
}
