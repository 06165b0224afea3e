public import Foundation

/// JSON Lines of ``DeviceAgent/ObservationRecord`` (`Protocols/device-ingest.md`): the one parser
/// behind `veil-device record --jsonl`, the ingest socket and `veil_device_record_json`, so the
/// three interfaces accept and refuse exactly the same lines.
///
/// Lines are split on the byte `\n`; surrounding spaces, tabs and `\r` are ignored, blank lines
/// are skipped, and a line longer than ``maximumLineBytes`` is refused without being decoded.
public struct ObservationLines: Sendable {
    /// The longest line accepted, in bytes (an observation object is a few hundred at most).
    public static let maximumLineBytes = 4096

    /// One refused line, numbered from 1.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// The line's number, from 1.
        public let line: Int
        /// Why it was refused.
        public let reason: String

        /// A problem with line `line`.
        public init(line: Int, reason: String) {
            self.line = line
            self.reason = reason
        }

        /// `line k: reason`.
        public var description: String { "line \(line): \(reason)" }
    }

    /// One parsed line.
    public struct Line: Sendable {
        /// The line's number, from 1.
        public let number: Int
        /// The observation it holds.
        public let record: DeviceAgent.ObservationRecord
    }

    /// The lines that hold an observation object, in order.
    public let lines: [Line]
    /// The lines that do not, in order.
    public let problems: [Problem]

    /// Parses `text`.
    public init(_ text: some StringProtocol) {
        var lines: [Line] = []
        var problems: [Problem] = []
        let decoder = JSONDecoder()
        // By bytes: as Characters, "\r\n" is one grapheme and would not split at "\n".
        let blank: Set<UInt8> = [0x20, 0x09, 0x0D]
        for (index, raw) in Array(text.utf8).split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            guard let first = raw.firstIndex(where: { !blank.contains($0) }), let last = raw.lastIndex(where: { !blank.contains($0) }) else { continue }
            let trimmed = raw[first...last]
            guard trimmed.count <= Self.maximumLineBytes else {
                problems.append(Problem(line: index + 1, reason: "longer than \(Self.maximumLineBytes) bytes"))
                continue
            }
            do {
                lines.append(Line(number: index + 1, record: try decoder.decode(DeviceAgent.ObservationRecord.self, from: Data(trimmed))))
            } catch {
                problems.append(Problem(line: index + 1, reason: "not an observation object: \(Self.explain(error))"))
            }
        }
        self.lines = lines
        self.problems = problems
    }

    /// A decoding error in a few words, naming the field.
    static func explain(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, _): return "missing \"\(key.stringValue)\""
        case let DecodingError.typeMismatch(_, context): return "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
        case let DecodingError.dataCorrupted(context): return context.debugDescription
        default: return "\(error)"
        }
    }
}

extension DeviceAgent {
    /// What a batch with a bad line does to the good ones.
    public enum BatchMode: Sendable {
        /// Nothing is stored unless every line is good (the socket and the C ABI: the caller
        /// fixes the line and sends the batch again).
        case allOrNothing
        /// Every good line is stored (`record --jsonl`: a log piped in keeps what it can).
        case eachLine
    }

    /// Records the JSON Lines in `text` durably, in one transaction per feature set, and returns
    /// once they are on disk: how many were stored, and each refused line with its number. In
    /// ``BatchMode/allOrNothing`` the first bad line is the only problem reported and nothing is
    /// stored. Throws only when the state directory is unusable.
    public func recordJSONLines(_ text: some StringProtocol, mode: BatchMode, now: Date = Date()) throws(AgentError) -> (stored: Int, problems: [ObservationLines.Problem]) {
        let parsed = ObservationLines(text)
        if mode == .allOrNothing, let first = parsed.problems.first { return (0, [first]) }
        var problems = parsed.problems
        do {
            switch mode {
            case .allOrNothing:
                try store(parsed.lines.map(\.record), now: now)
                return (parsed.lines.count, [])
            case .eachLine:
                let refused = try store(parsed.lines.map(\.record), now: now, keepingGoodOnes: true)
                problems += refused.map { ObservationLines.Problem(line: parsed.lines[$0.index].number, reason: $0.reason) }
                return (parsed.lines.count - refused.count, problems.sorted { $0.line < $1.line })
            }
        } catch let error as RecordError {
            return (0, [ObservationLines.Problem(line: parsed.lines[error.index].number, reason: error.reason)])
        } catch let error as AgentError {
            throw error
        } catch {
            throw .observation("\(error)")
        }
    }
}
