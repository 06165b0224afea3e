/// The page `veil-sim plan --report-html` writes.
extension HTMLReport {
    /// The page for `plan`, with the run that checked it when there was one (`--verify`).
    public static func page(_ plan: RoundPlan, verification: SimulationReport?) -> String {
        let names = plan.phases.map(\.phase)
        var summary: [(String, String)] = [
            ("Fleet", "\(plan.devices) devices × \(plan.dimension) elements of \(plan.bitWidth) bits, \(fixed(100 * plan.dropout, 1)) % dropout, \(plan.threatModel), \(plan.network) network"),
            ("Protocol", "\(plan.protocol): k = \(plan.neighbours), t = \(plan.threshold) (security 2^-\(Int(plan.securityBits)), failure 2^-\(Int(plan.correctnessBits)))"),
            ("Bit width", "keep every element below \(Int(plan.largestElementValue)) so that the sum of \(plan.devices) cannot wrap"),
            ("Bytes up / down per device", "\(Int(plan.bytesUpPerDevice)) / \(Int(plan.bytesDownPerDevice))"),
            ("Compute at the limit", "device \(readableSeconds(plan.deviceSeconds)) on one core here (times the profile's compute factor), server \(readableSeconds(plan.serverSeconds))"),
            ("Round", "\(readableSeconds(plan.roundSeconds)) with the suggested deadlines; set rounds.phaseTimeoutSeconds = \(short(plan.phaseTimeoutSeconds))"),
        ]
        if let v = verification {
            summary.append(("Verified", v.correct ? "correct: \(v.survivors) of \(v.devices) counted; the round took \(readableSeconds(v.simulated?.roundSeconds ?? 0)) in simulated time" : "NOT correct: \(v.outcome)"))
        }
        var html = head(title: "Veil plan: \(plan.devices) devices on \(plan.network)") + "<table>\n"
        for (k, v) in summary { html += "<tr><th>\(escape(k))</th><td>\(escape(v))</td></tr>\n" }
        html += "</table>\n"
        html += timeline(plan.timing, heading: "The round as planned on the \(plan.network) network")
        if let simulated = verification?.simulated {
            html += timeline(simulated, heading: "The same fleet run in simulated time with these deadlines (--verify)")
        }
        html += "<h2>Device compute per phase at the limit (milliseconds on one core here)</h2>\n"
        html += groupedBars(labels: names, series: [("device", plan.phases.map { $0.deviceSeconds * 1000 }, "#4e79a7")], unit: "ms")
        html += "<h2>Server compute per phase at the limit (seconds)</h2>\n"
        html += groupedBars(labels: names, series: [("server", plan.phases.map(\.serverSeconds), "#f28e2b")], unit: "s")
        html += "<h2>Bytes per device per phase</h2>\n"
        html += groupedBars(labels: names, series: [("up", plan.phases.map(\.bytesUp), "#59a14f"), ("down", plan.phases.map(\.bytesDown), "#e15759")], unit: "B")
        return html + "</body></html>\n"
    }
}
