import Foundation
import Logging
import Synchronization
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilFeatures
import VeilProtocol
public import VeilSimulation
import VeilStore

/// A bounded soak (issue 13, item 8): a whole fleet of real ``VeilDevice`` clients, each with its
/// own observation store, running feature rounds the way an edge agent does (offer every pending
/// window, retry after anything but COUNTED) against a real aggregator over TLS on loopback, for
/// many windows of a simulated clock, with dropouts in every round and one aggregator restart on
/// the same store. Cohorts form by themselves (`maximumCohort` devices, or at least
/// `minimumCohort` after `gatherSeconds`). It reports, per window, counted against expected
/// contributors and the decoded values against the plaintext oracle, the process's resident
/// memory after each window, and round-time percentiles; it stops by itself.
public struct SoakSimulation: Sendable {
    /// What to run.
    public struct Plan: Codable, Sendable {
        /// The scenario's name.
        public var name: String
        /// One line on what it shows.
        public var description: String
        /// A feature scenario (path relative to this file) for the feature set, observations and
        /// dropout; its device count and window count are replaced by the soak's.
        public var features: String
        /// Devices in the fleet.
        public var devices: Int
        /// Windows to run.
        public var windows: Int
        /// Devices per round (`rounds.maximumCohort`).
        public var cohort: Int
        /// The smallest cohort a straggler round may have (`rounds.minimumCohort`).
        public var minimumCohort: Int
        /// After this many windows the aggregator is shut down and started again on its store,
        /// while the next window's rounds run.
        public var restartAfterWindow: Int
        /// Seconds without any new contributor after which a window is closed as it is.
        public var settleSeconds: Double
        /// Windows each device keeps raw observations for (older ones are purged, so its store
        /// stops growing, as on a real device).
        public var retentionWindows: Int
    }

    /// The plan.
    public let plan: Plan
    /// The feature scenario the plan names, with the plan's fleet and windows.
    public let scenario: FeatureScenario

    /// Loads `path` and the feature scenario it names.
    public init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        plan = try JSONDecoder().decode(Plan.self, from: data)
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(plan.features).path
        var scenario = try FeatureScenario.load(path: base)
        scenario.devices = plan.devices
        scenario.windows = plan.windows
        scenario.activeFraction = 1
        self.scenario = scenario
        guard plan.devices >= plan.cohort, plan.cohort >= plan.minimumCohort, plan.minimumCohort >= 3,
              (1..<plan.windows).contains(plan.restartAfterWindow) else {
            throw ScenarioError(field: "soak", reason: "needs devices >= cohort >= minimumCohort >= 3 and a restart between windows")
        }
    }

    /// Runs the soak; `progress` hears each window as it closes.
    public func run(progress: @escaping @Sendable (SoakReport.Window) -> Void = { _ in }) async throws -> SoakReport {
        let layout = try scenario.layout()
        let synthesis = FeatureObservationSynthesis(scenario: scenario)
        let n = plan.devices
        // Device stores on tmpfs where there is one: the soak measures the service, not the disk.
        let root = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        let directory = root + "veil-soak-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = SimulatedClock(Date(timeIntervalSince1970: Double(scenario.windowStart(0))))
        var configuration = try NetworkSimulation.loopbackConfiguration(
            directory: directory, tls: true, devices: n, prg: scenario.prg, threatModel: scenario.threatModel,
            dropout: scenario.dropout, corruptFraction: scenario.graph.corruptFraction)
        configuration.httpListen = nil
        configuration.apiListen = nil
        configuration.rounds.featureSet = scenario.featureSet
        configuration.rounds.windowSeconds = scenario.windowSeconds
        configuration.rounds.windowHorizonSeconds = max(86_400, (plan.windows + 1) * scenario.windowSeconds)
        configuration.rounds.minimumReleaseCohort = scenario.minimumReleaseCohort
        configuration.rounds.minimumCohort = plan.minimumCohort
        configuration.rounds.maximumCohort = plan.cohort
        configuration.rounds.maximumConcurrentRounds = 2
        configuration.rounds.gatherSeconds = 2
        configuration.rounds.graph = scenario.graph.kind == "complete" ? "complete" : "auto"
        var logger = Logger(label: "veil.soak.aggregator")
        logger.logLevel = .critical
        var aggregator = try await Aggregator(configuration: configuration, logger: logger, clock: { clock.now })
        let first = aggregator
        var serving = Task { try await first.run() }
        await aggregator.waitUntilListening()
        // The restarted aggregator listens where this one does, so devices find it again.
        configuration.listen = .init(host: "127.0.0.1", port: aggregator.grpcPort!)
        let endpoint = AggregatorEndpoint(host: "localhost", port: configuration.listen.port, security: .tls(caCertificatePath: directory + "/tls/ca.pem"))

        // The fleet: stores, identities and enrolment.
        var stores: [ObservationStore] = []
        for d in 0..<n {
            stores.append(try ObservationStore(
                path: directory + "/device-\(d).sqlite", layout: layout, windowSeconds: scenario.windowSeconds,
                retention: Double(plan.retentionWindows) * Double(scenario.windowSeconds)))
        }
        let identities = (0..<n).map { _ in DeviceIdentity.generate() }
        let connections = try (0..<(n + 49) / 50).map { _ in try AggregatorConnection(to: endpoint) }
        let policy = DevicePolicy(
            requiredThreatModel: scenario.threatModel, minimumCohort: plan.minimumCohort,
            assumedDropout: min(scenario.dropout.total, 0.99), assumedCorruptFraction: scenario.graph.corruptFraction ?? 0)
        let started = ContinuousClock.now
        let signal = WindowSignal()
        let fleetStores = stores
        let report: SoakReport = try await withThrowingTaskGroup(of: Void.self) { group in
            for c in connections { group.addTask { try await c.run() } }
            defer { for c in connections { c.close() } }
            let devices = (0..<n).map { d in
                VeilDevice(identity: identities[d], policy: policy, signedRounds: .inMemory(), connection: connections[d / 50], clock: { clock.now })
            }
            var deviceIDs: [String] = []
            for d in 0..<n {
                let token = try await aggregator.store.createEnrolmentToken(lifetime: 86_400 * 365)
                deviceIDs.append(try await devices[d].enrol(token: token))
            }
            let agents = (0..<n).map { d in
                Task { await Self.agent(devices[d], store: fleetStores[d], clock: clock, signal: signal, dropout: scenario.dropout, threatModel: scenario.threatModel) }
            }
            defer { for agent in agents { agent.cancel() } }

            var windows: [SoakReport.Window] = []
            // Every device's encoded contribution to every window, for the exact check at the end.
            var contributions: [[ModularVector]] = []
            var allRounds: [SoakReport.Round] = []
            var restartSeconds: Double?
            for w in 0..<plan.windows {
                let windowStart = scenario.windowStart(w)
                clock.set(Date(timeIntervalSince1970: Double(windowStart)))
                var encoded: [ModularVector] = []
                encoded.reserveCapacity(n)
                for d in 0..<n {
                    let observed = synthesis.observations(device: d, window: w)
                    encoded.append(try layout.encode(observed))
                    try fleetStores[d].record(FeatureNetworkSimulation.timestamped(observed, windowStart: windowStart, seconds: scenario.windowSeconds, device: d))
                }
                contributions.append(encoded)
                let windowBegan = ContinuousClock.now
                var collector = await Self.roundTimes(of: aggregator)
                clock.set(Date(timeIntervalSince1970: Double(windowStart + scenario.windowSeconds) + 1))
                await signal.advance()
                if w == plan.restartAfterWindow {
                    // Restart while this window's first rounds run: they abort, their devices
                    // retry, and the new process recovers the store and goes on.
                    while await aggregator.activeRoundCount() == 0 { try await Task.sleep(for: .milliseconds(20)) }
                    let down = ContinuousClock.now
                    await aggregator.shutDown()
                    _ = try? await serving.value
                    await aggregator.store.close()
                    aggregator = try await Aggregator(configuration: configuration, logger: logger, clock: { clock.now })
                    let restarted = aggregator
                    serving = Task { try await restarted.run() }
                    await aggregator.waitUntilListening()
                    restartSeconds = (ContinuousClock.now - down).seconds
                    collector.cancel()
                    allRounds += await collector.value
                    collector = await Self.roundTimes(of: aggregator)
                }
                let counted = try await settle(aggregator, window: windowStart, expected: n)
                let seconds = (ContinuousClock.now - windowBegan).seconds
                collector.cancel()
                let windowRounds = await collector.value
                allRounds += windowRounds
                let window = SoakReport.Window(
                    index: w, windowStart: windowStart, expected: n, counted: counted, countedAtEnd: counted, rounds: windowRounds.count,
                    sumExact: false, seconds: seconds, residentBytes: ResourceUsage.residentBytes(),
                    restarted: w == plan.restartAfterWindow)
                windows.append(window)
                progress(window)
            }
            let total = (ContinuousClock.now - started).seconds
            for agent in agents { agent.cancel() }
            // The exact check: each window's stored sum is the sum of the contributions of the
            // devices the store says it counted, and no more.
            for w in windows.indices {
                let start = windows[w].windowStart
                var expected = ModularVector(zerosOfCount: layout.dimension, bitWidth: scenario.featureSet.bitWidth)
                var counted = 0
                for d in 0..<n where try await aggregator.store.countingRound(of: deviceIDs[d], in: scenario.featureSet, windowStart: start) != nil {
                    expected.add(contributions[w][d])
                    counted += 1
                }
                let stored = try await aggregator.store.storedWindows(of: scenario.featureSet, from: start, to: start + 1).first
                windows[w].countedAtEnd = stored?.contributors ?? 0
                windows[w].sumExact = stored.map { $0.contributors == counted && $0.sum == expected } ?? (counted == 0)
            }
            await aggregator.shutDown()
            _ = try? await serving.value
            await aggregator.store.close()
            group.cancelAll()
            return SoakReport(
                name: plan.name, devices: n, cohort: plan.cohort, windows: windows, rounds: allRounds,
                restartSeconds: restartSeconds ?? 0, totalSeconds: total, peakResidentBytes: ResourceUsage.peakResidentBytes())
        }
        return report
    }

    /// A task collecting every round `aggregator` ends until it is cancelled.
    private static func roundTimes(of aggregator: Aggregator) async -> Task<[SoakReport.Round], Never> {
        let rounds = await aggregator.completedRounds()
        return Task {
            var collected: [SoakReport.Round] = []
            for await round in rounds {
                let outcome: String
                switch round.outcome {
                case .finished: outcome = "finished"
                case let .aborted(reason): outcome = "aborted: \(reason)"
                }
                let slowest = round.phaseSeconds.max { $0.value < $1.value }
                collected.append(SoakReport.Round(
                    task: round.task, devices: round.configuration.cohortSize, outcome: outcome,
                    seconds: round.endedAt.timeIntervalSince(round.startedAt),
                    slowestPhase: slowest.map { "\($0.key)" } ?? "-", slowestPhaseSeconds: slowest?.value ?? 0))
                if Task.isCancelled { break }
            }
            return collected
        }
    }

    /// Waits until `window` counts `expected` devices, or until the service is quiet (no round
    /// running, no new contributor) for the plan's settle time: the last few devices of a window
    /// may be too few for a cohort. Returns its contributors.
    private func settle(_ aggregator: Aggregator, window: Int, expected: Int) async throws -> Int {
        var last = -1
        var since = ContinuousClock.now
        while true {
            let counted = (try? await aggregator.store.storedWindows(of: scenario.featureSet, from: window, to: window + 1).first?.contributors) ?? 0
            if counted >= expected { return counted }
            let busy = await aggregator.activeRoundCount() > 0
            if counted != last || busy {
                last = counted
                since = ContinuousClock.now
            } else if (ContinuousClock.now - since).seconds > plan.settleSeconds {
                return counted
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// One device's agent loop: whenever it has windows to offer it takes part in a round,
    /// dropping out at a random phase with the scenario's probabilities; after COUNTED or with
    /// nothing to offer it purges observations past its retention (as
    /// ``VeilDevice/runFeatureRounds(store:interval:options:onRound:)`` does) and waits for the
    /// next window to close; after anything else it retries within a second or two.
    private static func agent(
        _ device: VeilDevice, store: ObservationStore, clock: SimulatedClock, signal: WindowSignal, dropout: Scenario.DropoutSpec, threatModel: ThreatModel
    ) async {
        var seen = 0
        var generator = SystemRandomNumberGenerator()
        while !Task.isCancelled {
            seen = await signal.wait(after: seen)
            var more = true
            while more && !Task.isCancelled {
                let drop = dropout.dropPhase(among: threatModel.phases, drawing: { Double.random(in: 0..<1, using: &generator) })
                do {
                    let result = try await device.participateInFeatureRound(store: store, options: .init(disconnectBefore: drop))
                    switch result.outcome {
                    case .counted, .alreadyCounted:
                        // Offer again at once: another pending window, or (nothing left) a
                        // local answer without connecting.
                        continue
                    case .noRound where result.configuration == nil && result.reason.hasPrefix("every closed window"):
                        _ = try? store.purge(now: clock.now)
                        more = false
                        continue
                    default: break
                    }
                } catch {
                    // Transport failures, the restart, refusals: retried below.
                }
                try? await Task.sleep(for: .milliseconds(Int64.random(in: 500...2000, using: &generator)))
            }
        }
    }
}

/// Wakes device agents when a window closes.
actor WindowSignal {
    private var generation = 0
    private var waiters: [CheckedContinuation<Int, Never>] = []

    /// Returns once the generation is above `seen`, with the new generation.
    func wait(after seen: Int) async -> Int {
        if generation > seen { return generation }
        return await withCheckedContinuation { waiters.append($0) }
    }

    /// A window closed.
    func advance() {
        generation += 1
        let woken = waiters
        waiters = []
        for waiter in woken { waiter.resume(returning: generation) }
    }
}

/// What a soak measured.
public struct SoakReport: Codable, Sendable {
    /// One window's outcome.
    public struct Window: Codable, Sendable {
        /// Its index from 0.
        public let index: Int
        /// Its start (Unix seconds).
        public let windowStart: Int
        /// Devices that recorded observations in it (every device of the fleet).
        public let expected: Int
        /// Devices the stored window counted when it settled (no new contributor for a while).
        public let counted: Int
        /// Devices it counted at the end of the soak (stragglers may join later rounds of it).
        public var countedAtEnd: Int
        /// Rounds that ended (finished or aborted) while it was being aggregated.
        public let rounds: Int
        /// Whether its stored sum is exactly the sum of the encoded contributions of the devices
        /// the store counted in it, and its contributor count their number.
        public var sumExact: Bool
        /// Wall seconds from the window closing to its last contributor.
        public let seconds: Double
        /// The process's resident memory after the window (bytes).
        public let residentBytes: Int
        /// Whether the aggregator restarted during it.
        public let restarted: Bool
    }

    /// The plan's name.
    public let name: String
    /// Devices in the fleet.
    public let devices: Int
    /// Devices per round.
    public let cohort: Int
    /// Every window, in order.
    public var windows: [Window]
    /// One round that ended.
    public struct Round: Codable, Sendable {
        /// What it aggregated (the window).
        public let task: String
        /// Its cohort.
        public let devices: Int
        /// `finished`, or `aborted: <reason>`.
        public let outcome: String
        /// Its wall time.
        public let seconds: Double
        /// Its slowest phase and that phase's wall time.
        public let slowestPhase: String
        /// The slowest phase's wall time.
        public let slowestPhaseSeconds: Double
    }

    /// Every round that ended.
    public let rounds: [Round]
    /// The wall time of every round that ended.
    public var roundSeconds: [Double] { rounds.map(\.seconds) }
    /// How long the restart took, from shutdown to listening again.
    public let restartSeconds: Double
    /// The whole soak's wall time.
    public let totalSeconds: Double
    /// The process's peak resident memory.
    public let peakResidentBytes: Int

    /// The `p`-quantile (0...1) of the round times.
    public func roundQuantile(_ p: Double) -> Double {
        let sorted = roundSeconds.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded(.up)))]
    }

    /// A plain-text table.
    public var text: String {
        var lines = ["soak \(name): \(devices) devices, cohorts of up to \(cohort), \(windows.count) windows, \(String(format: "%.0f", totalSeconds)) s"]
        lines.append("window  counted/expected  at end  rounds  exact sum  seconds  RSS MiB")
        func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        for w in windows {
            lines.append(pad("\(w.index)", 6) + "  " + pad("\(w.counted)/\(w.expected)", 16) + "  " + pad("\(w.countedAtEnd)", 6) + "  "
                + pad("\(w.rounds)", 6) + "  " + pad(w.sumExact ? "yes" : "NO", 9) + "  " + pad(String(format: "%.1f", w.seconds), 7) + "  "
                + pad(String(format: "%.0f", Double(w.residentBytes) / 1_048_576), 7) + (w.restarted ? "  (aggregator restarted)" : ""))
        }
        lines.append(String(format: "rounds: %d (%d aborted), p50 %.2f s, p99 %.2f s, max %.2f s; restart %.2f s; peak RSS %.0f MiB",
                            rounds.count, rounds.filter { $0.outcome != "finished" }.count, roundQuantile(0.5), roundQuantile(0.99),
                            roundSeconds.max() ?? 0, restartSeconds, Double(peakResidentBytes) / 1_048_576))
        for round in rounds.sorted(by: { $0.seconds > $1.seconds }).prefix(3) {
            lines.append("slow round: " + String(format: "%.1f", round.seconds) + " s, \(round.devices) devices, \(round.task), slowest phase "
                + round.slowestPhase + " " + String(format: "%.1f", round.slowestPhaseSeconds) + " s (\(round.outcome))")
        }
        return lines.joined(separator: "\n")
    }
}
