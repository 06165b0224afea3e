import Foundation

/// Process resource figures read from the kernel.
public enum ResourceUsage {
    /// Peak resident set size (VmHWM) in bytes, or 0 where /proc is unavailable.
    public static func peakResidentBytes() -> Int { statusBytes("VmHWM:") }

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
