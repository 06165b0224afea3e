import Foundation

extension HTMLReport {
    /// The page for a feature simulation: contributors and rounds per window, and every feature
    /// check of every window.
    public static func page(_ r: FeatureSimulationReport) -> String {
        let formatter = ISO8601DateFormatter()
        let labels = r.windows.map { formatter.string(from: Date(timeIntervalSince1970: Double($0.windowStart))) }
        var html = head(title: "Veil feature simulation: \(r.scenario)") + """
            <table>
            <tr><th>Result</th><td class="\(r.correct ? "ok" : "bad")">\(r.correct ? "correct: every decoded feature equals the plaintext computation over the counted devices" : "NOT correct")</td></tr>
            <tr><th>Mode</th><td>\(escape(r.mode))\(r.connections.map { ", \($0) HTTP/2 connections, \(r.apiReads ?? 0) API reads checked" } ?? "")</td></tr>
            <tr><th>Feature set</th><td>\(escape(r.featureSet)) v\(r.version): \(r.dimension) elements × \(r.bitWidth) bits</td></tr>
            <tr><th>Devices</th><td>\(r.devices); values released from \(r.minimumReleaseCohort) contributors</td></tr>
            <tr><th>Total wall time / peak RSS</th><td>\(fixed(r.totalSeconds, 2)) s / \(fixed(Double(r.peakRSSBytes) / 1_048_576, 1)) MiB</td></tr>
            </table>
            <h2>Devices per window</h2>

            """
        html += groupedBars(labels: labels, series: [
            ("active", r.windows.map { Double($0.activeDevices) }, "#bab0ac"),
            ("counted", r.windows.map { Double($0.contributors) }, "#4e79a7"),
        ], unit: "")
        if let accuracy = r.accuracy { html += privacySection(accuracy, windows: r.windows) }
        html += "<h2>Round wall time per window (seconds)</h2>\n"
        let attempts = r.windows.map(\.rounds.count).max() ?? 0
        html += groupedBars(labels: labels, series: (0..<attempts).map { a in
            ("round \(a + 1)", r.windows.map { w in a < w.rounds.count ? w.rounds[a].seconds : 0 }, a == 0 ? "#f28e2b" : "#59a14f")
        }, unit: "s")
        for (w, label) in zip(r.windows, labels) {
            let privacy = w.privacy.map { p in
                p.refused ? ", refused: the privacy budget is spent" : ", ε \(short(p.windowEpsilon)) (spent \(short(p.spentEpsilon))\(p.budgetEpsilon.map { " of \(short($0))" } ?? ""))"
            } ?? ""
            html += "<h2>Window \(escape(label)): \(w.contributors) counted, \(w.released ? "released" : "below the release minimum")\(escape(privacy))</h2>\n<table>\n"
            html += "<tr><th>feature</th><th>check</th><th>decoded / plaintext</th></tr>\n"
            for c in w.features {
                html += "<tr><td>\(escape(c.feature))</td><td class=\"\(c.ok ? "ok" : "bad")\">\(c.ok ? "ok" : "mismatch")</td><td>\(escape(c.detail))</td></tr>\n"
            }
            for p in w.problems { html += "<tr><td>problem</td><td class=\"bad\">!</td><td>\(escape(p))</td></tr>\n" }
            html += "</table>\n"
        }
        html += "</body></html>\n"
        return html
    }

    /// Accuracy against ε (each feature's mean error beside its stated 95 % bound, on log axes)
    /// and, per ε, the windows the budget released and refused.
    static func privacySection(_ points: [AccuracyPoint], windows: [FeatureWindowReport]) -> String {
        var html = "<h2>Differential privacy: error against its stated 95 % bound, by ε per window</h2>\n"
        let colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7"]
        let features = Array(Set(points.map(\.feature))).sorted()
        let series = features.enumerated().map { i, feature in
            (feature, points.filter { $0.feature == feature }.map { ($0.windowEpsilon, $0.meanAbsoluteError, $0.meanBound) }, colours[i % colours.count])
        }
        html += logLines(series)
        html += "<table><tr><th>ε per window</th><th>feature</th><th>mean |error|</th><th>mean bound</th><th>inside bound</th><th>windows released / refused</th></tr>\n"
        for p in points {
            html += "<tr><td>\(short(p.windowEpsilon))</td><td>\(escape(p.feature))</td><td>\(short(p.meanAbsoluteError))</td><td>\(short(p.meanBound))</td><td>\(fixed(p.coverage * 100, 1)) %</td><td>\(p.windowsReleased) / \(p.windowsRefused)</td></tr>\n"
        }
        html += "</table>\n<h2>Privacy budget: windows released and refused, by ε per window</h2>\n"
        let runs = Array(Set(points.map(\.windowEpsilon))).sorted()
        html += groupedBars(labels: runs.map { "ε \(short($0))" }, series: [
            ("released", runs.map { e in Double(points.first { $0.windowEpsilon == e }?.windowsReleased ?? 0) }, "#4e79a7"),
            ("refused by the budget", runs.map { e in Double(points.first { $0.windowEpsilon == e }?.windowsRefused ?? 0) }, "#e15759"),
        ], unit: "")
        return html
    }

    /// Lines on log–log axes: for each series, the mean error (solid, dots) and the stated bound
    /// (dashed), with ticks at powers of ten.
    static func logLines(_ series: [(String, [(x: Double, error: Double, bound: Double)], String)]) -> String {
        let width = 720.0, height = 300.0, left = 70.0, bottom = 40.0, top = 15.0, right = 150.0
        let xs = series.flatMap { $0.1.map(\.x) }.filter { $0 > 0 }
        let ys = series.flatMap { $0.1.flatMap { [$0.error, $0.bound] } }.filter { $0 > 0 }
        guard let xMin = xs.min(), let xMax = xs.max(), let yMin = ys.min(), let yMax = ys.max() else { return "<p>Nothing to plot.</p>\n" }
        let lx0 = floor(log10(xMin)), lx1 = max(ceil(log10(xMax)), lx0 + 1)
        let ly0 = floor(log10(yMin)), ly1 = max(ceil(log10(yMax)), ly0 + 1)
        func px(_ x: Double) -> Double { left + (width - left - right) * (log10(x) - lx0) / (lx1 - lx0) }
        func py(_ y: Double) -> Double { height - bottom - (height - bottom - top) * (log10(max(y, yMin)) - ly0) / (ly1 - ly0) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\">\n"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>\n"
        for e in Int(lx0)...Int(lx1) {
            let x = px(pow(10, Double(e)))
            svg += "<text x=\"\(fixed(x, 1))\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(short(pow(10, Double(e))))</text>\n"
        }
        for e in Int(ly0)...Int(ly1) {
            let y = py(pow(10, Double(e)))
            svg += "<text x=\"\(left - 6)\" y=\"\(fixed(y + 4, 1))\" text-anchor=\"end\">\(short(pow(10, Double(e))))</text>\n"
        }
        svg += "<text x=\"\(fixed((left + width - right) / 2, 1))\" y=\"\(height - 6)\" text-anchor=\"middle\">ε per window</text>\n"
        for (i, (name, points, colour)) in series.enumerated() {
            let sorted = points.sorted { $0.x < $1.x }
            let error = sorted.map { "\(fixed(px($0.x), 1)),\(fixed(py($0.error), 1))" }.joined(separator: " ")
            let bound = sorted.map { "\(fixed(px($0.x), 1)),\(fixed(py($0.bound), 1))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" points=\"\(error)\"/>\n"
            svg += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" stroke-dasharray=\"5,4\" points=\"\(bound)\"/>\n"
            for p in sorted {
                svg += "<circle cx=\"\(fixed(px(p.x), 1))\" cy=\"\(fixed(py(p.error), 1))\" r=\"3\" fill=\"\(colour)\"><title>\(escape(name)) ε \(short(p.x)): error \(short(p.error)), bound \(short(p.bound))</title></circle>\n"
            }
            let ly = top + 14 + Double(i) * 16
            svg += "<line x1=\"\(width - right + 10)\" y1=\"\(ly - 4)\" x2=\"\(width - right + 30)\" y2=\"\(ly - 4)\" stroke=\"\(colour)\" stroke-width=\"2\"/><text x=\"\(width - right + 34)\" y=\"\(ly)\">\(escape(name))</text>\n"
        }
        let ly = top + 14 + Double(series.count) * 16 + 6
        svg += "<text x=\"\(width - right + 10)\" y=\"\(ly)\">solid: mean |error|</text><text x=\"\(width - right + 10)\" y=\"\(ly + 14)\">dashed: stated bound</text>\n"
        return svg + "</svg>\n"
    }
}
