import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Held while a round loop runs over a state directory: an exclusive `flock` on `run.lock`, so
/// that a second `veil-device run` (or a second `veil_device_start` on another handle) over the
/// same directory is refused instead of taking part in rounds under the same identity and taking
/// over the ingest socket. The kernel releases it when the holder dies, so a SIGKILLed agent
/// leaves nothing to clean up.
public final class RunLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock of `state`, or throws ``AgentError/state(_:)`` if another process or handle
    /// holds it.
    public init(_ state: AgentState) throws(AgentError) {
        let path = state.directory + "/run.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .state("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "another veil-device is already running over \(state.directory)" : "cannot lock \(path): \(String(cString: strerror(errno)))"
            close(descriptor)
            throw .state(reason)
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}
