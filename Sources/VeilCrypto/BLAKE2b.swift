import CSodium

/// BLAKE2b hashing and key derivation (libsodium's `crypto_generichash`), always with an explicit
/// domain-separation label.
///
/// Every input is encoded as `len(label) (1 byte) || label (UTF-8) || message`, so two different
/// (label, message) pairs never hash the same input. Labels are short ASCII strings of at most
/// 255 bytes, by convention `veil/v1/<purpose>`.
public enum BLAKE2b {
    /// Unkeyed BLAKE2b of `label` and `message`, `outputByteCount` in 16...64.
    public static func hash(label: String, message: [UInt8], outputByteCount: Int = 32) -> [UInt8] {
        precondition((16...64).contains(outputByteCount), "BLAKE2b output must be 16...64 bytes")
        SodiumRuntime.ensureInitialized()
        var out = [UInt8](repeating: 0, count: outputByteCount)
        out.withUnsafeMutableBytes { compute(into: $0, input: encode(label: label, message: message), key: nil) }
        return out
    }

    /// Unkeyed BLAKE2b of `label` and the bytes `message` points to, `outputByteCount` in 16...64;
    /// the same output as the array form of `hash(label:message:outputByteCount:)` for the same bytes.
    ///
    /// For secret messages: the bytes are fed to the hash where they lie (for example inside a
    /// ``SecretBytes`` buffer, through ``SecretBytes/withUnsafeBytes(_:)``), with no intermediate
    /// copy, and the hash state that buffered them is zeroed before this returns.
    public static func hash(label: String, message: UnsafeRawBufferPointer, outputByteCount: Int = 32) -> [UInt8] {
        precondition((16...64).contains(outputByteCount), "BLAKE2b output must be 16...64 bytes")
        let labelBytes = validatedLabel(label)
        SodiumRuntime.ensureInitialized()
        // The state type is 64-byte aligned in C, so Swift sees it only as an opaque pointer.
        let stateSize = crypto_generichash_statebytes()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: stateSize, alignment: 64)
        defer {
            sodium_memzero(raw, stateSize)
            raw.deallocate()
        }
        let state = OpaquePointer(raw)
        var out = [UInt8](repeating: 0, count: outputByteCount)
        _ = crypto_generichash_init(state, nil, 0, outputByteCount)
        let prefix = [UInt8(labelBytes.count)] + labelBytes
        _ = prefix.withUnsafeBufferPointer { crypto_generichash_update(state, $0.baseAddress, UInt64($0.count)) }
        if let base = message.baseAddress, message.count > 0 {
            _ = crypto_generichash_update(state, base.assumingMemoryBound(to: UInt8.self), UInt64(message.count))
        }
        _ = out.withUnsafeMutableBufferPointer { crypto_generichash_final(state, $0.baseAddress!, outputByteCount) }
        return out
    }

    /// Unkeyed BLAKE2b of `encodedInput`, which the caller has already laid out as
    /// `len(label) || label || message`, into all of `out` (16...64 bytes). The same output as
    /// `hash(label:message:outputByteCount:)` with `outputByteCount = out.count`, with no copy of
    /// the input: for hot paths that assemble a short input on the stack.
    public static func hash(encodedInput: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition((16...64).contains(out.count), "BLAKE2b output must be 16...64 bytes")
        precondition(encodedInput.count > 1 && Int(encodedInput[0]) >= 1 && Int(encodedInput[0]) < encodedInput.count,
                     "the input must start with a label length and a label")
        SodiumRuntime.ensureInitialized()
        _ = crypto_generichash(
            out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count,
            encodedInput.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(encodedInput.count), nil, 0)
    }

    /// Raw BLAKE2b (`crypto_generichash`) of `input` into all of `out` (16...64 bytes), keyed when
    /// `key` is given (the streaming functions are called only by the pointer form of
    /// `hash(label:message:outputByteCount:)`).
    static func compute(into out: UnsafeMutableRawBufferPointer, input: [UInt8], key: UnsafeRawBufferPointer?) {
        SodiumRuntime.ensureInitialized()
        input.withUnsafeBytes { i in
            _ = crypto_generichash(
                out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count,
                i.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(input.count),
                key?.baseAddress?.assumingMemoryBound(to: UInt8.self), key?.count ?? 0)
        }
    }

    /// Encodes the hash input: one length byte, the label's UTF-8 bytes, then the message.
    static func encode(label: String, message: [UInt8]) -> [UInt8] {
        let labelBytes = validatedLabel(label)
        var input = [UInt8]()
        input.reserveCapacity(1 + labelBytes.count + message.count)
        input.append(UInt8(labelBytes.count))
        input.append(contentsOf: labelBytes)
        input.append(contentsOf: message)
        return input
    }

    /// The label's UTF-8 bytes, which must be 1...255 of them.
    static func validatedLabel(_ label: String) -> [UInt8] {
        let labelBytes = Array(label.utf8)
        precondition(!labelBytes.isEmpty && labelBytes.count <= 255, "domain label must be 1...255 bytes")
        return labelBytes
    }
}

/// Key derivation from a secret with BLAKE2b in keyed mode:
/// `output = BLAKE2b(key: secret, outlen, message: len(label) || label || context)`.
///
/// The secret must be 16...64 bytes (libsodium's key limits) and the output 16...64 bytes.
/// Distinct labels give independent keys from one secret; the context binds the output to a
/// round, a sender and a recipient.
public enum KeyDerivation {
    /// Derives `outputByteCount` secret bytes from `secret` for the purpose named by `label`.
    public static func derive(
        from secret: SecretBytes, label: String, context: [UInt8], outputByteCount: Int
    ) throws(CryptoError) -> SecretBytes {
        guard (Int(crypto_generichash_BYTES_MIN)...Int(crypto_generichash_BYTES_MAX)).contains(outputByteCount) else {
            throw .invalidOutputLength(outputByteCount)
        }
        guard (Int(crypto_generichash_KEYBYTES_MIN)...Int(crypto_generichash_KEYBYTES_MAX)).contains(secret.count) else {
            throw .invalidLength(what: "KDF input secret", expected: 32, actual: secret.count)
        }
        let input = BLAKE2b.encode(label: label, message: context)
        return SecretBytes(count: outputByteCount) { out in
            secret.withUnsafeBytes { key in BLAKE2b.compute(into: out, input: input, key: key) }
        }
    }
}
