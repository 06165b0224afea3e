// Redacted printing for the server session and the nested types that hold revealed shares,
// reconstructed secrets and masked inputs. `String(describing:)`, `String(reflecting:)`, `print`,
// `dump` and `Mirror` see only public facts: the round, the phase, device counts and sets.

extension AggregationSession: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: the round, the phase and device counts, for example
    /// `AggregationSession(round 0f1e…, collecting share-keys, 3 of 20 devices pending, secrets redacted)`.
    /// Never a share, a reconstructed secret, a masked input or the running sum.
    public var description: String {
        "AggregationSession(round \(configuration.roundID), \(progress), secrets redacted)"
    }

    /// The same redacted text as ``description``.
    public var debugDescription: String { description }

    /// A mirror with public children only (round, cohort size, phase, survivor and misbehaving
    /// device sets, statistics, outcome summary); the per-device records appear redacted.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "round": configuration.roundID.description,
                "cohortSize": configuration.cohortSize,
                "threatModel": configuration.threatModel.rawValue,
                "progress": progress,
                "survivors": survivors,
                "misbehaving": misbehaving.keys.sorted(),
                "statistics": statistics,
                "records": records,
            ],
            displayStyle: .struct)
    }

    /// "collecting <phase>, p of n devices pending", "finished with s survivors", or "aborted: <reason>".
    var progress: String {
        if let phase {
            return "collecting \(phase.rawValue), \(pendingDevices.count) of \(configuration.cohortSize) devices pending"
        }
        switch outcome {
        case let .finished(result)?: return "finished with \(result.survivors.count) survivors"
        case let .aborted(reason)?: return "aborted: \(reason)"
        case nil: return "closed"
        }
    }
}

extension DeviceRecord: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: which messages the device sent and how many shares it revealed, never their values.
    var description: String {
        var parts: [String] = []
        parts.append(maskingKey == nil ? "no keys" : "advertised keys")
        if sharedKeys { parts.append("shared keys (\(sealedShares.count) sealed pairs held)") }
        if maskedInput { parts.append("masked input added") }
        if consistencySignature != nil { parts.append("signed survivor set") }
        if let selfMaskShares { parts.append("\(selfMaskShares.count) self-mask shares redacted") }
        if let maskingKeyShares { parts.append("\(maskingKeyShares.count) masking-key shares redacted") }
        return "DeviceRecord(\(parts.joined(separator: ", ")))"
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// Flags and counts; no share value.
    var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "advertisedKeys": maskingKey != nil,
                "sharedKeys": sharedKeys,
                "sealedSharePairs": sealedShares.count,
                "maskedInput": maskedInput,
                "signedSurvivorSet": consistencySignature != nil,
                "revealedSelfMaskShares": selfMaskShares?.count ?? 0,
                "revealedMaskingKeyShares": maskingKeyShares?.count ?? 0,
            ],
            displayStyle: .struct)
    }
}

extension AggregationSession.Reconstruction: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: whose secret and how many shares, never the share values.
    var description: String {
        "Reconstruction(\(isSelfMask ? "self-mask seed" : "masking key") of device \(owner), \(shares.count) shares redacted)"
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// Owner, kind and share count only.
    var customMirror: Mirror {
        Mirror(self, children: ["owner": owner, "isSelfMask": isSelfMask, "shares": shares.count], displayStyle: .struct)
    }
}

extension AggregationSession.ReconstructedSecret: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: how the secret was found, never the secret.
    var description: String {
        "ReconstructedSecret(secret redacted, robust path: \(usedRobustPath), bad holders: \(badHolders))"
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// The path taken and the holders of bad shares; not the secret.
    var customMirror: Mirror {
        Mirror(self, children: ["usedRobustPath": usedRobustPath, "badHolders": badHolders], displayStyle: .struct)
    }
}

extension AggregationSession.MaskJob: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Redacted: which mask, never the seed or key that expands it.
    var description: String {
        switch self {
        case let .selfMask(owner, _): return "MaskJob.selfMask(owner: \(owner), seed redacted)"
        case let .pairwise(dropped, survivor, _): return "MaskJob.pairwise(dropped: \(dropped), survivor: \(survivor), key redacted)"
        }
    }

    /// The same redacted text as ``description``.
    var debugDescription: String { description }

    /// The devices involved; not the seed or key.
    var customMirror: Mirror {
        switch self {
        case let .selfMask(owner, _):
            return Mirror(self, children: ["case": "selfMask", "owner": owner], displayStyle: .enum)
        case let .pairwise(dropped, survivor, _):
            return Mirror(self, children: ["case": "pairwise", "dropped": dropped, "survivor": survivor], displayStyle: .enum)
        }
    }
}
