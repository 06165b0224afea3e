#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a report file could not be written.
struct FileWriteError: Error, CustomStringConvertible {
    let path: String
    let code: Int32
    var description: String { "cannot write \(path) (errno \(code))" }
}

extension String {
    /// Writes the string's UTF-8 bytes to `path`, replacing the file.
    func write(toFile path: String) throws {
        guard let file = fopen(path, "w") else { throw FileWriteError(path: path, code: errno) }
        defer { fclose(file) }
        let bytes = Array(utf8)
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw FileWriteError(path: path, code: errno) }
    }
}
