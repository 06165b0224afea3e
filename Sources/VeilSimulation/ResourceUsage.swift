import Foundation

/// Process resource figures read from the kernel.
public enum ResourceUsage {
    /// Peak resident set size (VmHWM) in bytes, or 0 where /proc is unavailable.
    public static func peakResidentBytes() -> Int { statusBytes("VmHWM:") }

    /// CPU seconds the calling thread has run (`CLOCK_THREAD_CPUTIME_ID`).
    ///
    /// A simulated device has a processor of its own, so its compute is measured in the CPU time
    /// of the thread that does its work, not in wall time: wall time would also charge it for
    /// every moment another thread or process held the core (the rest of a test run, say).
    public static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Resident set size now (VmRSS) in bytes, or 0 where /proc is unavailable.
    public static func residentBytes() -> Int { statusBytes("VmRSS:") }

    private static func statusBytes(_ field: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            let digits = line.filter(\.isNumber)
            return (Int(digits) ?? 0) * 1024
        }
        return 0
    }
}
