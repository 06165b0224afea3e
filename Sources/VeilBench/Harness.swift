/// Times a closure: warms up, then takes the median of `repetitions` timed runs.
struct Harness {
    let repetitions: Int

    /// Median seconds of one call of `body` over `repetitions` runs of `iterations` calls each.
    func median(iterations: Int, _ body: () -> Void) -> Double {
        for _ in 0..<max(1, iterations / 10) { body() }
        var samples = [Double]()
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            for _ in 0..<iterations { body() }
            let elapsed = ContinuousClock.now - start
            samples.append(elapsed.seconds / Double(iterations))
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}

extension Duration {
    /// The duration in seconds as a double.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}

/// One measured figure.
struct Figure {
    let name: String
    let value: Double
    let unit: String
}

/// Formats `value` with `decimals` digits after the point.
func formatted(_ value: Double, _ decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = "\(rounded)"
    if let dot = text.firstIndex(of: ".") {
        let fraction = text[text.index(after: dot)...].count
        if fraction < decimals { text += String(repeating: "0", count: decimals - fraction) }
    } else if decimals > 0 {
        text += "." + String(repeating: "0", count: decimals)
    }
    return text
}
