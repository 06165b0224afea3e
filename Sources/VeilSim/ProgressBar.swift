import Foundation
import VeilProtocol
import VeilSimulation

/// A one-line progress bar on standard error: phase, devices done, rate. Silent when standard
/// error is not a terminal, and for runs shorter than a second.
final class ProgressBar {
    private let enabled = isatty(STDERR_FILENO) == 1
    private let start = ContinuousClock.now
    private var drawn = false

    func update(_ p: SimulationProgress) {
        guard enabled, ContinuousClock.now - start > .seconds(1) else { return }
        let width = 30
        let filled = p.total == 0 ? width : width * p.done / p.total
        let rate = p.elapsed > 0 ? Double(p.done) / max(p.elapsed, 1e-9) : 0
        let line = "\r\(p.phase.rawValue.padding(toLength: 24, withPad: " ", startingAt: 0)) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(p.done)/\(p.total) devices  \(Int(rate)) devices/s "
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
