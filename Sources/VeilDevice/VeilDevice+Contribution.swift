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
