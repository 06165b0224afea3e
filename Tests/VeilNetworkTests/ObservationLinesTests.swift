import Testing
import VeilDeviceAgent

/// The one JSON Lines parser behind `record --jsonl`, the ingest socket and the C ABI.
@Suite struct ObservationLinesTests {
    @Test func linesAreNumberedFromOneAcrossBlankAndCRLFLines() {
        // "\r\n" is one Character in Swift: splitting a String on "\n" would miss it.
        let text = "{\"feature\": \"a\", \"value\": 1}\r\n\n   \n{\"feature\": \"b\", \"events\": 2}\n{\"value\": 3}\n{\"feature\": 4}\n"
        let parsed = ObservationLines(text)
        #expect(parsed.lines.map(\.number) == [1, 4])
        #expect(parsed.lines.map(\.record) == [.init(feature: "a", value: 1), .init(feature: "b", events: 2)])
        #expect(parsed.problems.map(\.line) == [5, 6])
        #expect(parsed.problems[0].description == "line 5: not an observation object: missing \"feature\"")
        #expect(parsed.problems[1].description.hasPrefix("line 6: not an observation object: feature has the wrong type"))
    }

    @Test func aLineOverTheLimitIsRefusedWithoutBeingDecoded() {
        let long = "{\"feature\": \"" + String(repeating: "x", count: ObservationLines.maximumLineBytes) + "\", \"value\": 1}"
        let atLimit = "{\"feature\": \"" + String(repeating: "y", count: ObservationLines.maximumLineBytes - 27) + "\", \"value\": 1}"
        #expect(atLimit.utf8.count == ObservationLines.maximumLineBytes)
        let parsed = ObservationLines(long + "\n" + atLimit)
        #expect(parsed.problems == [ObservationLines.Problem(line: 1, reason: "longer than 4096 bytes")])
        #expect(parsed.lines.map(\.number) == [2])
    }

    @Test func crlfInputSplitsLikeLF() {
        let parsed = ObservationLines("{\"feature\": \"a\", \"value\": 1}\r\n{\"feature\": \"a\", \"value\": 2}\r\n")
        #expect(parsed.problems.isEmpty && parsed.lines.map(\.record.value) == [1, 2])
    }

    @Test func nothingButBlankLinesParsesToNothing() {
        let parsed = ObservationLines("\n\n  \n")
        #expect(parsed.lines.isEmpty && parsed.problems.isEmpty)
    }
}
