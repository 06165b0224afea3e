public import Foundation
import Logging
import VeilFeatures
import VeilProtocol
import VeilWire
import VeilCrypto
import VeilPrivacy

extension VeilDevice {
    /// Takes part in one round with the contribution of `window` from `store`, and marks the
    /// window counted only when the aggregator reports the round finished with this input in the
    /// sum (or that an earlier round already counted it). Otherwise (not counted, aborted, no
    /// round, an error) the window stays pending and is offered again in a later round, unless
    /// its masked input was sent: then it is spent (SPEC.md §12.1) and never contributed again.
    /// A window already counted or spent, not closed or not aligned is refused before
    /// connecting; a round whose task names another window or feature set is left before
    /// anything is sent.
    public func contribute(window: Int, from store: ObservationStore, options: ParticipationOptions = .init()) async throws(DeviceError) -> RoundParticipation {
        let now = clock()
        do {
            guard try !store.isCounted(window: window) else { throw DeviceError.localStore("window \(window) was already counted") }
            _ = try store.checkedOffer([window], now: now)
        } catch let error as DeviceError {
            throw error
        } catch let error as ObservationError {
            throw .input(error.description)
        } catch {
            throw .localStore(String(describing: error))
        }
        let result = try await participate(
            options: options, offering: [], beforeMaskedInput: Self.spending(store), minimumSurvivors: Self.minimumSurvivors(of: store)
        ) { assignment in
            try Self.checkTask(assignment, names: [window], of: store, now: now)
            return try Self.contribution(of: window, from: store)
        }
        try Self.recordCounted(result, in: store, offered: [window])
        return result
    }

    /// Checks, before anything is sent, that `assignment` is a feature round of `store`'s set and
    /// version for one of `windows`, that the window is closed at `now`, aligned, neither counted
    /// nor spent, and that the round's vector has the set's shape (SPEC.md §12.1). Returns the window.
    @discardableResult
    static func checkTask(_ assignment: RoundAssignmentContent, names windows: [Int], of store: ObservationStore, now: Date) throws -> Int {
        let layout = store.layout
        guard let task = FeatureWindowTask(parsing: assignment.task),
              task.featureSet == layout.featureSet.name, task.version == layout.featureSet.version else {
            throw DeviceError.input("the round aggregates \"\(assignment.task)\", not \(layout.featureSet.name)/v\(layout.featureSet.version)")
        }
        let window = task.windowStart
        guard windows.contains(window) else {
            throw DeviceError.input("the round aggregates window \(window), which this device did not offer")
        }
        guard window % store.windowSeconds == 0, window + store.windowSeconds <= Int(now.timeIntervalSince1970.rounded(.down)) else {
            throw DeviceError.input("the round aggregates window \(window), which is not a closed \(store.windowSeconds) s window")
        }
        guard try !store.isCounted(window: window) else { throw DeviceError.localStore("window \(window) was already counted") }
        guard try !store.isSpent(window: window) else { throw DeviceError.localStore(ObservationError.spent(window: window).description) }
        if let refusal = try store.budgetRefusal() { throw DeviceError.input(refusal.description) }
        let configuration = assignment.configuration
        guard configuration.dimension == layout.dimension, configuration.bitWidth == layout.featureSet.bitWidth else {
            throw DeviceError.input("the round wants \(configuration.dimension) elements of \(configuration.bitWidth) bits; feature set \(layout.featureSet.name) v\(layout.featureSet.version) has \(layout.dimension) of \(layout.featureSet.bitWidth)")
        }
        return window
    }

    /// The vector the device contributes for `window`: its encoded observations, and with
    /// distributed differential privacy (SPEC.md §12.4) scaled, rounded and noised on the device
    /// with bits from the system CSPRNG, so the noise never leaves it.
    static func contribution(of window: Int, from store: ObservationStore) throws -> ModularVector {
        let encoded = try store.contribution(for: window)
        guard store.layout.privacy != nil else { return encoded }
        var random = SystemRandomSource()
        var bits = NoiseBits(using: &random)
        return store.layout.privatize(encoded, bits: &bits)
    }

    /// The fewest survivors whose sum the device helps unmask for `store`'s set: its noise is
    /// sized for that many.
    static func minimumSurvivors(of store: ObservationStore) -> Int {
        store.layout.featureSet.privacy?.minimumSurvivors ?? 0
    }

    /// Marks the assignment's window spent in `store` before its masked input is sent.
    static func spending(_ store: ObservationStore) -> SpendHook {
        { assignment in
            guard let task = FeatureWindowTask(parsing: assignment.task) else { throw DeviceError.input("the round names no window") }
            try store.markSpent(window: task.windowStart, round: assignment.configuration.roundID)
        }
    }

    /// Takes part in one feature round (SPEC.md §12.1). The device offers `windows` (by default
    /// every window ``ObservationStore/offerableWindows(now:)`` holds: those with pending
    /// observations, oldest first, and the most recent closed one), and the aggregator names one
    /// of them in the assignment's task (``FeatureWindowTask``); the device contributes that
    /// window from `store` and marks it counted only on COUNTED, or on ALREADY_COUNTED (a round it
    /// did not hear the end of already counted it). When the task is for another feature set or
    /// version, or for a window the device did not offer, the device leaves the round before
    /// sending anything (the aggregator sees a dropout) rather than count twice. With nothing to
    /// offer (every closed window counted) it does not connect and reports ``RoundParticipation/Outcome/noRound(retryAfterMilliseconds:)``
    /// until the current window closes. `now` replaces the device's clock for this round.
    public func participateInFeatureRound(
        store: ObservationStore, windows: [Int]? = nil, now: Date? = nil, options: ParticipationOptions = .init()
    ) async throws(DeviceError) -> RoundParticipation {
        let layout = store.layout
        let now = now ?? clock()
        let offer: [Int]
        do {
            offer = try windows.map { try store.checkedOffer($0, now: now) } ?? store.offerableWindows(now: now)
        } catch let error as ObservationError {
            throw .input(error.description)
        } catch {
            throw .localStore(String(describing: error))
        }
        // Without connecting: come back when the current window closes.
        let nextClose = store.windowStart(of: now) + store.windowSeconds
        func noRound(_ reason: String) -> RoundParticipation {
            let wait = max(1, Double(nextClose) - now.timeIntervalSince1970)
            return RoundParticipation(
                outcome: .noRound(retryAfterMilliseconds: UInt32(min(wait * 1000, Double(UInt32.max)))), reason: reason,
                configuration: nil, deviceIndex: nil, task: nil, countedRoundID: nil, survivors: 0, bytesSent: 0, bytesReceived: 0, computeSeconds: 0)
        }
        // The device's own budget (SPEC.md §12.4): whatever the aggregator's ledger says.
        do {
            if let refusal = try store.budgetRefusal() { return noRound(refusal.description) }
        } catch {
            throw .localStore(String(describing: error))
        }
        guard !offer.isEmpty else {
            return noRound("every closed window of \(layout.featureSet.name) v\(layout.featureSet.version) is counted; nothing to offer until \(nextClose)")
        }
        let result = try await participate(
            options: options, offering: offer, beforeMaskedInput: Self.spending(store), minimumSurvivors: Self.minimumSurvivors(of: store)
        ) { assignment in
            try Self.contribution(of: try Self.checkTask(assignment, names: offer, of: store, now: now), from: store)
        }
        try Self.recordCounted(result, in: store, offered: offer)
        return result
    }

    /// Takes part in feature rounds until the task is cancelled, as ``run(interval:options:input:onRound:)``
    /// does for plain rounds: each round contributes the window the aggregator names from
    /// `store`; after each, raw observations older than the store's retention are purged.
    public func runFeatureRounds(
        store: ObservationStore, interval: Duration = .seconds(60), options: ParticipationOptions = .init(),
        onRound: @Sendable (RoundParticipation) async -> Void = { _ in }
    ) async throws {
        try await loop(interval: interval, onRound: { result in
            do { try store.purge(now: clock()) } catch { logger.warning("cannot purge old observations", metadata: ["error": "\(error)"]) }
            await onRound(result)
        }) { () async throws(DeviceError) -> RoundParticipation in
            try await participateInFeatureRound(store: store, options: options)
        }
    }

    /// Marks a window counted in `store` when the aggregator counted it, which must be one of
    /// the windows the device `offered`. On COUNTED that is the only offered window, or else the
    /// window the round's task names; on ALREADY_COUNTED it is the window the aggregator names,
    /// which must be of this feature set.
    static func recordCounted(_ result: RoundParticipation, in store: ObservationStore, offered: [Int]) throws(DeviceError) {
        guard let round = result.countedRoundID else { return }
        let set = store.layout.featureSet
        let task = result.task.flatMap(FeatureWindowTask.init(parsing:))
        let counted: Int
        switch result.outcome {
        case .counted:
            guard let w = offered.count == 1 ? offered[0] : task?.windowStart, offered.contains(w) else {
                throw .unexpectedFrame("counted for \(result.task ?? "nothing"), not for a window this device offered")
            }
            counted = w
        case .alreadyCounted:
            guard let task, task.featureSet == set.name, task.version == set.version, offered.contains(task.windowStart) else {
                throw .unexpectedFrame("already-counted for \(result.task ?? "nothing"), not for a window this device offered")
            }
            counted = task.windowStart
        default:
            return
        }
        do {
            guard try !store.isCounted(window: counted) else { return }
            try store.markCounted(window: counted, round: round)
        } catch {
            throw .localStore("the aggregator counted window \(counted) but marking it failed: \(error)")
        }
    }
}
