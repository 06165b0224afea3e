import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if canImport(CoreFoundation)
// On Linux the clang importer may attribute `struct stat` to CoreFoundation's module, whose
// members MemberImportVisibility then requires importing.
import CoreFoundation
#endif
import Synchronization
public import VeilProtocol

/// The round ids this device has taken part in, kept durably so that it never signs in one round
/// id twice, across restarts too (`SPEC.md` §13.2).
///
/// An aggregator that reuses a round id could otherwise collect one device's consistency
/// signatures over two different survivor sets. The id is appended and flushed to disk (`fsync`)
/// before the device draws its round keys, so a crash between recording and signing can only make
/// the device refuse a round it never signed in, never sign twice.
///
/// The file holds one 24-byte record per round: the 16-byte id and the Unix time (8 bytes,
/// big-endian) it was recorded. It is created with mode 0600 and refused if group or others can
/// access it. It grows by 24 bytes a round (about 12 MiB after a year of one round a minute).
///
/// Thread-safe.
public final class SignedRoundLedger: Sendable {
    private struct State {
        var rounds = SignedRounds()
        var handle: FileHandle?
    }

    private let state: Mutex<State>
    /// The file, or nil for an in-memory ledger.
    public let path: String?

    private static let recordByteCount = RoundID.byteCount + 8

    /// Opens the ledger at `path`, creating it (mode 0600) if missing.
    public init(at path: String) throws(DeviceError) {
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .localStore("cannot open the round ledger \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw .localStore("cannot stat the round ledger \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            close(fd)
            throw .localStore("the round ledger \(path) has mode \(String(info.st_mode & 0o777, radix: 8)); it must not be accessible to group or others (chmod 600)")
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let data: Data
        do { data = try handle.readToEnd() ?? Data() } catch {
            throw .localStore("cannot read the round ledger \(path): \(error)")
        }
        // A record cut short by a crash while appending was never acknowledged: ignore the tail.
        var rounds = SignedRounds()
        let whole = data.count - data.count % Self.recordByteCount
        var offset = 0
        while offset < whole {
            let id = try! RoundID(bytes: Array(data[offset..<(offset + RoundID.byteCount)]))
            try? rounds.record(id)
            offset += Self.recordByteCount
        }
        if whole != data.count {
            guard ftruncate(fd, off_t(whole)) == 0 else {
                throw .localStore("cannot repair the round ledger \(path): \(String(cString: strerror(errno)))")
            }
        }
        self.path = path
        state = Mutex(State(rounds: rounds, handle: handle))
    }

    /// A ledger kept in memory only: for simulations and tests, where devices do not outlive the
    /// process. A device that restarts with it forgets the rounds it signed in.
    public static func inMemory() -> SignedRoundLedger { SignedRoundLedger() }

    private init() {
        path = nil
        state = Mutex(State())
    }

    /// Records `round` durably (written and flushed before it returns); throws
    /// ``LedgerError/reused(_:)`` when it was recorded before, and ``LedgerError/unwritable(_:)``
    /// when the record could not be made durable.
    public func record(_ round: RoundID) throws(LedgerError) {
        let now = Date()
        try state.withLock { (state: inout State) throws(LedgerError) in
            guard !state.rounds.contains(round) else { throw .reused(.roundReused(round)) }
            if let handle = state.handle {
                var record = round.bytes
                let seconds = UInt64(max(0, now.timeIntervalSince1970))
                withUnsafeBytes(of: seconds.bigEndian) { record.append(contentsOf: $0) }
                do {
                    try handle.write(contentsOf: record)
                    try handle.synchronize()
                } catch {
                    throw .unwritable("cannot record round \(round) in \(path ?? "the round ledger"): \(error)")
                }
            }
            try! state.rounds.record(round)
        }
    }

    /// Whether the device already took part in `round`.
    public func contains(_ round: RoundID) -> Bool { state.withLock { $0.rounds.contains(round) } }

    /// The number of rounds recorded.
    public var count: Int { state.withLock { $0.rounds.count } }

    /// Why a round could not be recorded.
    public enum LedgerError: Error, Equatable {
        /// The round id was recorded before.
        case reused(PolicyViolation)
        /// The record could not be written and flushed.
        case unwritable(String)
    }
}
