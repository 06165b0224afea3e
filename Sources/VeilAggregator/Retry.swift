/// Retry hints sent to devices.
enum Retry {
    /// `milliseconds` spread uniformly over ±25%, so that devices told to come back at the same
    /// moment (a shutdown, a full window, no round) do not all return at once.
    static func jittered(milliseconds: UInt32) -> UInt32 {
        let spread = milliseconds / 4
        guard spread > 0 else { return milliseconds }
        return milliseconds - spread + UInt32.random(in: 0...(2 * spread))
    }
}
