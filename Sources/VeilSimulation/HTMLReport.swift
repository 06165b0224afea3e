import Foundation

/// A self-contained HTML page with inline SVG charts of a report: per-phase time, the per-device
/// compute distribution, bytes per phase, and devices answering per phase.
public enum HTMLReport {
    /// The page for `report`.
    public static func page(_ r: SimulationReport) -> String {
        let phases = r.phases.map(\.phase)
        let summary: [(String, String)] = [
            ("Result", r.correct ? "correct: output equals the plaintext sum of \(r.survivors) counted devices" : "NOT correct: \(escape(r.outcome))"),
            ("Protocol", "\(r.protocol), \(r.threatModel), \(r.prg)"),
            ("Devices / survivors", "\(r.devices) / \(r.survivors)"),
            ("Vector", "\(r.dimension) elements of \(r.bitWidth) bits"),
            ("Neighbours k / threshold t", "\(r.neighbors) / \(r.threshold)"),
            ("Total wall time", "\(fixed(r.totalSeconds, 2)) s"),
            ("Server compute", "\(readableSeconds(r.serverSeconds)) (\(fixed(r.serverLimitRatio, 2)) × the limit of \(readableSeconds(r.serverLimitSeconds)): the protocol's unavoidable work at this machine's measured speed)"),
            ("Device compute, mean / max", "\(readableSeconds(r.deviceSecondsMean)) / \(readableSeconds(r.deviceSecondsMax)) (\(fixed(r.deviceLimitRatio, 2)) × the limit of \(readableSeconds(r.deviceLimitSeconds)))"),
            ("Bytes up / down per device", "\(Int(r.bytesUpPerDevice)) / \(Int(r.bytesDownPerDevice)) (plaintext vector \(r.plaintextBytes) B)"),
            ("Peak RSS", "\(fixed(Double(r.peakRSSBytes) / 1_048_576, 1)) MiB"),
        ]
        var html = head(title: "Veil simulation: \(r.scenario)") + "<table>\n"
        for (i, (k, v)) in summary.enumerated() {
            let cls = i == 0 ? (r.correct ? " class=\"ok\"" : " class=\"bad\"") : ""
            html += "<tr><th>\(k)</th><td\(cls)>\(escape(v))</td></tr>\n"
        }
        html += "</table>\n"
        html += "<h2>Time per phase (seconds): wall, and server compute</h2>\n"
        html += groupedBars(labels: phases, series: [("wall", r.phases.map(\.wallSeconds), "#4e79a7"), ("server", r.phases.map(\.serverSeconds), "#f28e2b")], unit: "s")
        if !r.phaseLimits.isEmpty {
            let names = r.phaseLimits.map(\.phase)
            html += "<h2>Server compute per phase against its limit (seconds)</h2>\n"
            html += groupedBars(labels: names, series: [("measured", r.phaseLimits.map(\.serverSeconds), "#f28e2b"), ("limit", r.phaseLimits.map(\.serverLimitSeconds), "#bab0ac")], unit: "s")
            html += "<h2>Mean device compute per phase against its limit (milliseconds)</h2>\n"
            html += groupedBars(labels: names, series: [("measured", r.phaseLimits.map { $0.deviceSeconds * 1000 }, "#4e79a7"), ("limit", r.phaseLimits.map { $0.deviceLimitSeconds * 1000 }, "#bab0ac")], unit: "ms")
        }
        if let simulated = r.simulated {
            let source = r.mode == "network" ? "measured on loopback with every device's link emulated" : "in simulated time"
            html += timeline(simulated, heading: "The round \(source) on the \(simulated.network) network")
        }
        html += "<h2>Per-device compute over the round (milliseconds, sorted)</h2>\n"
        html += distribution(r.deviceSecondsSample.map { $0 * 1000 })
        html += "<h2>Bytes per phase</h2>\n"
        html += groupedBars(labels: phases, series: [("up", r.phases.map { Double($0.bytesUp) }, "#59a14f"), ("down", r.phases.map { Double($0.bytesDown) }, "#e15759")], unit: "B")
        html += "<h2>Devices per phase</h2>\n"
        html += groupedBars(labels: phases, series: [
            ("answered", r.phases.map { Double($0.answered) }, "#4e79a7"),
            ("dropped", r.phases.map { Double($0.dropped) }, "#bab0ac"),
            ("rejected or refused", r.phases.map { Double($0.rejectedByServer + $0.refusedByDevices) }, "#e15759"),
        ], unit: "")
        html += "</body></html>\n"
        return html
    }

    /// The page's start, up to and including its `<h1>`: shared style for every report page.
    static func head(title: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
        h1 { font-size: 1.5em; } h2 { font-size: 1.1em; margin-top: 2em; }
        table { border-collapse: collapse; } td, th { padding: 0.25em 0.8em; text-align: left; border-bottom: 1px solid #ddd; vertical-align: top; }
        .ok { color: #176f2c; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
        svg text { font-size: 11px; fill: #333; }
        </style></head><body>
        <h1>\(escape(title))</h1>

        """
    }

    /// Vertical grouped bars, one group per label, with a legend.
    static func groupedBars(labels: [String], series: [(String, [Double], String)], unit: String) -> String {
        let width = 720.0, height = 260.0, left = 70.0, bottom = 40.0, top = 20.0
        let (maxValue, step) = niceAxis(series.flatMap(\.1).max() ?? 1)
        let groupWidth = (width - left - 10) / Double(max(1, labels.count))
        let barWidth = groupWidth * 0.8 / Double(max(1, series.count))
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + 20))\" role=\"img\">\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>\n"
        for tick in 0...Int((maxValue / step).rounded()) {
            let v = step * Double(tick)
            let y = height - bottom - (height - bottom - top) * v / maxValue
            svg += "<text x=\"\(left - 6)\" y=\"\(fixed(y + 4, 1))\" text-anchor=\"end\">\(short(v))\(unit)</text>\n"
        }
        for (g, label) in labels.enumerated() {
            let x0 = left + Double(g) * groupWidth + groupWidth * 0.1
            for (s, (name, values, colour)) in series.enumerated() {
                let v = g < values.count ? values[g] : 0
                let h = (height - bottom - top) * v / maxValue
                svg += "<rect x=\"\(fixed(x0 + Double(s) * barWidth, 1))\" y=\"\(fixed(height - bottom - h, 1))\" width=\"\(fixed(barWidth - 2, 1))\" height=\"\(fixed(h, 1))\" fill=\"\(colour)\"><title>\(escape(name)) \(escape(label)): \(short(v))\(unit)</title></rect>\n"
            }
            svg += "<text x=\"\(fixed(x0 + groupWidth * 0.4, 1))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(escape(label))</text>\n"
        }
        for (s, (name, _, colour)) in series.enumerated() {
            let x = left + 10 + Double(s) * 150
            svg += "<rect x=\"\(x)\" y=\"\(height)\" width=\"10\" height=\"10\" fill=\"\(colour)\"/><text x=\"\(x + 14)\" y=\"\(height + 9)\">\(escape(name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Sorted per-device values drawn as a line (a quantile plot).
    static func distribution(_ values: [Double]) -> String {
        let width = 720.0, height = 240.0, left = 70.0, bottom = 30.0, top = 15.0
        guard values.count > 1, let maxValue = values.max(), maxValue > 0 else { return "<p>Not enough devices to plot.</p>\n" }
        let points = values.enumerated().map { i, v in
            let x = left + (width - left - 10) * Double(i) / Double(values.count - 1)
            let y = height - bottom - (height - bottom - top) * v / maxValue
            return "\(fixed(x, 1)),\(fixed(y, 1))"
        }.joined(separator: " ")
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">\n"
        svg += "<polyline fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"2\" points=\"\(points)\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>\n"
        svg += "<text x=\"\(left - 6)\" y=\"\(top + 4)\" text-anchor=\"end\">\(short(maxValue)) ms</text>"
        svg += "<text x=\"\(left - 6)\" y=\"\(height - bottom)\" text-anchor=\"end\">0</text>\n"
        svg += "<text x=\"\(left)\" y=\"\(height - 10)\">fastest device</text><text x=\"\(width - 10)\" y=\"\(height - 10)\" text-anchor=\"end\">slowest device</text>\n"
        return svg + "</svg>\n"
    }

    /// An axis for values up to `largest`: a top at a round number and a step of 1, 2 or 5
    /// times a power of ten, with at most about five ticks.
    static func niceAxis(_ largest: Double) -> (top: Double, step: Double) {
        guard largest > 0, largest.isFinite else { return (1, 0.25) }
        let step = RoundPlan.roundNumber(atLeast: largest / 5)
        return ((largest / step).rounded(.up) * step, step)
    }

    /// A round in time under `heading`: one bar per phase along the time axis, its deadline
    /// marked, and the median and 99th-percentile arrivals of its answers.
    static func timeline(_ s: SimulatedTiming, heading: String) -> String {
        let width = 720.0, left = 170.0, right = 20.0, rowHeight = 34.0, top = 10.0
        let (axisTop, step) = niceAxis(max(s.roundSeconds, s.phases.map { $0.startSeconds + $0.deadlineSeconds }.max() ?? 0))
        let height = top + rowHeight * Double(s.phases.count) + 50
        func x(_ t: Double) -> Double { left + (width - left - right) * t / axisTop }
        var svg = "<h2>\(escape(heading)): \(readableSeconds(s.roundSeconds)), \(s.cutByDeadline) devices cut by deadlines</h2>\n"
        svg += "<p>Each bar is a phase from its opening to its close; the red line is its deadline, the ticks its answers' median and 99th-percentile arrival. A phase waits for its deadline when anyone it asked was silent or late.</p>\n"
        svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">\n"
        for (i, p) in s.phases.enumerated() {
            let y = top + Double(i) * rowHeight
            let label = p.cutByDeadline > 0 ? "\(p.phase) (\(p.cutByDeadline) cut)" : p.phase
            svg += "<text x=\"\(left - 8)\" y=\"\(fixed(y + 17, 1))\" text-anchor=\"end\">\(escape(label))</text>\n"
            svg += "<rect x=\"\(fixed(x(p.startSeconds), 1))\" y=\"\(fixed(y + 6, 1))\" width=\"\(fixed(max(1, x(p.startSeconds + p.durationSeconds) - x(p.startSeconds)), 1))\" height=\"16\" fill=\"\(p.waitedForDeadline ? "#bab0ac" : "#4e79a7")\"><title>\(escape(p.phase)): \(readableSeconds(p.durationSeconds))\(p.waitedForDeadline ? ", waited for its deadline" : "")</title></rect>\n"
            let deadline = x(p.startSeconds + p.deadlineSeconds)
            svg += "<line x1=\"\(fixed(deadline, 1))\" y1=\"\(fixed(y + 2, 1))\" x2=\"\(fixed(deadline, 1))\" y2=\"\(fixed(y + 26, 1))\" stroke=\"#e15759\" stroke-width=\"2\"><title>deadline \(readableSeconds(p.deadlineSeconds))</title></line>\n"
            for (name, t) in [("median arrival", p.arrivalP50), ("99th-percentile arrival", p.arrivalP99)] {
                let at = x(p.startSeconds + t)
                svg += "<line x1=\"\(fixed(at, 1))\" y1=\"\(fixed(y + 4, 1))\" x2=\"\(fixed(at, 1))\" y2=\"\(fixed(y + 24, 1))\" stroke=\"#222\"><title>\(name) \(readableSeconds(t))</title></line>\n"
            }
        }
        let axisY = top + rowHeight * Double(s.phases.count) + 6
        svg += "<line x1=\"\(left)\" y1=\"\(fixed(axisY, 1))\" x2=\"\(width - right)\" y2=\"\(fixed(axisY, 1))\" stroke=\"#888\"/>\n"
        for tick in 0...Int((axisTop / step).rounded()) {
            let t = step * Double(tick)
            svg += "<text x=\"\(fixed(x(t), 1))\" y=\"\(fixed(axisY + 16, 1))\" text-anchor=\"middle\">\(short(t)) s</text>\n"
        }
        svg += "</svg>\n"
        for p in s.phases where !p.arrivalSample.isEmpty { svg += arrivals(p) }
        return svg
    }

    /// When one phase's answers reached the server, sorted (a quantile plot), against its deadline.
    static func arrivals(_ p: SimulatedPhase) -> String {
        let width = 720.0, height = 150.0, left = 70.0, right = 20.0, bottom = 28.0, top = 10.0
        let (axisTop, step) = niceAxis(max(p.deadlineSeconds, p.arrivalSample.last ?? 0))
        func y(_ t: Double) -> Double { height - bottom - (height - bottom - top) * t / axisTop }
        let count = Double(max(1, p.arrivalSample.count - 1))
        let points = p.arrivalSample.enumerated().map { i, t in "\(fixed(left + (width - left - right) * Double(i) / count, 1)),\(fixed(y(t), 1))" }.joined(separator: " ")
        var svg = "<h3>\(escape(p.phase)): answers' arrival after the phase opened, fastest to slowest device\(p.cutByDeadline > 0 ? "; \(p.cutByDeadline) past the deadline" : "")</h3>\n"
        svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">\n"
        svg += "<polyline fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"2\" points=\"\(points)\"/>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(fixed(y(p.deadlineSeconds), 1))\" x2=\"\(width - right)\" y2=\"\(fixed(y(p.deadlineSeconds), 1))\" stroke=\"#e15759\" stroke-width=\"2\"><title>deadline \(readableSeconds(p.deadlineSeconds))</title></line>\n"
        svg += "<line x1=\"\(left)\" y1=\"\(fixed(y(0), 1))\" x2=\"\(width - right)\" y2=\"\(fixed(y(0), 1))\" stroke=\"#888\"/>\n"
        for tick in 0...Int((axisTop / step).rounded()) {
            let t = step * Double(tick)
            svg += "<text x=\"\(left - 6)\" y=\"\(fixed(y(t) + 4, 1))\" text-anchor=\"end\">\(short(t)) s</text>\n"
        }
        svg += "<text x=\"\(left)\" y=\"\(height - 8)\">fastest device</text><text x=\"\(width - right)\" y=\"\(height - 8)\" text-anchor=\"end\">slowest device</text>\n"
        return svg + "</svg>\n"
    }

    /// Seconds with a unit that keeps about three significant figures: "1.23 s", "45.6 ms", "789 µs".
    public static func readableSeconds(_ x: Double) -> String {
        switch x {
        case 0: return "0 s"
        case 1...: return "\(fixed(x, 2)) s"
        case 0.001...: return "\(fixed(x * 1e3, x < 0.01 ? 2 : 1)) ms"
        default: return "\(fixed(x * 1e6, x < 1e-5 ? 2 : 1)) µs"
        }
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func fixed(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

    static func short(_ v: Double) -> String {
        switch abs(v) {
        case 1e9...: return fixed(v / 1e9, 1) + "G"
        case 1e6...: return fixed(v / 1e6, 1) + "M"
        case 1e3...: return fixed(v / 1e3, 1) + "k"
        case 1...: return fixed(v, 1)
        case 0: return "0"
        default: return fixed(v, 3)
        }
    }
}
