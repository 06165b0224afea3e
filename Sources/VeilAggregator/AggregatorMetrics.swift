import CoreMetrics
public import Prometheus
import VeilProtocol

/// The aggregator's metrics, made through swift-metrics with a Prometheus factory bound to this
/// instance's own registry (so several aggregators in one process, as in the tests, never mix
/// their figures), and exposed as Prometheus text on `/metrics`.
///
/// Names: `veil_rounds_total{outcome}`, `veil_round_devices{phase}` (devices a phase opened
/// with), `veil_dropouts_total{phase}`, `veil_rejected_devices_total{reason}`,
/// `veil_bytes_received_total`, `veil_bytes_sent_total`, `veil_phase_duration_seconds{phase}`,
/// `veil_unmasking_seconds` (reconstruction and mask expansion), `veil_mask_expansions_total`,
/// `veil_reconstructions_total`, `veil_waiting_devices`, `veil_active_rounds`, `veil_streams_total`,
/// `veil_privacy_epsilon_spent{feature_set}`, `veil_privacy_budget_refusals_total{feature_set}`.
public final class AggregatorMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let bytesReceived: CoreMetrics.Counter
    let bytesSent: CoreMetrics.Counter
    let streams: CoreMetrics.Counter
    let waiting: CoreMetrics.Gauge
    let activeRounds: CoreMetrics.Gauge
    let unmasking: CoreMetrics.Timer
    let maskExpansions: CoreMetrics.Counter
    let reconstructions: CoreMetrics.Counter

    /// Creates the metrics on a fresh registry.
    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let phaseBuckets: [Duration] = [.milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300)]
        factory.defaultDurationHistogramBuckets = phaseBuckets
        self.factory = factory
        bytesReceived = CoreMetrics.Counter(label: "veil_bytes_received_total", factory: factory)
        bytesSent = CoreMetrics.Counter(label: "veil_bytes_sent_total", factory: factory)
        streams = CoreMetrics.Counter(label: "veil_streams_total", factory: factory)
        waiting = CoreMetrics.Gauge(label: "veil_waiting_devices", factory: factory)
        activeRounds = CoreMetrics.Gauge(label: "veil_active_rounds", factory: factory)
        unmasking = CoreMetrics.Timer(label: "veil_unmasking_seconds", factory: factory)
        maskExpansions = CoreMetrics.Counter(label: "veil_mask_expansions_total", factory: factory)
        reconstructions = CoreMetrics.Counter(label: "veil_reconstructions_total", factory: factory)
        // Make every labelled series visible from the start, at zero.
        for phase in Phase.allCases {
            _ = CoreMetrics.Counter(label: "veil_dropouts_total", dimensions: [("phase", phase.rawValue)], factory: factory)
        }
        for outcome in ["finished", "aborted", "lost", "recovered"] {
            _ = CoreMetrics.Counter(label: "veil_rounds_total", dimensions: [("outcome", outcome)], factory: factory)
        }
        _ = CoreMetrics.Counter(label: "veil_window_merges_refused_total", factory: factory)
        for operation in ["commit-round", "record-round-start", "discard-round", "claim-window", "renew-lease", "recover-rounds", "check-cohort", "health-check"] {
            _ = CoreMetrics.Counter(label: "veil_store_errors_total", dimensions: [("operation", operation)], factory: factory)
        }
    }

    /// Counts a store operation that failed (the database refused or could not be reached).
    func storeError(operation: String) {
        CoreMetrics.Counter(label: "veil_store_errors_total", dimensions: [("operation", operation)], factory: factory).increment()
    }

    /// Records ε spent so far by `featureSet`'s releases (SPEC.md §12.4).
    func privacySpent(featureSet: String, epsilon: Double) {
        CoreMetrics.Gauge(label: "veil_privacy_epsilon_spent", dimensions: [("feature_set", featureSet)], factory: factory).record(epsilon)
    }

    /// Counts a round refused because `featureSet`'s privacy budget was spent.
    func privacyRefused(featureSet: String) {
        CoreMetrics.Counter(label: "veil_privacy_budget_refusals_total", dimensions: [("feature_set", featureSet)], factory: factory).increment()
    }

    /// Counts a finished round whose window refused its sum (it is recorded as aborted).
    func mergeRefused() {
        CoreMetrics.Counter(label: "veil_window_merges_refused_total", factory: factory).increment()
    }

    /// Counts a round by how it ended: "finished", "aborted", "lost" (finished, but its result
    /// could not be committed, so nobody was told COUNTED) or "recovered" (left running by a
    /// process of this instance that died, ended at restart).
    func roundEnded(outcome: String) {
        CoreMetrics.Counter(label: "veil_rounds_total", dimensions: [("outcome", outcome)], factory: factory).increment()
    }

    /// Records how many devices a phase opened with.
    func phaseOpened(_ phase: Phase, devices: Int) {
        CoreMetrics.Gauge(label: "veil_round_devices", dimensions: [("phase", phase.rawValue)], factory: factory).record(devices)
    }

    /// Records how long a phase took.
    func phaseClosed(_ phase: Phase, after duration: Duration) {
        CoreMetrics.Timer(label: "veil_phase_duration_seconds", dimensions: [("phase", phase.rawValue)], factory: factory)
            .recordNanoseconds(duration.nanoseconds)
    }

    /// Counts devices that stopped answering in `phase`.
    func dropped(_ count: Int, in phase: Phase) {
        guard count > 0 else { return }
        CoreMetrics.Counter(label: "veil_dropouts_total", dimensions: [("phase", phase.rawValue)], factory: factory).increment(by: count)
    }

    /// Counts a device removed from a round or refused at the door.
    /// A device refused to go on with its round (its policy, a reused round id, a violation it
    /// blames on the aggregator, or a peer's fault): `veil_device_refusals_total{reason}`. A
    /// rising policy count means the aggregator's round parameters and the fleet's device policy
    /// disagree.
    func refused(reason: String) {
        CoreMetrics.Counter(label: "veil_device_refusals_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func rejected(reason: String) {
        CoreMetrics.Counter(label: "veil_rejected_devices_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// Records the unmasking work of a finished round.
    func unmasked(_ statistics: UnmaskingStatistics, duration: Duration) {
        unmasking.recordNanoseconds(duration.nanoseconds)
        maskExpansions.increment(by: statistics.maskExpansions)
        reconstructions.increment(by: statistics.reconstructions)
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> String { registry.emitToString() }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
