import Foundation
import VeilWire

// Two builds of one target:
// - normal (`swift build`): `veil-fuzz DIR...` replays every file of the corpus directories
//   through the decoders, the regression check CI runs on the committed seed corpus;
// - fuzzing (`Fuzz/run.sh`, defines VEIL_FUZZ and links libFuzzer): libFuzzer calls
//   `LLVMFuzzerTestOneInput` with mutated inputs.
#if VEIL_FUZZ
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    DecoderHarness.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
/// `veil-fuzz CORPUS_DIR...` replays a corpus; `veil-fuzz --write-seeds DIR` writes the seeds.
@main
enum CorpusReplay {
    static func main() {
        let directories = Array(CommandLine.arguments.dropFirst())
        if directories.first == "--write-seeds", directories.count == 2 {
            for (name, bytes) in SeedCorpus.inputs() {
                _ = FileManager.default.createFile(atPath: directories[1] + "/" + name, contents: Data(bytes))
            }
            print("wrote \(SeedCorpus.inputs().count) seed inputs to \(directories[1])")
            return
        }
        guard !directories.isEmpty else {
            FileHandle.standardError.write(Data("usage: veil-fuzz CORPUS_DIR... | veil-fuzz --write-seeds DIR\n".utf8))
            exit(2)
        }
        var files = 0
        var accepted = 0
        for directory in directories {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for name in names.sorted() {
                guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
                accepted += DecoderHarness.run(Array(data))
                files += 1
            }
        }
        print("replayed \(files) inputs through the device-message decoders; \(accepted) decodings accepted")
    }
}
#endif
