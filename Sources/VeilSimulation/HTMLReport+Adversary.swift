import Foundation

extension HTMLReport {
    /// The page for a malicious-aggregator run: one row per strategy (refused by devices, input
    /// recovered), a chart of targeted and refusing devices, then every sub-round with its
    /// refusals and the exposure oracle's findings.
    public static func page(_ r: AdversaryReport) -> String {
        var html = head(title: "Veil malicious aggregator: \(r.scenario)") + """
            <table>
            <tr><th>Result</th><td class="\(r.defended ? "ok" : "bad")">\(r.defended ? "defended: every strategy was stopped and no honest input was recovered" : "NOT defended")</td></tr>
            <tr><th>Cohort</th><td>\(r.devices) devices × \(r.dimension) elements of \(r.bitWidth) bits, k \(r.neighbors) / t \(r.threshold), \(r.colluders) colluding devices</td></tr>
            <tr><th>Device policy</th><td>\(escape(r.policy))</td></tr>
            <tr><th>Total wall time / peak RSS</th><td>\(fixed(r.totalSeconds, 2)) s / \(fixed(Double(r.peakRSSBytes) / 1_048_576, 1)) MiB</td></tr>
            </table>
            <h2>Strategies</h2>
            <table>
            <tr><th>strategy</th><th>refused by devices</th><th>input recovered</th><th>defended</th><th>verdict</th></tr>

            """
        for s in r.strategies {
            html += "<tr><td>\(escape(s.strategy))</td><td>\(s.refusedByDevices ? "yes (\(s.refusals))" : "no")</td>"
                + "<td class=\"\(s.inputRecovered ? "bad" : "ok")\">\(s.inputRecovered ? "YES" : "no")</td>"
                + "<td class=\"\(s.defended ? "ok" : "bad")\">\(s.defended ? "yes" : "NO")</td><td>\(escape(s.verdict))</td></tr>\n"
        }
        html += "</table>\n<h2>Targeted honest devices and refusals per strategy</h2>\n"
        html += groupedBars(labels: r.strategies.map(\.strategy), series: [
            ("targeted", r.strategies.map { Double($0.subRounds.reduce(0) { $0 + $1.targeted }) }, "#4e79a7"),
            ("refused", r.strategies.map { Double($0.refusals) }, "#59a14f"),
            ("inputs recovered", r.strategies.map { Double($0.subRounds.reduce(0) { $0 + $1.recovered.count }) }, "#e15759"),
        ], unit: "")
        for s in r.strategies {
            html += "<h2>\(escape(s.strategy)): \(escape(s.summary))</h2>\n"
            if let p = s.placement {
                html += "<p>Placement: an honest device expects \(fixed(p.expectedColludingNeighbours, 2)) colluding neighbours on a uniform ring; "
                    + "exposure needs 2t − k = \(p.neededForExposure). Without grinding the best had \(p.ungroundBest); the best of \(p.secretCandidates) "
                    + "ground secrets \(p.secretBest) (refused by the devices); the best of \(p.dropCandidates) drop sets of up to \(p.dropBudget) devices "
                    + "\(p.dropBest) (probability 2^\(fixed(p.dropBestLog2Probability, 1)) per device on one ring).</p>\n"
            }
            html += "<table>\n<tr><th>sub-round</th><th>outcome</th><th>targeted / refused</th><th>honest refusals</th><th>exposure oracle</th></tr>\n"
            for sub in s.subRounds {
                let refusals = sub.refusals.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; ")
                let removed = sub.removedByServer.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; ")
                var oracle = "\(sub.recovered.count) of \(sub.devicesChecked) honest inputs recovered"
                for v in sub.victims { oracle += "<br>victim \(v.device): <b>\(v.verdict)</b> (\(escape(v.detail)))" }
                html += "<tr><td>\(escape(sub.name))<br><small>\(escape(sub.configuration))</small></td><td>\(escape(sub.outcome))"
                    + (removed.isEmpty ? "" : "<br>removed by the server: \(escape(removed))") + "</td>"
                    + "<td>\(sub.targeted) / \(sub.targetedRefused)</td><td>\(escape(refusals))</td>"
                    + "<td class=\"\(sub.recovered.isEmpty ? "ok" : "bad")\">\(oracle)</td></tr>\n"
                for note in sub.notes { html += "<tr><td></td><td colspan=\"4\"><small>\(escape(note))</small></td></tr>\n" }
            }
            html += "</table>\n<p>Verdict: \(escape(s.verdict))</p>\n"
        }
        html += "</body></html>\n"
        return html
    }
}
