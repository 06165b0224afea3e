import Synchronization

/// A token bucket: `rate` requests per second on average, bursts of up to `burst`. Enrolment is
/// unauthenticated, so it is limited before it reaches the store (SPEC.md §11.2).
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var refilled: ContinuousClock.Instant
    }
    private let rate: Double
    private let burst: Double
    private let bucket: Mutex<Bucket>

    init(perSecond rate: Double, burst: Int) {
        self.rate = rate
        self.burst = Double(burst)
        bucket = Mutex(Bucket(tokens: Double(burst), refilled: .now))
    }

    /// Takes one token if there is one; false when the caller is over the limit.
    func admit(now: ContinuousClock.Instant = .now) -> Bool {
        bucket.withLock { b in
            let elapsed = now - b.refilled
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            b.tokens = min(burst, b.tokens + max(0, seconds) * rate)
            b.refilled = now
            guard b.tokens >= 1 else { return false }
            b.tokens -= 1
            return true
        }
    }
}
