import Synchronization
import VeilFeatures
import VeilStore

/// The newest stored window of each feature-set version, kept in memory so that online serving
/// answers without a database round trip.
final class LatestWindows: Sendable {
    /// Feature-set name, then version, then its newest window.
    private let windows = Mutex<[String: [Int: ReleasedWindow]]>([:])

    /// The newest window of version `version` of `name` (the highest version known here when
    /// nil) known to this instance, with the version.
    func window(name: String, version: Int?) -> (version: Int, window: ReleasedWindow)? {
        windows.withLock { cache in
            guard let versions = cache[name], let v = version ?? versions.keys.max(), let window = versions[v] else { return nil }
            return (v, window)
        }
    }

    /// Re-reads the newest window of `layout`'s set from `store`.
    func refresh(_ layout: FeatureLayout, from store: any AggregatorStore, minimumReleaseCohort: Int) async {
        let set = layout.featureSet
        guard let newest = try? await store.newestWindow(of: set),
              let released = try? newest.released(by: layout, minimumReleaseCohort: minimumReleaseCohort) else { return }
        windows.withLock { cache in
            // Never move backwards: a slow refresh must not replace a newer window or a fuller sum.
            if let current = cache[set.name]?[set.version],
               (current.windowStart, current.contributors) > (released.windowStart, released.contributors) { return }
            cache[set.name, default: [:]][set.version] = released
        }
    }
}
