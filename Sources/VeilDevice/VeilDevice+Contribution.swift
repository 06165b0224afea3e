import Foundation
import Logging
import VeilFeatures
import VeilProtocol
import VeilWire

extension VeilDevice {
    /// Takes part in one round with the contribution of `window` from `store`, and marks the
    /// window counted only when the aggregator reports the round finished with this input in the
    /// sum (or that an earlier round already counted it). Otherwise (not counted, aborted, no
    /// round, an error) the window stays pending and is offered again in a later round. A window
    /// already counted is refused before connecting.
    public func contribute(window: Int, from store: ObservationStore, options: ParticipationOptions = .init()) async throws(DeviceError) -> RoundParticipation {
        do {
            guard try !store.isCounted(window: window) else { throw DeviceError.localStore("window \(window) was already counted") }
        } catch let error as DeviceError {
            throw error
        } catch {
            throw .localStore(String(describing: error))
        }
        let layout = store.layout
        let result = try await participate(options: options) { assignment in
            let configuration = assignment.configuration
            guard configuration.dimension == layout.dimension, configuration.bitWidth == layout.featureSet.bitWidth else {
                throw DeviceError.input("the round wants \(configuration.dimension) elements of \(configuration.bitWidth) bits; feature set \(layout.featureSet.name) v\(layout.featureSet.version) has \(layout.dimension) of \(layout.featureSet.bitWidth)")
            }
            return try store.contribution(for: window)
        }
        try Self.recordCounted(result, in: store, onlyWindow: window)
        return result
    }

    /// Takes part in one feature round: the aggregator names the feature set and window in the
    /// assignment's task (``FeatureWindowTask``); the device contributes that window from `store`
    /// and marks it counted only on COUNTED, or on ALREADY_COUNTED (a round it did not hear the
    /// end of already counted it). When the task is for another feature set or version, or the
    /// window was already counted, the device leaves the round before sending anything (the
    /// aggregator sees a dropout) rather than count twice.
    public func participateInFeatureRound(store: ObservationStore, options: ParticipationOptions = .init()) async throws(DeviceError) -> RoundParticipation {
        let layout = store.layout
        let result = try await participate(options: options) { assignment in
            guard let task = FeatureWindowTask(parsing: assignment.task),
                  task.featureSet == layout.featureSet.name, task.version == layout.featureSet.version else {
                throw DeviceError.input("the round aggregates \"\(assignment.task)\", not \(layout.featureSet.name)/v\(layout.featureSet.version)")
            }
            guard try !store.isCounted(window: task.windowStart) else {
                throw DeviceError.localStore("window \(task.windowStart) was already counted")
            }
            let configuration = assignment.configuration
            guard configuration.dimension == layout.dimension, configuration.bitWidth == layout.featureSet.bitWidth else {
                throw DeviceError.input("the round's vector shape does not match feature set \(layout.featureSet.name) v\(layout.featureSet.version)")
            }
            return try store.contribution(for: task.windowStart)
        }
        try Self.recordCounted(result, in: store, onlyWindow: nil)
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
            do { try store.purge() } catch { logger.warning("cannot purge old observations", metadata: ["error": "\(error)"]) }
            await onRound(result)
        }) { () async throws(DeviceError) -> RoundParticipation in
            try await participateInFeatureRound(store: store, options: options)
        }
    }

    /// Marks a window counted in `store` when the aggregator counted it. On COUNTED that is
    /// `window` when given (the caller chose it), else the window the round's task names; on
    /// ALREADY_COUNTED it is the window the aggregator names, which must be of this feature set
    /// (and be `window`, when given).
    static func recordCounted(_ result: RoundParticipation, in store: ObservationStore, onlyWindow window: Int?) throws(DeviceError) {
        guard let round = result.countedRoundID else { return }
        let set = store.layout.featureSet
        let task = result.task.flatMap(FeatureWindowTask.init(parsing:))
        let counted: Int
        switch result.outcome {
        case .counted:
            guard let w = window ?? task?.windowStart else { return }
            counted = w
        case .alreadyCounted:
            guard let task, task.featureSet == set.name, task.version == set.version, window == nil || window == task.windowStart else {
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
