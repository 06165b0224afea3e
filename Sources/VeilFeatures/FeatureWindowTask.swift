/// What a feature round aggregates, as the aggregator names it in the round assignment's `task`:
/// `<feature set>/v<version>/<window start>`, the window start in seconds since the Unix epoch
/// (UTC), a multiple of the window length. Devices contribute their observations of that window.
public struct FeatureWindowTask: Sendable, Hashable, CustomStringConvertible {
    /// The feature set's name.
    public let featureSet: String
    /// The feature set's version.
    public let version: Int
    /// The window's start.
    public let windowStart: Int

    /// Names a window of a feature set.
    public init(featureSet: String, version: Int, windowStart: Int) {
        self.featureSet = featureSet
        self.version = version
        self.windowStart = windowStart
    }

    /// Parses a task; nil when it is not a feature-window task.
    public init?(parsing task: String) {
        let parts = task.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1].hasPrefix("v"),
              let version = Int(parts[1].dropFirst()), version >= 1, let start = Int(parts[2]) else { return nil }
        self.init(featureSet: String(parts[0]), version: version, windowStart: start)
    }

    /// The task text.
    public var description: String { "\(featureSet)/v\(version)/\(windowStart)" }
}

extension FeatureSet {
    /// The start of the tumbling UTC window of `windowSeconds` holding `secondsSinceEpoch`.
    public static func windowStart(of secondsSinceEpoch: Int, windowSeconds: Int) -> Int {
        secondsSinceEpoch - ((secondsSinceEpoch % windowSeconds) + windowSeconds) % windowSeconds
    }
}
