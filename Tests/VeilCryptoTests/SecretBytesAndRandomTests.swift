import Testing
@testable import VeilCrypto

@Suite struct SecretBytesAndRandomTests {
    @Test func secretsNeverPrintTheirContent() throws {
        let secret = SecretBytes(copying: [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(secret.description == "SecretBytes(4 bytes, redacted)")
        #expect(!"\(secret)".lowercased().contains("deadbeef"))
        #expect(!String(reflecting: secret).lowercased().contains("dead"))
        var random = SeededRandomSource(seed: 1, label: "print")
        let x = X25519.PrivateKey(using: &random)
        #expect(!"\(x)".contains(Hex.encode(x.rawRepresentation.unprotectedCopy())))
        let e = Ed25519.PrivateKey(using: &random)
        #expect(!"\(e)".contains(Hex.encode(e.seed.unprotectedCopy().prefix(8))))
        #expect("\(try x.sharedSecret(with: X25519.PrivateKey(using: &random).publicKey))" == "X25519.SharedSecret(redacted)")
        #expect("\(XChaCha20Poly1305.Key(using: &random))" == "XChaCha20Poly1305.Key(redacted)")
    }

    @Test func equalityIsByContentAndLength() {
        #expect(SecretBytes(copying: [1, 2, 3]) == SecretBytes(copying: [1, 2, 3]))
        #expect(SecretBytes(copying: [1, 2, 3]) != SecretBytes(copying: [1, 2, 4]))
        #expect(SecretBytes(copying: [1, 2, 3]) != SecretBytes(copying: [1, 2]))
        #expect(SecretBytes(copying: []) == SecretBytes(copying: []))
        #expect(SecretBytes(copying: [9, 9]).constantTimeEquals([9, 9]))
        #expect(!SecretBytes(copying: [9, 9]).constantTimeEquals([9, 8]))
        #expect(!SecretBytes(copying: [9, 9]).constantTimeEquals([9]))
    }

    @Test func seededSourcesAreReproducibleAndSeparated() throws {
        var a = SeededRandomSource(seed: 42, label: "device-1")
        var b = SeededRandomSource(seed: 42, label: "device-1")
        var c = SeededRandomSource(seed: 42, label: "device-2")
        let first = a.bytes(count: 100)
        #expect(first == b.bytes(count: 100))
        #expect(first != c.bytes(count: 100))
        #expect(a.bytes(count: 100) != first)
        #expect(throws: CryptoError.invalidLength(what: "SeededRandomSource seed", expected: 32, actual: 5)) {
            try SeededRandomSource(seed: SecretBytes(copying: [1, 2, 3, 4, 5]))
        }
        var system = SystemRandomSource()
        #expect(system.bytes(count: 32) != system.bytes(count: 32))
        for _ in 0..<1000 { #expect(a.nextUInt64(below: 7) < 7) }
        let unit = a.nextUnitDouble()
        #expect(unit >= 0 && unit < 1)
    }

    @Test func hexRoundTripAndRejection() {
        #expect(Hex.encode([0x00, 0xAB, 0xFF]) == "00abff")
        #expect(Hex.decode("00ABff") == [0x00, 0xAB, 0xFF])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test func keyTypesCheckLengthsAndWeakPoints() throws {
        #expect(throws: CryptoError.invalidLength(what: "X25519 public key", expected: 32, actual: 31)) { try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 1, count: 31)) }
        #expect(throws: CryptoError.invalidLength(what: "X25519 private key", expected: 32, actual: 1)) { try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: [1])) }
        #expect(throws: CryptoError.invalidLength(what: "Ed25519 public key", expected: 32, actual: 0)) { try Ed25519.PublicKey(rawRepresentation: []) }
        #expect(throws: CryptoError.invalidLength(what: "Ed25519 signature", expected: 64, actual: 63)) { try Ed25519.Signature(rawRepresentation: [UInt8](repeating: 0, count: 63)) }
        #expect(throws: CryptoError.invalidLength(what: "Ed25519 seed", expected: 32, actual: 64)) { try Ed25519.PrivateKey(seed: SecretBytes(copying: [UInt8](repeating: 0, count: 64))) }
        #expect(throws: CryptoError.invalidLength(what: "XChaCha20-Poly1305 key", expected: 32, actual: 16)) { try XChaCha20Poly1305.Key(SecretBytes(copying: [UInt8](repeating: 0, count: 16))) }
        #expect(throws: CryptoError.invalidLength(what: "XChaCha20-Poly1305 nonce", expected: 24, actual: 12)) { try XChaCha20Poly1305.Nonce(bytes: [UInt8](repeating: 0, count: 12)) }
        var random = SeededRandomSource(seed: 2, label: "weak")
        let key = X25519.PrivateKey(using: &random)
        // Small-order points: zero and the point of order 8 from RFC 7748's reference list.
        let zero = try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 32))
        #expect(throws: CryptoError.weakPublicKey) { try key.sharedSecret(with: zero) }
        let order8 = try X25519.PublicKey(rawRepresentation: hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"))
        #expect(throws: CryptoError.weakPublicKey) { try key.sharedSecret(with: order8) }
        // Every error reads well.
        #expect(CryptoError.libraryFailure("EVP_EncryptInit_ex").description.contains("EVP_EncryptInit_ex"))
        #expect(CryptoError.weakPublicKey.description.contains("small order"))
    }
}
