import Testing
import VeilCrypto

/// X25519 keys of small order (issue 12, finding 4): the aggregator refuses them at AdvertiseKeys.
@Suite struct SmallOrderKeyTests {
    static func key(_ hex: String) throws -> X25519.PublicKey {
        try X25519.PublicKey(rawRepresentation: try #require(Hex.decode(hex)))
    }

    /// The u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519 and its twist, and
    /// their non-canonical encodings (u + p), with the ignored top bit set and clear. These are
    /// public constants (for example the list libsodium refuses in crypto_scalarmult).
    static let smallOrder = [
        "0000000000000000000000000000000000000000000000000000000000000000", // 0 (order 4)
        "0100000000000000000000000000000000000000000000000000000000000000", // 1 (order 1)
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p - 1 (order 2)
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p (= 0)
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p + 1 (= 1)
        "0000000000000000000000000000000000000000000000000000000000000080", // 0 with the top bit set
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", // order 8, top bit set
    ]

    @Test func smallOrderKeysAreFoundAndKeyAgreementWithThemFails() throws {
        var random = SystemRandomSource()
        let mine = X25519.PrivateKey(using: &random)
        for hex in Self.smallOrder {
            let key = try Self.key(hex)
            #expect(key.hasSmallOrder(), "\(hex) has small order")
            #expect(throws: CryptoError.self) { try mine.sharedSecret(with: key) }
        }
    }

    @Test func ordinaryKeysDoNotHaveSmallOrder() {
        var random = SystemRandomSource()
        let probe = X25519.PrivateKey(using: &random)
        for _ in 0..<200 {
            let key = X25519.PrivateKey(using: &random).publicKey
            #expect(!key.hasSmallOrder())
            // The list agrees with the definition: key agreement with the key succeeds.
            #expect((try? probe.sharedSecret(with: key)) != nil)
        }
        // A random 32-byte string (on the curve or its twist) has small order with negligible probability.
        for _ in 0..<200 {
            let key = try! X25519.PublicKey(rawRepresentation: random.bytes(count: 32))
            #expect(!key.hasSmallOrder())
        }
    }
}
