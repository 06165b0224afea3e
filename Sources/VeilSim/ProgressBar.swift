import Foundation
import VeilProtocol
import VeilSimulation

/// A one-line progress bar on standard error: phase, devices done, rate. Silent when standard
/// error is not a terminal, and for runs shorter than a second.
final class ProgressBar: @unchecked Sendable {
    private let enabled = isatty(STDERR_FILENO) == 1
    private let start = ContinuousClock.now
    private let lock = NSLock()
    private var drawn = false

    func update(_ p: SimulationProgress) {
        update(label: p.phase.rawValue, done: p.done, total: p.total)
    }

    /// Draws `label` with `done` of `total` devices; safe from any thread.
    func update(label: String, done: Int, total: Int) {
        let elapsed = ContinuousClock.now - start
        guard enabled, elapsed > .seconds(1) else { return }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let rate = Double(done) / max(seconds, 1e-9)
        let line = "\r\(label.padding(toLength: 24, withPad: " ", startingAt: 0)) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) devices  \(Int(rate)) devices/s "
        lock.lock()
        defer { lock.unlock() }
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
