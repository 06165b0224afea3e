import Foundation

// veil-vectors DIRECTORY: writes the known-answer vectors of Protocols/vectors/ into DIRECTORY.
// Run it through Protocols/vectors/generate; Tests/VeilProtocolTests/VectorTests.swift checks the
// committed files against the code. Protocols/vectors/README.md documents every file's format.

guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: veil-vectors DIRECTORY\n".utf8))
    exit(2)
}
let directory = URL(fileURLWithPath: CommandLine.arguments[1], isDirectory: true)
let files: [(name: String, json: Data)] = [
    ("kdf.json", VectorFile.encode(PrimitiveVectors.kdf())),
    ("prg.json", VectorFile.encode(PrimitiveVectors.prg())),
    ("shamir.json", VectorFile.encode(PrimitiveVectors.shamir())),
    ("sealed-share.json", VectorFile.encode(PrimitiveVectors.sealedShare())),
    ("harary.json", VectorFile.encode(PrimitiveVectors.harary())),
    ("round.json", VectorFile.encode(RoundVector.round())),
    ("statements.json", VectorFile.encode(StatementVectors.statements())),
    ("random-source.json", VectorFile.encode(PrimitiveVectors.randomSource())),
    ("placement.json", VectorFile.encode(PlacementVectors.file())),
]
for (name, json) in files {
    let url = directory.appendingPathComponent(name)
    do {
        try json.write(to: url, options: .atomic)
        print("wrote \(url.path)")
    } catch {
        FileHandle.standardError.write(Data("veil-vectors: cannot write \(url.path): \(error)\n".utf8))
        exit(1)
    }
}
