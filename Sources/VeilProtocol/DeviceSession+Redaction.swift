import VeilCrypto

// Redacted printing for the device session and the nested types that hold its private input and
// round secrets. `String(describing:)`, `String(reflecting:)`, `print`, `dump` and `Mirror` see
// only public facts: the round, the device, the phase, counts and public keys.

extension DeviceSession: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: the round, this device and where the session stands, for example
    /// `DeviceSession(round 0f1e…, device 3, awaiting share-keys, secrets redacted)`. Never the
    /// input, a private key, a seed or a share.
    public var description: String {
        "DeviceSession(round \(configuration.roundID), device \(device), \(progress), secrets redacted)"
    }

    /// The same redacted text as ``description``.
    public var debugDescription: String { description }

    /// A mirror with public children only (round, device, threat model, progress and the redacted
    /// state), so `dump` and debuggers show no input value or secret.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "round": configuration.roundID.description,
                "device": device,
                "threatModel": configuration.threatModel.rawValue,
                "progress": progress,
                "state": state,
            ],
            displayStyle: .struct)
    }

    /// "awaiting <phase>", "finished", or "aborted: <violation>".
    var progress: String {
        if let awaiting { return "awaiting \(awaiting.rawValue)" }
        if let abortReason { return "aborted: \(abortReason)" }
        return "finished"
    }
}

extension DeviceSession.State: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: the case, with counts in place of the secrets and shares it holds; the input is
    /// never read (a masked session's input is already wiped).
    var description: String {
        switch self {
        case .ready:
            return "ready(input redacted)"
        case .advertised:
            return "advertised(input redacted, round secrets redacted)"
        case let .sharedKeys(_, _, neighbours):
            return "sharedKeys(input redacted, round secrets redacted, \(neighbours.count) neighbours)"
        case let .maskedInputSent(held, sharers, neighbours):
            return "maskedInputSent(\(held.count) held share pairs redacted, \(sharers.count) sharers, \(neighbours.count) neighbours)"
        case let .consistencySigned(held, sharers, neighbours, survivors):
            return "consistencySigned(\(held.count) held share pairs redacted, \(sharers.count) sharers, "
                + "\(neighbours.count) neighbours, \(survivors.count) survivors)"
        case .finished:
            return "finished"
        case let .aborted(violation):
            return "aborted(\(violation))"
        }
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// The case name and counts; no input element, secret or share.
    var customMirror: Mirror {
        let children: KeyValuePairs<String, Any>
        switch self {
        case .ready:
            children = ["case": "ready"]
        case .advertised:
            children = ["case": "advertised"]
        case let .sharedKeys(_, _, neighbours):
            children = ["case": "sharedKeys", "neighbours": neighbours.count]
        case let .maskedInputSent(held, sharers, neighbours):
            children = ["case": "maskedInputSent", "heldSharePairs": held.count, "sharers": sharers.count, "neighbours": neighbours.count]
        case let .consistencySigned(held, sharers, neighbours, survivors):
            children = [
                "case": "consistencySigned", "heldSharePairs": held.count, "sharers": sharers.count,
                "neighbours": neighbours.count, "survivors": survivors.count,
            ]
        case .finished:
            children = ["case": "finished"]
        case let .aborted(violation):
            children = ["case": "aborted", "violation": violation.description]
        }
        return Mirror(self, children: children, displayStyle: .enum)
    }
}

extension DeviceSession.RoundSecrets: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: the two public keys only.
    var description: String {
        "RoundSecrets(encryption \(encryption.publicKey), masking \(masking.publicKey), private keys and self-mask seed redacted)"
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// The two public keys (as text); no private key or seed.
    var customMirror: Mirror {
        Mirror(
            self,
            children: ["encryptionPublicKey": encryption.publicKey.description, "maskingPublicKey": masking.publicKey.description],
            displayStyle: .struct)
    }
}

extension DeviceSession.HeldShares: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: says what is held, never the share values.
    var description: String { "HeldShares(masking-key share and self-mask share redacted)" }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// No children: both fields are secret.
    var customMirror: Mirror { Mirror(self, children: [:], displayStyle: .struct) }
}

extension DeviceSession.NeighbourRecord: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: the neighbour's public keys and whether the opening key is derived, never its value.
    var description: String {
        let openingKey = opening == nil ? "not derived" : "redacted"
        return "NeighbourRecord(masking \(maskingKey), identity \(identityKeyText), opening key \(openingKey))"
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// The public keys (as text) and whether an opening key exists; not the key or its nonce.
    var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "maskingKey": maskingKey.description, "identityKey": identityKeyText,
                "hasOpeningKey": opening != nil,
            ],
            displayStyle: .struct)
    }

    private var identityKeyText: String { identityKey.map { "\($0)" } ?? "none" }
}

extension PrivateInput: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: whether the input is still held or already wiped, never an element.
    var description: String { "PrivateInput(\(isWiped ? "wiped" : "redacted"))" }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// Only whether the input is wiped.
    var customMirror: Mirror { Mirror(self, children: ["isWiped": isWiped], displayStyle: .class) }
}
