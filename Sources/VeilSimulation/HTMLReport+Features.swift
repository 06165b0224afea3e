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
        html += "<h2>Round wall time per window (seconds)</h2>\n"
        let attempts = r.windows.map(\.rounds.count).max() ?? 0
        html += groupedBars(labels: labels, series: (0..<attempts).map { a in
            ("round \(a + 1)", r.windows.map { w in a < w.rounds.count ? w.rounds[a].seconds : 0 }, a == 0 ? "#f28e2b" : "#59a14f")
        }, unit: "s")
        for (w, label) in zip(r.windows, labels) {
            html += "<h2>Window \(escape(label)): \(w.contributors) counted, \(w.released ? "released" : "below the release minimum")</h2>\n<table>\n"
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
}
