public import VeilProtocol

/// The correctness oracle: compares the protocol's output with the plaintext sum computed on the
/// side over exactly the devices the server says it counted.
public enum Oracle {
    /// The indices of elements where `output` and `expected` differ (empty when correct).
    public static func mismatches(output: ModularVector, expected: ModularVector) -> [Int] {
        guard output.count == expected.count, output.bitWidth == expected.bitWidth else {
            return Array(0..<max(output.count, expected.count))
        }
        let a = output.elements, b = expected.elements
        return a.indices.filter { a[$0] != b[$0] }
    }
}
