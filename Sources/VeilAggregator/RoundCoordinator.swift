import Foundation
import Synchronization
import CoreMetrics
import GRPCCore
import Logging
import VeilCrypto
import VeilFeatures
import VeilProtocol
import VeilWire
import VeilStore

/// The waiting room and the rounds in flight. Checked-in devices wait here, each under the open
/// windows it offered (SPEC.md §12.1); a round forms for the oldest window that `maximumCohort`
/// waiting devices offer, or, every `gatherSeconds`, that at least `minimumCohort` offer. Up to
/// `maximumConcurrentRounds` rounds run at once; devices that waited longer than
/// `maximumWaitSeconds` are told to come back later.
actor RoundCoordinator {
    private let policy: RoundPolicy
    private let maximumWaiting: Int
    private let metrics: AggregatorMetrics
    private let logger: Logger
    private let store: any AggregatorStore
    private let windowUpdated: @Sendable (FeatureLayout) async -> Void
    private var room = WaitingRoom<DeviceLink>()
    private var live: [String: DeviceLink] = [:]
    private var rounds: [RoundID: RoundDriver] = [:]
    /// Round ends being committed now (``shutDown(grace:)`` waits for them).
    private var endsInFlight = 0
    /// The task renewing each started round's lease, until the round ends.
    private var leases: [String: Task<Void, Never>] = [:]
    private var gatherTimer: Task<Void, Never>?
    /// Cohorts taken from the waiting room whose rounds are being set up (claiming their window).
    private var starting = 0
    private var shuttingDown = false
    private var listeners: [UUID: AsyncStream<CompletedRound>.Continuation] = [:]
    private let clock: @Sendable () -> Date
    /// This instance's name in the round history (``AggregatorConfiguration/instance``).
    private let instance: String
    /// The configured feature set's layout, with its privacy plan, derived once.
    private let layout: FeatureLayout?
    /// The last round this instance refused because its feature set's privacy budget was spent.
    private(set) var lastBudgetRefusal: BudgetRefusal?

    init(policy: RoundPolicy, maximumWaiting: Int, store: any AggregatorStore, metrics: AggregatorMetrics, logger: Logger,
         instance: String, clock: @escaping @Sendable () -> Date, windowUpdated: @escaping @Sendable (FeatureLayout) async -> Void) {
        self.clock = clock
        self.instance = instance
        self.windowUpdated = windowUpdated
        self.policy = policy
        self.maximumWaiting = maximumWaiting
        self.store = store
        self.metrics = metrics
        self.logger = logger
        layout = policy.featureLayout
    }

    /// The key plain rounds (no feature set) wait under.
    static let plainRoundWindow = 0

    /// Admits an authenticated device that offered `offered` (window starts, strictly increasing;
    /// empty to leave the choice to the aggregator) to the waiting room (SPEC.md §12.1). Without
    /// a feature set every device waits for the next plain round and offers nothing. With one,
    /// the device waits under each offered window that is open (the most recent closed window
    /// when it offered none); it is told `ALREADY_COUNTED` when the store counts it in one of
    /// them, and `NO_ROUND` when none is open. An offer not aligned to this aggregator's windows
    /// is refused: the device's window length differs.
    func checkIn(_ link: DeviceLink, deviceID: String, offered: [Int]) async throws(RPCError) {
        guard let set = policy.featureSet else {
            guard offered.isEmpty else {
                throw RPCError(code: .failedPrecondition, message: "this aggregator runs plain rounds of \"\(policy.task)\"; it takes no window offers")
            }
            try admit(link, deviceID: deviceID, windows: [Self.plainRoundWindow])
            return
        }
        if let misaligned = offered.first(where: { $0 % policy.windowSeconds != 0 }) {
            metrics.rejected(reason: "window-length")
            throw RPCError(code: .failedPrecondition, message: "offered window \(misaligned) is not aligned to this aggregator's \(policy.windowSeconds) s windows of \(set.name) v\(set.version): the device's window length differs")
        }
        let now = clock()
        let open = offered.isEmpty ? [policy.latestClosedWindow(at: now)] : offered.filter { policy.isOpen(window: $0, at: now) }
        guard !open.isEmpty else {
            metrics.rejected(reason: "no-open-window")
            link.end(TransportCodec.endedFrame(
                .noRound, reason: "none of the offered windows is open: windows take rounds from their end until \(policy.effectiveWindowHorizonSeconds) s after it",
                retryAfterMilliseconds: Retry.jittered(milliseconds: UInt32(min(policy.windowSeconds, 3600)) * 1000)))
            return
        }
        let counted: [Int: String]
        do { counted = try await store.countedWindows(of: deviceID, in: set, windowStarts: open) } catch {
            metrics.storeError(operation: "counted-windows")
            throw RPCError(code: .unavailable, message: "window lookup failed; retry later")
        }
        if let window = open.first(where: { counted[$0] != nil }), let round = counted[window] {
            // The device missed the end of the round that counted it: it records the window and
            // offers the rest at its next check-in.
            metrics.rejected(reason: "already-counted")
            link.end(TransportCodec.alreadyCountedFrame(task: task(of: set, window: window), countedRoundID: round))
            return
        }
        try admit(link, deviceID: deviceID, windows: open)
    }

    /// Puts an authenticated device in the waiting room under `windows`.
    private func admit(_ link: DeviceLink, deviceID: String, windows: [Int]) throws(RPCError) {
        guard !shuttingDown else { throw RPCError(code: .unavailable, message: "the aggregator is shutting down") }
        guard !link.isClosed else { return }
        if let existing = live[deviceID], !existing.isClosed {
            metrics.rejected(reason: "duplicate-stream")
            throw RPCError(code: .alreadyExists, message: "device \(deviceID) already has a live stream")
        }
        guard room.count < maximumWaiting else {
            metrics.rejected(reason: "waiting-room-full")
            throw RPCError(code: .resourceExhausted, message: "the waiting room is full (\(maximumWaiting) devices); check in later")
        }
        live[deviceID] = link
        let since = ContinuousClock.now
        link.waitingSince = since
        link.windows = windows
        room.add(link, windows: windows, since: since)
        metrics.waiting.record(room.count)
        formRounds(gatherDeadlinePassed: false)
        if !room.isEmpty && gatherTimer == nil { scheduleGatherTimer() }
    }

    /// The task naming `window` of `set`.
    private func task(of set: FeatureSet, window: Int) -> String {
        FeatureWindowTask(featureSet: set.name, version: set.version, windowStart: window).description
    }

    /// The stream of `deviceID` ended (for any reason).
    func streamClosed(_ link: DeviceLink, deviceID: String?) async {
        if let deviceID, live[deviceID] === link { live[deviceID] = nil }
        if room.remove(link) { metrics.waiting.record(room.count) }
        if let (driver, index) = link.round { await driver.deviceLeft(index) }
    }

    /// Starts a round now with the devices waiting, if there are at least `minimumCohort`.
    /// Returns false when too few devices wait or the concurrency limit is reached.
    func startRoundNow() async -> Bool {
        var started = false
        for cohort in takeCohorts(gatherDeadlinePassed: true) {
            if await startRound(with: cohort.links, window: cohort.window) { started = true }
        }
        return started
    }

    /// The number of devices waiting for a round.
    var waitingCount: Int { room.count }

    /// The number of rounds in flight.
    var activeRoundCount: Int { rounds.count }

    /// Every round that ends from now on.
    func completedRounds() -> AsyncStream<CompletedRound> {
        let (stream, continuation) = AsyncStream.makeStream(of: CompletedRound.self)
        let id = UUID()
        listeners[id] = continuation
        continuation.onTermination = { _ in Task { await self.removeListener(id) } }
        return stream
    }

    private func removeListener(_ id: UUID) { listeners[id] = nil }

    /// Refuses new devices, tells waiting devices to come back later, and aborts running rounds.
    ///
    /// Ends being written (a round finishing as this starts, and the aborted rounds' own ends)
    /// are awaited for up to `grace`; a store that hangs longer is logged and left behind, which
    /// is safe: nobody was told COUNTED for an end that is not committed, and the next start
    /// recovers the rounds.
    func shutDown(grace: Duration) async {
        shuttingDown = true
        gatherTimer?.cancel()
        for link in room.removeAll() {
            link.end(TransportCodec.endedFrame(.noRound, reason: "the aggregator is shutting down", retryAfterMilliseconds: Retry.jittered(milliseconds: 5_000)))
        }
        let drivers = Array(rounds.values)
        let drained = OnceFlag()
        Task {
            await withTaskGroup(of: Void.self) { group in
                for driver in drivers { group.addTask { await driver.cancel(reason: "the aggregator is shutting down") } }
            }
            await self.endsDrained()
            drained.set()
        }
        let deadline = ContinuousClock.now + grace
        while !drained.isSet && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if !drained.isSet {
            logger.error("shutdown grace passed with round ends still being written; the next start recovers them",
                         metadata: ["inFlight": "\(endsInFlight)"])
        }
        for continuation in listeners.values { continuation.finish() }
    }

    /// Returns once no round end is being written.
    private func endsDrained() async {
        while endsInFlight > 0 { try? await Task.sleep(for: .milliseconds(10)) }
    }

    // MARK: Forming rounds

    private func scheduleGatherTimer() {
        let delay = Duration.milliseconds(Int64(policy.gatherSeconds * 1000))
        gatherTimer = Task { [weak self] in
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            await self?.gatherDeadline()
        }
    }

    private func gatherDeadline() {
        gatherTimer = nil
        formRounds(gatherDeadlinePassed: true)
        let limit = Duration.milliseconds(Int64(policy.maximumWaitSeconds * 1000))
        for link in room.expire(waitingLongerThan: limit, at: .now) {
            link.end(TransportCodec.endedFrame(.noRound, reason: "no round formed while the device waited", retryAfterMilliseconds: Retry.jittered(milliseconds: UInt32(policy.gatherSeconds * 1000) + 1000)))
        }
        metrics.waiting.record(room.count)
        if !room.isEmpty { scheduleGatherTimer() }
    }

    private func formRounds(gatherDeadlinePassed: Bool) {
        for cohort in takeCohorts(gatherDeadlinePassed: gatherDeadlinePassed) {
            Task { await self.startRound(with: cohort.links, window: cohort.window) }
        }
    }

    /// Takes the cohorts that can start now out of the waiting room, each for one window; each
    /// counts against the concurrency limit from this moment.
    private func takeCohorts(gatherDeadlinePassed: Bool) -> [(window: Int, links: [DeviceLink])] {
        var cohorts: [(window: Int, links: [DeviceLink])] = []
        while rounds.count + starting < policy.maximumConcurrentRounds,
              let cohort = room.takeCohort(
                maximum: policy.maximumCohort, minimum: policy.minimumCohort, deadlinePassed: gatherDeadlinePassed,
                usable: { !$0.isClosed }) {
            starting += 1
            cohorts.append((cohort.window, cohort.members))
        }
        metrics.waiting.record(room.count)
        return cohorts
    }

    /// Starts a round for `window` with `cohort` (taken by ``takeCohorts(gatherDeadlinePassed:)``);
    /// true if it started.
    @discardableResult
    private func startRound(with cohort: [DeviceLink], window: Int) async -> Bool {
        defer { starting -= 1 }
        // One reading of the clock checks the window, dates the claim and starts the round.
        let now = clock()
        if policy.featureSet != nil, !policy.isOpen(window: window, at: now) {
            // The window passed its horizon while the cohort waited: its devices wait on for
            // their other windows.
            requeue(cohort, without: window)
            return false
        }
        guard let cohort = await admissible(cohort) else { return false }
        var random = SystemRandomSource()
        var generator = SystemRandomNumberGenerator()
        let roundID = RoundID(using: &random)
        let task = policy.featureSet.map { self.task(of: $0, window: window) } ?? policy.task
        // Persist before claiming or telling (SPEC.md §12.2): the round is in the history, with
        // this instance, before it holds any claim or assigns any device, so a crash from here on
        // leaves a row that recovery ends and whose claims it releases.
        do {
            try await store.recordRoundStart(RoundStart(
                roundID: "\(roundID)", task: task, startedAt: now, cohortSize: cohort.count, instance: instance, leaseSeconds: policy.leaseSeconds))
        } catch {
            metrics.storeError(operation: "record-round-start")
            logger.error("cannot record a round's start; the cohort waits", metadata: ["round": "\(roundID)", "error": "\(error)"])
            requeue(cohort)
            return false
        }
        FaultPoint.reach(.afterRoundStart)
        renewLease(of: "\(roundID)")
        guard await chargePrivacy(window: window, roundID: "\(roundID)", cohort: cohort, now: now) else {
            await discard("\(roundID)")
            return false
        }
        var members = cohort
        if let set = policy.featureSet {
            guard let claimed = await claim(members, for: set, window: window, task: task, roundID: roundID, now: now) else {
                await discard("\(roundID)")
                return false
            }
            members = claimed
            FaultPoint.reach(.afterClaim)
        }
        let links = members.shuffled(using: &generator)
        let driver: RoundDriver
        do {
            let (graph, threshold) = try policy.parameters(forCohortOf: links.count)
            // Active rounds on a sparse graph commit to the placement secret now, before any key
            // is seen (SPEC.md §5.1); a fresh secret for every round.
            let placementSecret = RoundConfiguration.requiresPlacementCommitment(threatModel: policy.threatModel, graph: graph)
                ? random.bytes(count: Placement.byteCount) : nil
            let configuration = try RoundConfiguration(
                roundID: roundID, roundSeed: random.bytes(count: 32), cohortSize: links.count,
                dimension: policy.effectiveDimension, bitWidth: policy.effectiveBitWidth, prg: policy.prg, graph: graph,
                threshold: threshold, threatModel: policy.threatModel, placementCommitment: placementSecret.map(Placement.commitment(to:)))
            driver = try RoundDriver(
                configuration: configuration, placementSecret: placementSecret, task: task, links: links,
                phaseTimeout: .milliseconds(Int64(policy.phaseTimeoutSeconds * 1000)),
                minimumSurvivors: policy.featureSet?.privacy?.minimumSurvivors ?? 0, metrics: metrics, logger: logger
            ) { [weak self] completed in
                await self?.roundEnded(completed) ?? .notCommitted("the coordinator is gone")
            }
        } catch {
            logger.error("cannot start a round", metadata: ["cohort": "\(links.count)", "error": "\(error)"])
            for link in links {
                link.end(TransportCodec.endedFrame(.noRound, reason: "the aggregator could not plan a round: \(error)", retryAfterMilliseconds: Retry.jittered(milliseconds: 10_000)))
            }
            await discard("\(roundID)")
            return false
        }
        rounds[roundID] = driver
        metrics.activeRounds.record(rounds.count)
        Task { await driver.start() }
        return true
    }

    /// Charges `window` to the feature set's privacy ledger before any device of its round is
    /// assigned (SPEC.md §12.4: persisted before told); true when the round may go on. When the
    /// budget would be exceeded the cohort is told NO_ROUND with the reason, the refusal is
    /// counted in metrics and kept for the API; when the store fails the cohort waits on.
    private func chargePrivacy(window: Int, roundID: String, cohort: [DeviceLink], now: Date) async -> Bool {
        guard let layout, let plan = layout.privacy, let charge = PrivacyCharge(layout, windowStart: window, roundID: roundID) else { return true }
        let set = layout.featureSet
        let outcome: PrivacyChargeOutcome
        do {
            outcome = try await store.chargePrivacy(charge, budgetEpsilon: plan.settings.budget?.epsilon, delta: plan.settings.delta, now: now)
        } catch {
            metrics.storeError(operation: "charge-privacy")
            logger.error("cannot charge a window to the privacy ledger; the cohort waits", metadata: ["window": "\(window)", "error": "\(error)"])
            requeue(cohort)
            return false
        }
        switch outcome {
        case let .charged(spent), let .alreadyCharged(spent):
            metrics.privacySpent(featureSet: set.name, epsilon: spent)
            return true
        case let .refused(spent, wouldBe):
            let refusal = BudgetRefusal(window: window, at: now.timeIntervalSince1970, spent: spent, wouldBe: wouldBe, budget: plan.settings.budget?.epsilon ?? 0)
            lastBudgetRefusal = refusal
            metrics.privacyRefused(featureSet: set.name)
            metrics.privacySpent(featureSet: set.name, epsilon: spent)
            logger.warning("privacy budget spent: round refused", metadata: ["featureSet": "\(set.name)", "window": "\(window)", "reason": "\(refusal.reason)"])
            for link in cohort {
                link.end(TransportCodec.endedFrame(.noRound, reason: refusal.reason, retryAfterMilliseconds: Retry.jittered(milliseconds: 3_600_000)))
            }
            return false
        }
    }

    /// The devices of `cohort` that may still take part, read from the store as the cohort
    /// forms (so that every instance, and this one after a restart, agrees): none when the
    /// configured feature set is retired (they come back much later), and never a device revoked
    /// while it waited (its stream ends with PERMISSION_DENIED). Nil, the cohort requeued, when
    /// the store cannot be read or too few remain.
    private func admissible(_ cohort: [DeviceLink]) async -> [DeviceLink]? {
        let active: Set<String>
        do {
            if let set = policy.featureSet {
                let entry = try await store.featureSets(includingRetired: true).first {
                    $0.featureSet.name == set.name && $0.featureSet.version == set.version
                }
                if entry?.retiredAt != nil {
                    for link in cohort {
                        link.end(TransportCodec.endedFrame(
                            .noRound, reason: "feature set \(set.name) v\(set.version) is retired",
                            retryAfterMilliseconds: Retry.jittered(milliseconds: 600_000)))
                    }
                    return nil
                }
            }
            active = try await store.activeDeviceIDs(among: cohort.map { $0.identity?.deviceID ?? "" })
        } catch {
            metrics.storeError(operation: "check-cohort")
            logger.error("cannot check the cohort against the store; it waits", metadata: ["error": "\(error)"])
            requeue(cohort)
            return nil
        }
        var members: [DeviceLink] = []
        for link in cohort {
            if let id = link.identity?.deviceID, active.contains(id) {
                members.append(link)
            } else {
                link.fail(RPCError(code: .permissionDenied, message: "device \(link.identity?.deviceID ?? "?") was revoked while it waited"))
                metrics.rejected(reason: "revoked")
            }
        }
        guard members.count >= max(policy.minimumCohort, 3) else {
            requeue(members)
            return nil
        }
        return members
    }

    /// Claims the feature window for `cohort` (SPEC.md §12.1) and returns the devices that may
    /// take part. Devices already counted in the window are told so and leave; devices still in
    /// another round of the window, and the whole cohort when too few remain or the store
    /// fails, go back to waiting. Nil when no round should start.
    private func claim(_ cohort: [DeviceLink], for set: FeatureSet, window: Int, task: String, roundID: RoundID, now: Date) async -> [DeviceLink]? {
        let ids = cohort.map { $0.identity?.deviceID ?? "" }
        let claims: WindowClaims
        do {
            claims = try await store.claimWindow(
                set, windowStart: window, roundID: "\(roundID)", deviceIDs: ids,
                staleBefore: now.addingTimeInterval(-policy.claimLifetimeSeconds), now: now)
        } catch {
            metrics.storeError(operation: "claim-window")
            logger.error("cannot claim the feature window; the cohort waits", metadata: ["task": "\(task)", "error": "\(error)"])
            requeue(cohort)
            return nil
        }
        var members: [DeviceLink] = []
        var busy: [DeviceLink] = []
        var full: [DeviceLink] = []
        let claimed = Set(claims.claimed)
        let fullIDs = Set(claims.full)
        for (link, id) in zip(cohort, ids) {
            if fullIDs.contains(id) {
                // The window's counted devices and live claims reach the feature set's maximum
                // cohort: this device cannot be counted in it unless a running round releases
                // claims. It waits on for its other windows, or comes back later.
                metrics.rejected(reason: "window-full")
                full.append(link)
            } else if let counting = claims.alreadyCounted[id] {
                link.end(TransportCodec.alreadyCountedFrame(task: task, countedRoundID: counting))
                metrics.rejected(reason: "already-counted")
            } else if claimed.contains(id), !link.isClosed {
                members.append(link)
            } else {
                busy.append(link)
            }
        }
        requeue(full, without: window)
        guard !shuttingDown, members.count >= max(policy.minimumCohort, 3) else {
            requeue(members + busy)
            return nil
        }
        requeue(busy)
        return members
    }

    /// Puts devices back at the front of the waiting room (or ends them when shutting down),
    /// under the windows they offered less `window` when given; a device left with no window
    /// comes back later.
    private func requeue(_ links: [DeviceLink], without window: Int? = nil) {
        let open = links.filter { !$0.isClosed }
        guard !open.isEmpty else { return }
        if shuttingDown {
            for link in open { link.end(TransportCodec.endedFrame(.noRound, reason: "the aggregator is shutting down", retryAfterMilliseconds: Retry.jittered(milliseconds: 5_000))) }
            return
        }
        for link in open.reversed() {
            if let window { link.windows.removeAll { $0 == window } }
            guard !link.windows.isEmpty else {
                link.end(TransportCodec.endedFrame(
                    .noRound, reason: "no offered window can take this device now (full or past its horizon)",
                    retryAfterMilliseconds: Retry.jittered(milliseconds: 60_000)))
                continue
            }
            room.add(link, windows: link.windows, since: link.waitingSince ?? .now, returning: true)
        }
        metrics.waiting.record(room.count)
        if gatherTimer == nil { scheduleGatherTimer() }
    }

    /// Renews `roundID`'s lease every third of its length until the round ends. A lease found
    /// lost (it expired in the store's clock, for example while this instance was paused, and
    /// another instance may have taken the claims over) cancels the round: its devices hear
    /// ABORTED, never COUNTED.
    private func renewLease(of roundID: String) {
        let store = store, instance = instance, lease = policy.leaseSeconds, metrics = metrics
        leases[roundID] = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(lease * 1000 / 3)))
                guard !Task.isCancelled else { return }
                do {
                    guard try await store.renewLease(roundID: roundID, instance: instance, leaseSeconds: lease) else {
                        await self?.leaseLost(roundID)
                        return
                    }
                } catch {
                    metrics.storeError(operation: "renew-lease")
                }
            }
        }
    }

    private func leaseLost(_ roundID: String) async {
        leases[roundID] = nil
        logger.error("the round lost its lease; it is cancelled and nobody is told COUNTED", metadata: ["round": "\(roundID)"])
        guard let id = RoundID(hex: roundID), let driver = rounds[id] else { return }
        await driver.cancel(reason: "the round lost its lease in the store")
    }

    /// Forgets a round that assigned no device: its history row and its claims.
    private func discard(_ roundID: String) async {
        leases.removeValue(forKey: roundID)?.cancel()
        do { try await store.discardRound(roundID: roundID) } catch {
            metrics.storeError(operation: "discard-round")
            logger.error("cannot discard a round that never ran; this instance's next start ends it", metadata: ["round": "\(roundID)", "error": "\(error)"])
        }
    }

    /// Commits the end of a round in one store transaction and says what its devices may be told
    /// (SPEC.md §12.2). A window that refuses the sum, or a store that fails, makes a finished
    /// round's devices hear ABORTED, never COUNTED.
    private func roundEnded(_ completed: CompletedRound) async -> RoundEndNotice {
        endsInFlight += 1
        defer { endsInFlight -= 1 }
        rounds[completed.configuration.roundID] = nil
        leases.removeValue(forKey: "\(completed.configuration.roundID)")?.cancel()
        metrics.activeRounds.record(rounds.count)
        let notice: RoundEndNotice
        var reported = completed
        /// The fallback when the end could not be committed as it happened: report the round as
        /// aborted for `reason` and record it so (the caller decides what a failure here means).
        func recordAborted(_ reason: String) async throws {
            let aborted = AggregationOutcome.aborted(.cancelled(reason))
            reported = completed.with(outcome: aborted)
            try await store.commitRound(commit(for: completed, outcome: aborted))
        }
        do {
            try await store.commitRound(commit(for: completed, outcome: completed.outcome))
            notice = .committed
        } catch let lost as RoundLeaseLost {
            metrics.mergeRefused()
            logger.error("the round lost its lease before it committed; it is recorded as aborted", metadata: ["round": "\(lost.roundID)"])
            // Refused if recovery already ended it, which is as good.
            try? await recordAborted("\(lost)")
            notice = .notCommitted("the round lost its lease")
        } catch let refusal as FeatureWindowError {
            // The window cannot take the sum (claims reserve capacity and exclude counted
            // devices, so this means another instance took this round's claims over): the round
            // is recorded as aborted, and its devices can be counted by a later round.
            metrics.mergeRefused()
            logger.error("the round's window refused its sum; the round is recorded as aborted", metadata: [
                "round": "\(completed.configuration.roundID)", "refusal": "\(refusal)"])
            do { try await recordAborted("its window refused the sum: \(refusal)") } catch {
                metrics.storeError(operation: "commit-round")
                logger.error("cannot record the aborted round; its claims expire on their own", metadata: ["error": "\(error)"])
            }
            notice = .notCommitted("its window refused the sum")
        } catch {
            metrics.storeError(operation: "commit-round")
            logger.error("cannot commit the round's end; its devices are not told they were counted", metadata: [
                "round": "\(completed.configuration.roundID)", "error": "\(error)"])
            if case .finished = completed.outcome {
                // Best effort, if the store is back: end the round as aborted now rather than at
                // the next restart. If the first commit did land (its outcome was unknown), this
                // is refused, and the devices learn ALREADY_COUNTED at their next check-in.
                try? await recordAborted("its result could not be stored: \(error)")
            }
            notice = .notCommitted("the store failed")
        }
        if notice == .committed, case .finished = completed.outcome, let layout = policy.featureLayout,
           FeatureWindowTask(parsing: completed.task) != nil {
            await windowUpdated(layout)
        }
        for continuation in listeners.values { continuation.yield(reported) }
        if !shuttingDown { formRounds(gatherDeadlinePassed: false) }
        return notice
    }

    /// The store writes that end `completed` with `outcome`: its history row, and when it
    /// finished its result and (for a feature round) its window merge.
    private func commit(for completed: CompletedRound, outcome: AggregationOutcome) -> RoundCommit {
        let roundID = "\(completed.configuration.roundID)"
        switch outcome {
        case let .finished(result):
            let record = RoundRecord(
                roundID: roundID, task: completed.task, startedAt: completed.startedAt, endedAt: completed.endedAt,
                cohortSize: completed.configuration.cohortSize, survivors: result.survivors.count, outcome: RoundRecord.finished, reason: "")
            let output = RoundResultRecord(
                roundID: roundID, dimension: completed.configuration.dimension, bitWidth: completed.configuration.bitWidth,
                packedSum: result.sum.packed(), survivorBitmap: SurvivorBitmap.encode(result.survivors, cohortSize: completed.configuration.cohortSize))
            var merge: WindowMerge?
            if let set = policy.featureSet, let window = FeatureWindowTask(parsing: completed.task) {
                merge = WindowMerge(featureSet: set, windowStart: window.windowStart, sum: result.sum,
                                    contributorIDs: result.survivors.map { completed.deviceIDs[Int($0)] },
                                    minimumReleaseCohort: policy.minimumReleaseCohort)
            }
            return RoundCommit(round: record, result: output, window: merge)
        case let .aborted(reason):
            return RoundCommit(round: RoundRecord(
                roundID: roundID, task: completed.task, startedAt: completed.startedAt, endedAt: completed.endedAt,
                cohortSize: completed.configuration.cohortSize, survivors: 0, outcome: RoundRecord.aborted, reason: reason.description))
        }
    }
}

/// A flag set once from one task and read from another.
final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
