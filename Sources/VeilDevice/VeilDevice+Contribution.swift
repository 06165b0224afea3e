import VeilFeatures
public import VeilProtocol
import VeilWire

extension VeilDevice {
    /// Takes part in one round with the contribution of `window` from `store`, and marks the
    /// window counted only when the aggregator reports the round finished with this input in the
    /// sum. Otherwise (not counted, aborted, no round, an error) the window stays pending and is
    /// offered again in a later round. A window already counted is refused before connecting.
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
        if result.outcome == .counted, let configuration = result.configuration {
            do { try store.markCounted(window: window, round: configuration.roundID) } catch {
                throw .localStore("the round counted window \(window) but marking it failed: \(error)")
            }
        }
        return result
    }
}

extension VeilDevice {
    /// Takes part in one feature round: the aggregator names the feature set and window in the
    /// assignment's task (``FeatureWindowTask``); the device contributes that window from `store`
    /// and marks it counted only on COUNTED. When the task is for another feature set or version,
    /// or the window was already counted, the device leaves the round before sending anything
    /// (the aggregator sees a dropout) rather than count twice.
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
        if result.outcome == .counted, let configuration = result.configuration, let task = result.task.flatMap(FeatureWindowTask.init(parsing:)) {
            do { try store.markCounted(window: task.windowStart, round: configuration.roundID) } catch {
                throw .localStore("the round counted window \(task.windowStart) but marking it failed: \(error)")
            }
        }
        return result
    }
}
