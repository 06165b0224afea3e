public import Logging

/// The audit log: one line for every administrative action (defining or retiring a feature set,
/// starting a round, creating enrolment tokens, revoking a device), allowed or refused, with who
/// did it and how it ended. Lines go to the `veil.audit` logger at notice level, with the fields
/// as metadata, so that an operator can route them apart from the service's own log. Never
/// carries a secret: not the token presented, not the enrolment tokens created.
public struct AuditLog: Sendable {
    private let logger: Logger

    /// An audit log writing through `logger`'s handler under the label `veil.audit`.
    public init(logger: Logger = Logger(label: "veil.audit")) {
        var audit = logger
        audit[metadataKey: "audit"] = "true"
        self.logger = audit
    }

    /// Records `action` (for example `POST /v1/feature-sets` or `revoke`) done by `actor` (the
    /// token kind, or `cli` for the command line) on `target`, ending with `outcome` (an HTTP
    /// status, or 0 for success and 1 for failure on the command line).
    public func record(action: String, actor: String, target: String? = nil, outcome: Int) {
        var metadata: Logger.Metadata = ["action": "\(action)", "actor": "\(actor)", "outcome": "\(outcome)"]
        if let target { metadata["target"] = "\(target)" }
        logger.notice("audit", metadata: metadata)
    }
}
