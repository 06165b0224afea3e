import Foundation
import Testing
import VeilWire

/// Replays the committed fuzz corpus (`Fuzz/corpus`, seeds from `veil-fuzz --write-seeds` plus
/// anything a fuzzing run found worth keeping) through every device-message decoder: nothing
/// crashes, and every seed that is a well-formed message is accepted by at least one decoder.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    @Test func committedCorpusReplaysThroughEveryDecoder() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).sorted()
        #expect(names.count >= 20, "the seed corpus is committed")
        for name in names {
            let bytes = try Array(Data(contentsOf: Self.corpus.appendingPathComponent(name)))
            let accepted = DecoderHarness.run(bytes)
            if name == "check-in" || name.hasPrefix("round") {
                #expect(accepted >= 1, "seed \(name) is a well-formed message some decoder accepts")
            }
        }
    }

    @Test func mutatedSeedsAreRefusedWithoutCrashing() throws {
        // Every single-byte truncation and bit flip of one seed: decoders refuse or accept, never trap.
        let seed = try Array(Data(contentsOf: Self.corpus.appendingPathComponent("round0-share-keys-frame")))
        for cut in 0..<seed.count { DecoderHarness.run(Array(seed.prefix(cut))) }
        for i in 0..<seed.count {
            for bit in 0..<8 {
                var flipped = seed
                flipped[i] ^= 1 << bit
                DecoderHarness.run(flipped)
            }
        }
    }
}
