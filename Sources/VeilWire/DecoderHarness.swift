import VeilCrypto
public import VeilProtocol

/// Feeds one untrusted input to every decoder of device messages the aggregator runs, as the
/// aggregator runs them: the stream frame decoder (size-limited), the check-in validator, the
/// protocol-message extractor and the protocol envelope decoder for a small and a large round,
/// in both threat models. A decoder may refuse the input with a typed error; it must never crash,
/// hang or read out of bounds (the fuzz build runs under AddressSanitizer).
///
/// Used by the libFuzzer target (`veil-fuzz`, built by `Fuzz/run.sh`) and by the test that replays
/// the committed corpus.
public enum DecoderHarness {
    /// Round configurations the envelope decoder is exercised against.
    public static let configurations: [RoundConfiguration] = {
        var random = SeededRandomSource(seed: 1, label: "fuzz")
        return [
            try! RoundConfiguration(
                roundID: RoundID(bytes: [UInt8](repeating: 7, count: 16)), roundSeed: random.bytes(count: 32), cohortSize: 8,
                dimension: 16, bitWidth: 32, prg: .aes128CTR, graph: .complete, threshold: 5, threatModel: .honestButCurious),
            try! RoundConfiguration(
                roundID: RoundID(bytes: [UInt8](repeating: 7, count: 16)), roundSeed: random.bytes(count: 32), cohortSize: 100,
                dimension: 100, bitWidth: 17, prg: .chacha20, graph: .harary(degree: 20), threshold: 11, threatModel: .active,
                placementCommitment: Placement.commitment(to: random.bytes(count: Placement.byteCount))),
        ]
    }()

    /// Runs every decoder on `bytes`. Returns how many accepted it (for the replay summary).
    @discardableResult
    public static func run(_ bytes: [UInt8]) -> Int {
        var accepted = 0
        if let frame = try? TransportCodec.deviceFrame(bytes, limit: 1 << 20) {
            if (try? TransportCodec.checkIn(from: frame)) != nil { accepted += 1 }
            for configuration in configurations {
                let limit = WireCodec.maximumDeviceMessageByteCount(configuration)
                switch try? TransportCodec.afterCheckIn(from: frame, limit: limit) {
                case let .protocolMessage(inner)?:
                    if (try? WireCodec.decodeDeviceMessage(inner, from: 3, configuration: configuration)) != nil { accepted += 1 }
                case .refusal?:
                    accepted += 1
                case nil:
                    break
                }
            }
        }
        for configuration in configurations {
            if (try? WireCodec.decodeDeviceMessage(bytes, from: 3, configuration: configuration)) != nil { accepted += 1 }
        }
        return accepted
    }
}
