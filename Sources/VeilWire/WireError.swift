/// Why bytes from the network were refused. Each case names the field at fault.
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes are not a valid protobuf encoding of the expected envelope.
    case undecodable(String)
    /// The envelope carries no message.
    case missingMessage
    /// The envelope names another round.
    case wrongRound
    /// A field has the wrong length, an impossible value, or breaks an ordering rule.
    case invalidField(field: String, reason: String)
    /// The message is larger than the receiver accepts.
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case let .undecodable(why): return "undecodable message: \(why)"
        case .missingMessage: return "envelope carries no message"
        case .wrongRound: return "message belongs to another round"
        case let .invalidField(field, reason): return "\(field): \(reason)"
        case let .tooLarge(bytes, limit): return "message of \(bytes) bytes exceeds the \(limit)-byte limit"
        }
    }
}
