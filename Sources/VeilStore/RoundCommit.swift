public import Foundation
public import VeilFeatures
public import VeilProtocol

/// Everything the end of one round writes, committed by ``AggregatorStore/commitRound(_:now:)`` in
/// one transaction before any device hears how the round ended (SPEC.md §12.2): the round's row,
/// its output when it finished, the merge of that output into its feature window, and the release
/// of the round's remaining window claims.
public struct RoundCommit: Sendable, Equatable {
    /// How the round ended ("finished" or "aborted").
    public let round: RoundRecord
    /// The output of a finished round.
    public let result: RoundResultRecord?
    /// The window addition of a finished feature round.
    public let window: WindowMerge?

    /// Creates a commit. A result or a window merge needs a finished round; a window merge needs
    /// a result.
    public init(round: RoundRecord, result: RoundResultRecord? = nil, window: WindowMerge? = nil) {
        precondition(result == nil || round.outcome == RoundRecord.finished, "only a finished round has a result")
        precondition(window == nil || result != nil, "a window merge needs the round's result")
        self.round = round
        self.result = result
        self.window = window
    }
}

/// A finished round's sum to add into its feature window.
public struct WindowMerge: Sendable, Equatable {
    /// The feature set.
    public let featureSet: FeatureSet
    /// The window's start (seconds since the epoch).
    public let windowStart: Int
    /// The round's sum.
    public let sum: ModularVector
    /// The devices in the sum, which the window now counts.
    public let contributorIDs: [String]
    /// The window's running sum replaces its release only when the release rule allows it
    /// with this minimum (``WindowRelease/allows(contributors:previouslyReleased:minimumReleaseCohort:)``).
    public let minimumReleaseCohort: Int

    /// Creates a merge.
    public init(featureSet: FeatureSet, windowStart: Int, sum: ModularVector, contributorIDs: [String], minimumReleaseCohort: Int) {
        self.featureSet = featureSet
        self.windowStart = windowStart
        self.sum = sum
        self.contributorIDs = contributorIDs
        self.minimumReleaseCohort = minimumReleaseCohort
    }
}

/// A round as recorded when it starts (SPEC.md §12.2): before any device is assigned, so that an
/// instance that dies mid-round leaves a row that its restart (or an operator) can find.
public struct RoundStart: Sendable, Equatable {
    /// Hex round id.
    public let roundID: String
    /// The configured task.
    public let task: String
    /// When the cohort was assigned.
    public let startedAt: Date
    /// n.
    public let cohortSize: Int
    /// The aggregator instance running the round (its `instance` setting).
    public let instance: String
    /// How long the round's first lease lasts, in seconds of the database's own clock
    /// (SPEC.md §12.3); the instance renews it while the round runs.
    public let leaseSeconds: Double

    /// Creates a start record.
    public init(roundID: String, task: String, startedAt: Date, cohortSize: Int, instance: String, leaseSeconds: Double) {
        self.roundID = roundID
        self.task = task
        self.startedAt = startedAt
        self.cohortSize = cohortSize
        self.instance = instance
        self.leaseSeconds = leaseSeconds
    }
}

/// A finished round that may no longer add its sum: its lease expired (in the database's time)
/// or the round was ended by recovery, so its claims may belong to another round now.
public struct RoundLeaseLost: Error, Equatable, Sendable, CustomStringConvertible {
    /// The round.
    public let roundID: String
    /// Creates the error.
    public init(roundID: String) { self.roundID = roundID }
    /// A one-line explanation.
    public var description: String { "round \(roundID) lost its lease; its devices may be counted by another round, so its sum is not added" }
}

extension RoundRecord {
    /// The outcome of a round that is still running (or whose instance died).
    public static let running = "running"
    /// The outcome of a round that finished with a sum.
    public static let finished = "finished"
    /// The outcome of a round that aborted.
    public static let aborted = "aborted"
    /// The reason recorded for a round whose instance stopped while it ran, ended when that
    /// instance restarted (whether or not its lease had run out by then).
    public static let instanceStoppedReason = "the aggregator instance stopped while the round ran; recovered at its restart"
    /// The reason recorded for a round whose lease expired (its instance died or stalled),
    /// ended by any instance sharing the store.
    public static let leaseExpiredReason = "the round's lease expired; recovered by an instance sharing the store"
}
