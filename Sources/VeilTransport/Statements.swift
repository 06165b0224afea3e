import VeilCrypto

/// The byte strings a device signs with its long-term Ed25519 identity outside a round
/// (SPEC.md §11.2, §11.3). Each is `len(label) || label || payload`, with a label used nowhere
/// else, so a signature made for one purpose never verifies for another.
public enum TransportStatement {
    /// The label of the enrolment statement.
    public static let enrolLabel = "veil/v1/enrol"
    /// The label of the check-in statement.
    public static let checkInLabel = "veil/v1/check-in"
    /// The label of the feature-sets statement.
    public static let featureSetsLabel = "veil/v1/feature-sets"
    /// The size of a check-in challenge nonce.
    public static let challengeByteCount = 32

    /// What a device signs to prove it holds the identity key it enrols with `token`.
    public static func enrolment(token: String) -> [UInt8] {
        labelled(enrolLabel, Array(token.utf8))
    }

    /// What a device signs to answer the server's check-in challenge `nonce`.
    public static func checkIn(nonce: [UInt8]) -> [UInt8] {
        labelled(checkInLabel, nonce)
    }

    /// What a device signs to fetch the feature-set definitions at `timestamp` (seconds since the
    /// Unix epoch, 8 bytes big-endian).
    public static func featureSets(timestamp: Int64) -> [UInt8] {
        labelled(featureSetsLabel, withUnsafeBytes(of: timestamp.bigEndian) { Array($0) })
    }

    static func labelled(_ label: String, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(label.utf8.count)] + Array(label.utf8) + payload
    }
}
