#if VEIL_FAULT_INJECTION
import Foundation
import Synchronization
#endif

/// The places where the crash harness kills `veil-aggregator serve` (SIGKILL, no cleanup), to
/// prove that a crash at any of them loses no counted window and counts no device twice.
///
/// Compiled in only in debug builds (the `VEIL_FAULT_INJECTION` condition in Package.swift); in
/// release builds ``reach(_:)`` is empty and the environment is never read. In a debug build,
/// `VEIL_FAULT=<raw value>` makes the process kill itself the first time it reaches that point.
enum FaultPoint: String, CaseIterable, Sendable {
    /// The round's start is recorded; it holds no claim and has assigned no device.
    case afterRoundStart = "after-round-start"
    /// A feature round's window claims are committed; no device has been assigned.
    case afterClaim = "after-claim"
    /// AdvertiseKeys closed and ShareKeys is about to be sent.
    case afterAdvertiseKeys = "after-advertise-keys"
    /// ShareKeys closed.
    case afterShareKeys = "after-share-keys"
    /// MaskedInputCollection closed (the sum of masked inputs is complete).
    case afterMaskedInputCollection = "after-masked-input-collection"
    /// The round's outcome is known; nothing about its end is written.
    case beforeRoundCommit = "before-round-commit"
    /// The round's end is committed; no device has been told.
    case afterRoundCommit = "after-round-commit"
    /// Every device has been sent its RoundEnded.
    case afterRoundEnded = "after-round-ended"

    /// The point just after `phase` closes, if the harness names one.
    static func afterClosing(_ phase: String) -> FaultPoint? {
        FaultPoint(rawValue: "after-\(phase)")
    }

    /// Kills the process with SIGKILL if `VEIL_FAULT` names `point`, or stalls the calling thread
    /// for 4 s (once) if `VEIL_FAULT_PAUSE` names it, so that a harness can stop and restart the
    /// database at that moment. Debug builds only.
    static func reach(_ point: FaultPoint) {
        #if VEIL_FAULT_INJECTION
        if armed == point {
            FileHandle.standardError.write(Data("veil-aggregator: fault point \(point.rawValue) reached; killing the process\n".utf8))
            kill(getpid(), SIGKILL)
        }
        if paused == point, pauseTaken.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            FileHandle.standardError.write(Data("veil-aggregator: fault point \(point.rawValue) reached; pausing 4 s\n".utf8))
            Thread.sleep(forTimeInterval: 4)
            FileHandle.standardError.write(Data("veil-aggregator: fault point \(point.rawValue): resuming\n".utf8))
        }
        #endif
    }

    #if VEIL_FAULT_INJECTION
    /// The point `VEIL_FAULT` names, read once.
    private static let armed: FaultPoint? = ProcessInfo.processInfo.environment["VEIL_FAULT"].flatMap(FaultPoint.init(rawValue:))
    /// The point `VEIL_FAULT_PAUSE` names, read once.
    private static let paused: FaultPoint? = ProcessInfo.processInfo.environment["VEIL_FAULT_PAUSE"].flatMap(FaultPoint.init(rawValue:))
    /// Whether the pause happened (it happens once).
    private static let pauseTaken = Atomic<Bool>(false)
    #endif
}
