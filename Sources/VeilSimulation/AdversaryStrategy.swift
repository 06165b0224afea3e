/// What a malicious aggregator tries against a fleet of honest devices (issue 12, item 8).
///
/// Each strategy is run by ``AdversarialAggregator`` against real ``VeilProtocol/DeviceSession``s
/// that enforce the operator's ``VeilProtocol/DevicePolicy``; the ``ExposureOracle`` then tries to
/// recover an honest device's input from everything the aggregator saw. `Simulations/README.md`
/// describes each one; the scenario field `"adversary"` and `veil-sim run --adversary` select them.
public enum AdversaryStrategy: String, Codable, Sendable, CaseIterable {
    /// Offers rounds that break the policy: honest-but-curious instead of active, t = 1, 2t ≤ k,
    /// n = 3, a sparse graph that misses the security bound. One sub-round each.
    case downgrade
    /// Runs a second session under the same round id and configuration and replays the first
    /// session's consistency signatures (over a survivor set without the victim) to some of the
    /// victim's neighbours, to get both shares of the victim.
    case roundIDReuse = "round-id-reuse"
    /// Shows some of the victim's neighbours a survivor set without the victim (with every
    /// signature it can get for that set), and asks others for the victim's masking-key share
    /// although they signed the victim as a survivor.
    case splitView = "split-view"
    /// Tries to surround a victim with colluding devices: grinds placement secrets (refused when
    /// revealed against the commitment) and, within the commitment, which advertised devices to
    /// drop; then splits the victim's neighbours as in ``splitView``.
    case targetedPlacement = "targeted-placement"
    /// One enrolled colluding device advertises a key of small order (a device attack).
    case lowOrderKeyDevice = "low-order-key-device"
    /// Asks the victim's honest neighbours for both shares of the victim in one request.
    case bothShares = "both-shares"

    /// One line saying what the aggregator does.
    public var summary: String {
        switch self {
        case .downgrade:
            return "offers rounds that break the fleet's policy (honest-but-curious, t = 1, 2t ≤ k, n = 3, a sparse graph missing the bound)"
        case .roundIDReuse:
            return "reruns a round id and replays the first session's consistency signatures over a survivor set without the victim"
        case .splitView:
            return "shows some neighbours of the victim a survivor set without it, and asks others for its masking-key share"
        case .targetedPlacement:
            return "grinds placement (its secret, then which devices to drop) to surround a victim with colluders, then splits the victim's neighbours"
        case .lowOrderKeyDevice:
            return "a colluding device advertises a small-order key; the honest aggregator must remove it, a relaying one is refused"
        case .bothShares:
            return "asks the victim's honest neighbours for both of the victim's shares in one unmasking request"
        }
    }

    /// The strategies a scenario's `"adversary"` value names: one strategy, or `"all"` for every
    /// strategy in declaration order; nil for anything else.
    public static func parse(_ value: String) -> [AdversaryStrategy]? {
        if value == "all" { return allCases }
        return AdversaryStrategy(rawValue: value).map { [$0] }
    }

    /// Every accepted value of the scenario field and of `--adversary`, for error messages.
    public static var acceptedValues: String {
        (allCases.map(\.rawValue) + ["all"]).joined(separator: ", ")
    }
}
