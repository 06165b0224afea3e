public import Foundation
import NIOSSL
import PostgresNIO

/// A PostgreSQL store's address, parsed from
/// `postgres://user[:password]@host:port/database?sslmode=…&sslrootcert=…&passwordfile=…`.
/// Its description never shows the password.
///
/// `sslmode` is `verify-full` by default: TLS, a certificate chaining to `sslrootcert` (a PEM CA
/// file; the system's roots without it) and naming the host. `verify-ca` skips the name check,
/// `require` encrypts without verifying anything, and `disable` is plaintext, for loopback only.
/// `prefer` is refused: it falls back to plaintext without saying so. The password comes from the
/// URL, else from the file `passwordfile` names (which must not be readable by group or others),
/// else from `VEIL_DATABASE_PASSWORD`, so that it need not appear on a command line.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    /// How the connection is protected.
    public enum TLSMode: String, Sendable, Equatable {
        /// No TLS (loopback only).
        case disable
        /// TLS without verifying the server.
        case require
        /// TLS with a certificate that chains to the trusted roots.
        case verifyCA = "verify-ca"
        /// TLS with a certificate that chains to the trusted roots and names the host.
        case verifyFull = "verify-full"
    }

    /// Server host.
    public var host: String
    /// Server port (5432 by default).
    public var port: Int
    /// Role to log in as.
    public var username: String
    /// Password from the URL, if it has one (see ``resolvedPassword(environment:)``).
    public var password: String?
    /// Database name (the user name by default).
    public var database: String?
    /// How the connection is protected.
    public var tlsMode: TLSMode
    /// The PEM file of CA certificates to trust for `verify-ca` and `verify-full`.
    public var caCertificatePath: String?
    /// A file holding the password.
    public var passwordFile: String?

    /// Whether the connection uses TLS.
    public var requireTLS: Bool { tlsMode != .disable }

    /// Parses `text`; nil when it is not a PostgreSQL URL at all, an error when it is one but malformed.
    public init?(parsing text: String) throws(DatabaseURLError) {
        guard text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") else { return nil }
        guard let url = URLComponents(string: text), let host = url.host, !host.isEmpty else {
            throw DatabaseURLError("a PostgreSQL URL must look like postgres://user:password@host:5432/database")
        }
        guard let user = url.user, !user.isEmpty else { throw DatabaseURLError("the PostgreSQL URL names no user") }
        self.host = host
        port = url.port ?? 5432
        username = user.removingPercentEncoding ?? user
        password = url.password.map { $0.removingPercentEncoding ?? $0 }
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        database = path.isEmpty ? nil : path
        let query = url.queryItems ?? []
        for item in query where !["sslmode", "sslrootcert", "passwordfile"].contains(item.name) {
            throw DatabaseURLError("unknown PostgreSQL URL parameter \"\(item.name)\" (known: sslmode, sslrootcert, passwordfile)")
        }
        let mode = query.first { $0.name == "sslmode" }?.value ?? TLSMode.verifyFull.rawValue
        if mode == "prefer" {
            throw DatabaseURLError("sslmode=prefer falls back to plaintext without saying so; use verify-full (the default), verify-ca or require, or disable on loopback")
        }
        guard let tls = TLSMode(rawValue: mode) else {
            throw DatabaseURLError("sslmode must be disable, require, verify-ca or verify-full, got \"\(mode)\"")
        }
        tlsMode = tls
        caCertificatePath = query.first { $0.name == "sslrootcert" }?.value
        if let caCertificatePath, !FileManager.default.isReadableFile(atPath: caCertificatePath) {
            throw DatabaseURLError("sslrootcert \(caCertificatePath) cannot be read")
        }
        passwordFile = query.first { $0.name == "passwordfile" }?.value
    }

    /// The password to log in with: the URL's, else the first line of ``passwordFile`` (refused
    /// if group or others can read it), else `VEIL_DATABASE_PASSWORD` from `environment`.
    public func resolvedPassword(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        if let password { return password }
        if let passwordFile {
            let attributes = try FileManager.default.attributesOfItem(atPath: passwordFile)
            if let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value, mode & 0o077 != 0 {
                throw AggregatorStoreError("the PostgreSQL password file \(passwordFile) is readable by group or others (mode \(String(mode, radix: 8))); chmod 600 it")
            }
            let text = try String(contentsOfFile: passwordFile, encoding: .utf8)
            return text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        }
        return environment["VEIL_DATABASE_PASSWORD"]
    }

    /// The TLS setting for postgres-nio.
    func tls() -> PostgresClient.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caCertificatePath { configuration.trustRoots = .file(caCertificatePath) }
        switch tlsMode {
        case .disable: return .disable
        case .require: configuration.certificateVerification = .none
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        return .require(configuration)
    }

    /// `postgres://user@host:port/database`, without the password.
    public var description: String {
        "postgres://\(username)@\(host):\(port)/\(database ?? username)"
    }
}

/// Why a `postgres://` URL cannot be used (the configuration's `database` setting).
public struct DatabaseURLError: Error, Equatable, CustomStringConvertible {
    /// What is wrong with it.
    public let reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
    /// The reason.
    public var description: String { reason }
}
