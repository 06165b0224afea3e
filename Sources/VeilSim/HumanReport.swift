import Foundation
import VeilSimulation

/// The report as a plain-text table for standard output.
enum HumanReport {
    static func table(_ r: SimulationReport) -> String {
        var lines = [String]()
        func row(_ name: String, _ value: String) { lines.append("  \(name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(value)") }
        lines.append("Veil simulation: \(r.scenario) (\(r.mode))")
        row("result", r.correct ? "CORRECT (output equals the plaintext sum of \(r.survivors) counted devices)" : "WRONG or ABORTED: \(r.outcome)")
        if !r.correct && r.mismatchCount > 0 { row("mismatched elements", "\(r.mismatchCount), first at \(r.mismatchedElements)") }
        row("protocol", "\(r.protocol), \(r.threatModel), \(r.prg)")
        row("devices / survivors", "\(r.devices) / \(r.survivors)")
        row("vector", "\(r.dimension) elements of \(r.bitWidth) bits")
        row("neighbours k / threshold t", "\(r.neighbors) / \(r.threshold)  (security 2^-\(fixed(r.securityBits, 0)), failure 2^-\(fixed(r.correctnessBits, 0)))")
        row("total wall time", "\(fixed(r.totalSeconds, 2)) s")
        let scope = r.phaseLimits.isEmpty ? "mask expansion and addition" : "all unavoidable work; mask-only \(fixed(r.serverMaskOnlyLimitRatio, 2)) ×"
        row("server compute", "\(fixed(r.serverSeconds, 3)) s  = \(fixed(r.serverLimitRatio, 2)) × limit \(seconds(r.serverLimitSeconds)) (\(scope))")
        row("device compute mean / max", "\(fixed(r.deviceSecondsMean * 1000, 2)) / \(fixed(r.deviceSecondsMax * 1000, 2)) ms  = \(fixed(r.deviceLimitRatio, 2)) × limit \(seconds(r.deviceLimitSeconds)) (masking phase \(fixed(r.deviceMaskingLimitRatio, 2)) ×)")
        row("bytes up / down per device", "\(Int(r.bytesUpPerDevice)) / \(Int(r.bytesDownPerDevice))  (plaintext vector \(r.plaintextBytes) B, upload \(fixed(r.bytesUpPerDevice / Double(max(1, r.plaintextBytes)), 2)) ×)")
        if let c = r.connections, let s = r.streams { row("connections / streams", "\(c) HTTP/2 connections with TLS, \(s) streams") }
        row("peak RSS", "\(fixed(Double(r.peakRSSBytes) / 1_048_576, 1)) MiB")
        row("machine limits", "keystream \(fixed(r.keystreamGBps, 2)) GB/s, add \(fixed(r.addGBps, 2)) GB/s per core")
        row("unmasking work", "\(r.reconstructions) reconstructions, \(r.maskExpansions) mask expansions")
        if !r.rejections.isEmpty {
            row("rejected / refused", r.rejections.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; "))
        }
        if r.misbehavingNamed > 0 { row("named misbehaving", "\(r.misbehavingNamed) devices") }
        lines.append("")
        lines.append("  phase                     wall s   server s  device ms  answered  dropped  refused  rejected   bytes up  bytes down")
        for p in r.phases {
            lines.append("  " + [
                p.phase.padding(toLength: 24, withPad: " ", startingAt: 0),
                pad(fixed(p.wallSeconds, 3), 8), pad(fixed(p.serverSeconds, 3), 10), pad(fixed(p.deviceSecondsMean * 1000, 3), 10),
                pad("\(p.answered)", 9), pad("\(p.dropped)", 8), pad("\(p.refusedByDevices)", 8), pad("\(p.rejectedByServer)", 9),
                pad("\(p.bytesUp)", 10), pad("\(p.bytesDown)", 11),
            ].joined(separator: " "))
        }
        if !r.phaseLimits.isEmpty { lines += limitTable(r.phaseLimits) }
        if let simulated = r.simulated { lines += simulatedTable(simulated, measured: r.mode == "network") }
        return lines.joined(separator: "\n")
    }

    /// Each phase's compute beside the time its unavoidable work takes here.
    static func limitTable(_ limits: [PhaseLimit]) -> [String] {
        var lines = ["", "  Against the limit (the protocol's unavoidable work at the primitives' speed measured in this run):"]
        lines.append("  phase                     device mean     limit  × limit     server      limit  × limit")
        for p in limits {
            lines.append("  " + [
                p.phase.padding(toLength: 24, withPad: " ", startingAt: 0),
                pad(seconds(p.deviceSeconds), 11), pad(seconds(p.deviceLimitSeconds), 9), pad(p.deviceLimitSeconds > 0 ? fixed(p.deviceRatio, 2) : "—", 8),
                pad(seconds(p.serverSeconds), 10), pad(seconds(p.serverLimitSeconds), 10), pad(p.serverLimitSeconds > 0 ? fixed(p.serverRatio, 2) : "—", 8),
            ].joined(separator: " "))
        }
        return lines
    }

    static func seconds(_ x: Double) -> String { HTMLReport.readableSeconds(x) }

    /// The round in time: each phase's span, its deadline and the answers it cut; `measured` when
    /// the figures come from loopback with emulated links rather than from simulated time.
    static func simulatedTable(_ s: SimulatedTiming, measured: Bool) -> [String] {
        let source = measured ? "Measured on loopback with every device's link emulated" : "In simulated time"
        var lines = ["", "  \(source) on the \(s.network) network: round \(fixed(s.roundSeconds, 2)) s, \(s.cutByDeadline) devices cut by deadlines"]
        lines.append("  phase                     opens s  lasts s  deadline s  arrivals p50 / p90 / p99 s   in time  cut  waited")
        for p in s.phases {
            lines.append("  " + [
                p.phase.padding(toLength: 24, withPad: " ", startingAt: 0),
                pad(fixed(p.startSeconds, 2), 8), pad(fixed(p.durationSeconds, 2), 8), pad(fixed(p.deadlineSeconds, 1), 11),
                pad("\(fixed(p.arrivalP50, 2)) / \(fixed(p.arrivalP90, 2)) / \(fixed(p.arrivalP99, 2))", 28),
                pad("\(p.inTime)", 8), pad("\(p.cutByDeadline)", 4), pad(p.waitedForDeadline ? "yes" : "no", 7),
            ].joined(separator: " "))
        }
        return lines
    }

    static func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }

    static func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }
}
