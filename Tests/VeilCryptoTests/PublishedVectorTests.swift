import Testing
@testable import VeilCrypto

func hex(_ s: String) -> [UInt8] { Hex.decode(String(s.filter { !$0.isWhitespace }))! }

/// Known-answer vectors from the RFCs, the XChaCha20 draft and NIST SP 800-38A.
@Suite struct PublishedVectorTests {
    // RFC 7748 §5.2
    @Test(arguments: [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ])
    func x25519ScalarMultiplication(scalar: String, u: String, output: String) throws {
        let key = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: hex(scalar)))
        let shared = try key.sharedSecret(with: X25519.PublicKey(rawRepresentation: hex(u)))
        #expect(shared.bytes.unprotectedCopy() == hex(output))
    }

    // RFC 7748 §6.1
    @Test func x25519DiffieHellman() throws {
        let alice = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")))
        let bob = try X25519.PrivateKey(rawRepresentation: SecretBytes(copying: hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))
        #expect(alice.publicKey.rawRepresentation == hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(bob.publicKey.rawRepresentation == hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let expected = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        #expect(try alice.sharedSecret(with: bob.publicKey).bytes.unprotectedCopy() == expected)
        #expect(try bob.sharedSecret(with: alice.publicKey).bytes.unprotectedCopy() == expected)
    }

    // RFC 8032 §7.1, TEST 1 to 3
    @Test(arguments: [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ])
    func ed25519(seed: String, publicKey: String, message: String, signature: String) throws {
        let key = try Ed25519.PrivateKey(seed: SecretBytes(copying: hex(seed)))
        #expect(key.publicKey.rawRepresentation == hex(publicKey))
        let sig = key.signature(for: hex(message))
        #expect(sig.rawRepresentation == hex(signature))
        #expect(key.publicKey.isValidSignature(sig, for: hex(message)))
        var flipped = sig.rawRepresentation
        flipped[5] ^= 0x01
        #expect(!key.publicKey.isValidSignature(try Ed25519.Signature(rawRepresentation: flipped), for: hex(message)))
        #expect(!key.publicKey.isValidSignature(sig, for: hex(message) + [0]))
    }

    // draft-irtf-cfrg-xchacha-03 §A.3.1
    @Test func xchacha20Poly1305() throws {
        let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        let key = try XChaCha20Poly1305.Key(SecretBytes(copying: hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")))
        let nonce = try XChaCha20Poly1305.Nonce(bytes: hex("404142434445464748494a4b4c4d4e4f5051525354555657"))
        let ad = hex("50515253c0c1c2c3c4c5c6c7")
        let expected = hex("""
            bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
            731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
            2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
            21f9664c97637da9768812f615c68b13b52e\
            c0875924c1c7987947deafd8780acf49
            """)
        let sealed = XChaCha20Poly1305.seal(SecretBytes(copying: plaintext), key: key, nonce: nonce, associatedData: ad)
        #expect(sealed == expected)
        #expect(try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: ad).unprotectedCopy() == plaintext)

        var tampered = sealed
        tampered[3] ^= 0x40
        #expect(throws: CryptoError.authenticationFailed) { try XChaCha20Poly1305.open(tampered, key: key, nonce: nonce, associatedData: ad) }
        #expect(throws: CryptoError.authenticationFailed) { try XChaCha20Poly1305.open(sealed, key: key, nonce: nonce, associatedData: ad + [1]) }
        var random = SeededRandomSource(seed: 1, label: "aead")
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.open(sealed, key: XChaCha20Poly1305.Key(using: &random), nonce: nonce, associatedData: ad)
        }
        #expect(throws: CryptoError.authenticationFailed) { try XChaCha20Poly1305.open(Array(sealed.prefix(15)), key: key, nonce: nonce, associatedData: ad) }
    }

    // NIST SP 800-38A F.5.1, CTR-AES128.Encrypt, through the generator's own cipher path.
    @Test func aes128CTR() {
        let plaintext = hex("""
            6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
            30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710
            """)
        let expected = hex("""
            874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
            5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee
            """)
        var keystream = [UInt8](repeating: 0, count: 64)
        keystream.withUnsafeMutableBytes {
            MaskGenerator.rawKeystream(algorithm: .aes128CTR, key: hex("2b7e151628aed2a6abf7158809cf4f3c"), iv: hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"), into: $0)
        }
        #expect(zip(plaintext, keystream).map { $0 ^ $1 } == expected)
    }

    // The original ChaCha20 (64-bit nonce): all-zero key and nonce, and key ending in 1.
    @Test func chacha20() {
        func keystream(key: [UInt8]) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 64)
            out.withUnsafeMutableBytes { MaskGenerator.rawKeystream(algorithm: .chacha20, key: key, iv: [UInt8](repeating: 0, count: 8), into: $0) }
            return out
        }
        #expect(keystream(key: [UInt8](repeating: 0, count: 32)) == hex("""
            76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7\
            da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586
            """))
        #expect(keystream(key: [UInt8](repeating: 0, count: 31) + [1]) == hex("""
            4540f05a9f1fb296d7736e7b208e3c96eb4fe1834688d2604f450952ed432d41\
            bbe2a0b6ea7566d2a5d1e7e20d42af2c53d792b1c43fea817e9ad275ae546963
            """))
    }

    // BLAKE2b-512 of the empty string, through the unlabelled core.
    @Test func blake2bOfEmptyInput() {
        var out = [UInt8](repeating: 0, count: 64)
        out.withUnsafeMutableBytes { BLAKE2b.compute(into: $0, input: [], key: nil) }
        #expect(out == hex("""
            786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419\
            d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce
            """))
    }
}
