import Crypto
public import Foundation
import SwiftASN1
import X509

/// Writes a throwaway certificate authority and a server certificate signed by it, for running
/// the aggregator locally with TLS (`veil-aggregator dev-certificates DIR`). Keys are P-256; the
/// server certificate names `localhost`, `127.0.0.1` and `::1` and is valid for 30 days. Never
/// use these in production: the CA key sits next to the certificates.
public enum DevelopmentCertificates {
    /// The files written into the directory.
    public struct Paths: Sendable, Equatable {
        /// The CA certificate devices pin (`ca.pem`).
        public let caCertificate: String
        /// The CA's private key (`ca-key.pem`, mode 0600).
        public let caPrivateKey: String
        /// The server certificate chain (`server.pem`).
        public let serverCertificate: String
        /// The server's private key (`server-key.pem`, mode 0600).
        public let serverPrivateKey: String
    }

    /// Creates `directory` if needed and writes the four PEM files, replacing older ones.
    @discardableResult
    public static func write(to directory: String, validity: TimeInterval = 30 * 86_400, now: Date = Date()) throws -> Paths {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("Veil development")
            CommonName("Veil development CA")
        }
        let notBefore = now.addingTimeInterval(-300)
        let notAfter = now.addingTimeInterval(validity)
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey))

        let serverKey = P256.Signing.PrivateKey()
        let serverName = try DistinguishedName {
            OrganizationName("Veil development")
            CommonName("localhost")
        }
        let server = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(serverKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: serverName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([
                    .dnsName("localhost"),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                    .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
                ])
            },
            issuerPrivateKey: .init(caKey))

        let url = URL(fileURLWithPath: directory)
        let paths = Paths(
            caCertificate: url.appendingPathComponent("ca.pem").path,
            caPrivateKey: url.appendingPathComponent("ca-key.pem").path,
            serverCertificate: url.appendingPathComponent("server.pem").path,
            serverPrivateKey: url.appendingPathComponent("server-key.pem").path)
        try writeFile(paths.caCertificate, try ca.serializeAsPEM().pemString + "\n", mode: 0o644)
        try writeFile(paths.caPrivateKey, caKey.pemRepresentation + "\n", mode: 0o600)
        try writeFile(paths.serverCertificate, try server.serializeAsPEM().pemString + "\n", mode: 0o644)
        try writeFile(paths.serverPrivateKey, serverKey.pemRepresentation + "\n", mode: 0o600)
        return paths
    }

    /// Writes `text` to a fresh file with `mode` from the start (never briefly world-readable).
    static func writeFile(_ path: String, _ text: String, mode: mode_t) throws {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path]) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }
}
