import Testing
import VeilCrypto
import VeilProtocol

/// The fixed-size values held inline instead of in arrays (public keys, sealed share pairs, share
/// digests): every way in gives the same bytes back, in order, and a wrong length never gets in.
@Suite struct InlineBytesTests {
    @Test func sealedPairsKeepTheirNinetySixBytesInOrder() throws {
        var random = SeededRandomSource(seed: 11, label: "inline-bytes")
        #expect(MemoryLayout<SealedShares.Ciphertext>.size == SealedShares.ciphertextByteCount)
        for _ in 0..<50 {
            let bytes = random.bytes(count: SealedShares.ciphertextByteCount)
            let fromArray = try #require(SealedShares.Ciphertext(bytes))
            let fromBuffer = try #require(bytes.withUnsafeBytes { SealedShares.Ciphertext($0) })
            #expect(fromArray.bytes == bytes)
            #expect(fromArray == fromBuffer)
            #expect(fromArray.withUnsafeBytes { Array($0) } == bytes)
            var changed = bytes
            changed[Int(random.bytes(count: 1)[0]) % bytes.count] ^= 1
            #expect(SealedShares.Ciphertext(changed) != fromArray)
        }
        for count in [0, 1, 95, 97, 192] {
            let bytes = [UInt8](repeating: 7, count: count)
            #expect(SealedShares.Ciphertext(bytes) == nil)
            #expect(bytes.withUnsafeBytes { SealedShares.Ciphertext($0) } == nil)
        }
    }

    @Test func publicKeysKeepTheirThirtyTwoBytesInOrder() throws {
        var random = SeededRandomSource(seed: 12, label: "inline-bytes")
        for _ in 0..<50 {
            let key = X25519.PrivateKey(using: &random).publicKey
            let bytes = key.rawRepresentation
            #expect(bytes.count == X25519.keyByteCount)
            #expect(key.withUnsafeBytes { Array($0) } == bytes)
            #expect(try X25519.PublicKey(rawRepresentation: bytes[...]) == key)
            var changed = bytes
            changed[31] ^= 0x40
            #expect(try X25519.PublicKey(rawRepresentation: changed) != key)
        }
        for count in [0, 31, 33, 64] {
            #expect(throws: CryptoError.self) { try X25519.PublicKey(rawRepresentation: [UInt8](repeating: 9, count: count)) }
        }
    }

    @Test func digestsReadFromABufferEqualThoseReadFromAnArray() throws {
        var random = SeededRandomSource(seed: 13, label: "inline-bytes")
        for _ in 0..<50 {
            let bytes = random.bytes(count: ShareDigest.byteCount)
            let fromBuffer = try #require(bytes.withUnsafeBytes { ShareDigest($0) })
            #expect(fromBuffer == ShareDigest(bytes))
            #expect(fromBuffer.bytes == bytes)
        }
        #expect([UInt8](repeating: 1, count: 15).withUnsafeBytes { ShareDigest($0) } == nil)
    }
}
