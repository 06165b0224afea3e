import Foundation
import Synchronization
import CoreMetrics
import GRPCCore
import Logging
import VeilCrypto
import VeilFeatures
import VeilProtocol
import VeilWire

/// The waiting room and the rounds in flight. Checked-in devices wait here; a round forms as soon
/// as `maximumCohort` devices wait, or when `gatherSeconds` have passed since the first of them
/// with at least `minimumCohort` waiting. Up to `maximumConcurrentRounds` rounds run at once;
/// devices that waited longer than `maximumWaitSeconds` are told to come back later.
actor RoundCoordinator {
    private let policy: RoundPolicy
    private let maximumWaiting: Int
    private let metrics: AggregatorMetrics
    private let logger: Logger
    private let store: any AggregatorStore
    private let windowUpdated: @Sendable (FeatureLayout) async -> Void
    private var waiting: [DeviceLink] = []
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
    }

    /// Admits an authenticated device to the waiting room.
    func admit(_ link: DeviceLink, deviceID: String) throws(RPCError) {
        guard !shuttingDown else { throw RPCError(code: .unavailable, message: "the aggregator is shutting down") }
        if let existing = live[deviceID], !existing.isClosed {
            metrics.rejected(reason: "duplicate-stream")
            throw RPCError(code: .alreadyExists, message: "device \(deviceID) already has a live stream")
        }
        guard waiting.count < maximumWaiting else {
            metrics.rejected(reason: "waiting-room-full")
            throw RPCError(code: .resourceExhausted, message: "the waiting room is full (\(maximumWaiting) devices); check in later")
        }
        live[deviceID] = link
        link.waitingSince = .now
        waiting.append(link)
        metrics.waiting.record(waiting.count)
        formRounds(gatherDeadlinePassed: false)
        if !waiting.isEmpty && gatherTimer == nil { scheduleGatherTimer() }
    }

    /// The stream of `deviceID` ended (for any reason).
    func streamClosed(_ link: DeviceLink, deviceID: String?) async {
        if let deviceID, live[deviceID] === link { live[deviceID] = nil }
        if let index = waiting.firstIndex(where: { $0 === link }) {
            waiting.remove(at: index)
            metrics.waiting.record(waiting.count)
        }
        if let (driver, index) = link.round { await driver.deviceLeft(index) }
    }

    /// Starts a round now with the devices waiting, if there are at least `minimumCohort`.
    /// Returns false when too few devices wait or the concurrency limit is reached.
    func startRoundNow() async -> Bool {
        var started = false
        for cohort in takeCohorts(gatherDeadlinePassed: true) {
            if await startRound(with: cohort) { started = true }
        }
        return started
    }

    /// For feature rounds: the window a round would aggregate now and the round that already
    /// counted `deviceID` in it, if one did; such a device is told so at check-in (SPEC.md §12.1).
    func countedWindow(of deviceID: String) async throws -> (task: String, roundID: String)? {
        guard let set = policy.featureSet else { return nil }
        let window = currentWindow(at: clock())
        guard let round = try await store.countingRound(of: deviceID, in: set, windowStart: window) else { return nil }
        return (FeatureWindowTask(featureSet: set.name, version: set.version, windowStart: window).description, round)
    }

    /// The start of the most recent window that has closed at `now`.
    private func currentWindow(at now: Date) -> Int {
        let seconds = Int(now.timeIntervalSince1970.rounded(.down))
        return FeatureSet.windowStart(of: seconds, windowSeconds: policy.windowSeconds) - policy.windowSeconds
    }

    /// The number of devices waiting for a round.
    var waitingCount: Int { waiting.count }

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
        for link in waiting {
            link.end(TransportCodec.endedFrame(.noRound, reason: "the aggregator is shutting down", retryAfterMilliseconds: Retry.jittered(milliseconds: 5_000)))
        }
        waiting.removeAll()
        let drivers = Array(rounds.values)
        let drained = DrainFlag()
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
        let now = ContinuousClock.now
        waiting.removeAll { link in
            guard let since = link.waitingSince, now - since > limit else { return link.isClosed }
            link.end(TransportCodec.endedFrame(.noRound, reason: "no round formed while the device waited", retryAfterMilliseconds: Retry.jittered(milliseconds: UInt32(policy.gatherSeconds * 1000) + 1000)))
            return true
        }
        metrics.waiting.record(waiting.count)
        if !waiting.isEmpty { scheduleGatherTimer() }
    }

    private func formRounds(gatherDeadlinePassed: Bool) {
        for cohort in takeCohorts(gatherDeadlinePassed: gatherDeadlinePassed) {
            Task { await self.startRound(with: cohort) }
        }
    }

    /// Takes the cohorts that can start now out of the waiting room; each counts against the
    /// concurrency limit from this moment.
    private func takeCohorts(gatherDeadlinePassed: Bool) -> [[DeviceLink]] {
        waiting.removeAll { $0.isClosed }
        var cohorts: [[DeviceLink]] = []
        while rounds.count + starting < policy.maximumConcurrentRounds,
              waiting.count >= policy.maximumCohort || (gatherDeadlinePassed && waiting.count >= policy.minimumCohort) {
            let cohort = Array(waiting.prefix(policy.maximumCohort))
            waiting.removeFirst(cohort.count)
            starting += 1
            cohorts.append(cohort)
        }
        metrics.waiting.record(waiting.count)
        return cohorts
    }

    /// Starts a round with `cohort` (taken by ``takeCohorts(gatherDeadlinePassed:)``); true if it started.
    @discardableResult
    private func startRound(with cohort: [DeviceLink]) async -> Bool {
        defer { starting -= 1 }
        guard let cohort = await admissible(cohort) else { return false }
        var random = SystemRandomSource()
        var generator = SystemRandomNumberGenerator()
        let roundID = RoundID(using: &random)
        // One reading of the clock names the window, dates the claim and starts the round.
        let now = clock()
        let window = currentWindow(at: now)
        let task = policy.featureSet.map { FeatureWindowTask(featureSet: $0.name, version: $0.version, windowStart: window).description } ?? policy.task
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
                phaseTimeout: .milliseconds(Int64(policy.phaseTimeoutSeconds * 1000)), metrics: metrics, logger: logger
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
        let claimed = Set(claims.claimed)
        let full = Set(claims.full)
        for (link, id) in zip(cohort, ids) {
            if full.contains(id) {
                // The window's counted devices and live claims reach the feature set's maximum
                // cohort: this device cannot be counted in it unless a running round releases
                // claims, so it comes back later rather than wait in the room.
                link.end(TransportCodec.endedFrame(
                    .noRound, reason: "window \(window) of \(set.name) v\(set.version) is full (maximumCohort \(set.maximumCohort))",
                    retryAfterMilliseconds: Retry.jittered(milliseconds: 60_000)))
                metrics.rejected(reason: "window-full")
            } else if let counting = claims.alreadyCounted[id] {
                link.end(TransportCodec.alreadyCountedFrame(task: task, countedRoundID: counting))
                metrics.rejected(reason: "already-counted")
            } else if claimed.contains(id), !link.isClosed {
                members.append(link)
            } else {
                busy.append(link)
            }
        }
        guard !shuttingDown, members.count >= max(policy.minimumCohort, 3) else {
            requeue(members + busy)
            return nil
        }
        requeue(busy)
        return members
    }

    /// Puts devices back at the front of the waiting room (or ends them when shutting down).
    private func requeue(_ links: [DeviceLink]) {
        let open = links.filter { !$0.isClosed }
        guard !open.isEmpty else { return }
        if shuttingDown {
            for link in open { link.end(TransportCodec.endedFrame(.noRound, reason: "the aggregator is shutting down", retryAfterMilliseconds: Retry.jittered(milliseconds: 5_000))) }
            return
        }
        waiting.insert(contentsOf: open, at: 0)
        metrics.waiting.record(waiting.count)
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
                                    contributorIDs: result.survivors.map { completed.deviceIDs[Int($0)] })
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
final class DrainFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
