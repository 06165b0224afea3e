import Foundation
import SwiftProtobuf
import VeilProtocol
import VeilWire

/// Turns an honest device's wire message into a misbehaving one, on the real wire bytes.
enum Tampering {
    /// The bytes a device with `behaviour` sends in `phase` instead of `bytes`.
    static func apply(_ behaviour: DeviceBehaviour, to bytes: [UInt8], phase: Phase) -> [UInt8] {
        switch (behaviour, phase) {
        case (.forgedSignature, .advertiseKeys):
            return rewrite(bytes) { envelope in
                guard case var .advertiseKeys(keys)? = envelope.message, !keys.signature.isEmpty else { return }
                keys.signature[keys.signature.startIndex] ^= 0x01
                envelope.advertiseKeys = keys
            }
        case (.wrongShare, .unmasking):
            return rewrite(bytes) { envelope in
                guard case var .unmaskingShares(shares)? = envelope.message else { return }
                shares.selfMaskShares = shares.selfMaskShares.map(corrupt)
                shares.maskingKeyShares = shares.maskingKeyShares.map(corrupt)
                envelope.unmaskingShares = shares
            }
        case (.garbageMessage, .maskedInputCollection):
            // Not a protobuf encoding at all: wire type 7 does not exist.
            return [UInt8](repeating: 0xFF, count: 32)
        default:
            return bytes
        }
    }

    /// Flips the lowest bit of the first share value: still a plausible field element, but wrong.
    static func corrupt(_ share: Veil_V1_RevealedShare) -> Veil_V1_RevealedShare {
        var copy = share
        if !copy.values.isEmpty { copy.values[copy.values.startIndex] ^= 0x01 }
        return copy
    }

    static func rewrite(_ bytes: [UInt8], _ change: (inout Veil_V1_DeviceToServer) -> Void) -> [UInt8] {
        guard var envelope = try? Veil_V1_DeviceToServer(serializedBytes: bytes) else { return bytes }
        change(&envelope)
        return (try? Array(envelope.serializedBytes() as Data)) ?? bytes
    }
}
