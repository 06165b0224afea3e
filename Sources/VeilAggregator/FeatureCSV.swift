import Foundation
import VeilFeatures
import VeilStore

/// Renders released windows as CSV for offline training: one row per window, feature and
/// statistic — `window_start,contributors,round_ids,feature,statistic,value` — where statistic is
/// count/sum/mean/variance/clipped for numeric features, `bucket:<lower>` for histograms,
/// `category:<name>` for categorical features and count/clipped for event counts.
/// With differential privacy a seventh column, `error_bound_95`, holds each estimate's 95 %
/// half-width (empty for a ratio such as `mean`).
enum FeatureCSV {
    static func render(_ windows: [ReleasedWindow], featureSet: FeatureSet) -> String {
        if featureSet.privacy != nil { return renderEstimates(windows, featureSet: featureSet) }
        var out = "window_start,contributors,round_ids,feature,statistic,value\n"
        for w in windows {
            guard let values = w.values else { continue }
            let prefix = "\(w.windowStart),\(w.contributors),\(w.roundIDs.joined(separator: " "))"
            for feature in featureSet.features {
                guard let value = values.values[feature.name] else { continue }
                for (statistic, number) in rows(value) {
                    out += "\(prefix),\(quoted(feature.name)),\(quoted(statistic)),\(number)\n"
                }
            }
        }
        return out
    }

    static func renderEstimates(_ windows: [ReleasedWindow], featureSet: FeatureSet) -> String {
        var out = "window_start,contributors,round_ids,feature,statistic,value,error_bound_95\n"
        for w in windows {
            guard let estimates = w.estimates else { continue }
            let prefix = "\(w.windowStart),\(w.contributors),\(w.roundIDs.joined(separator: " "))"
            for feature in featureSet.features {
                guard let estimate = estimates[feature.name] else { continue }
                for (statistic, value) in estimate.values.sorted(by: { $0.key < $1.key }) {
                    let bound = estimate.errorBounds[statistic].map { "\($0)" } ?? ""
                    out += "\(prefix),\(quoted(feature.name)),\(quoted(statistic)),\(value),\(bound)\n"
                }
            }
        }
        return out
    }

    static func rows(_ value: FeatureValue) -> [(String, String)] {
        switch value {
        case let .numeric(count, sum, mean, variance, clipped):
            return [("count", "\(count)"), ("sum", "\(sum)"), ("mean", mean.map { "\($0)" } ?? ""),
                    ("variance", variance.map { "\($0)" } ?? ""), ("clipped", "\(clipped)")]
        case let .histogram(edges, counts, clipped):
            return zip(edges, counts).map { ("bucket:\($0)", "\($1)") } + [("clipped", "\(clipped)")]
        case let .categorical(counts, clipped):
            return counts.sorted { $0.key < $1.key }.map { ("category:\($0.key)", "\($0.value)") } + [("clipped", "\(clipped)")]
        case let .eventCount(count, clipped):
            return [("count", "\(count)"), ("clipped", "\(clipped)")]
        }
    }

    /// Quotes a field when it holds a comma, quote or line break.
    static func quoted(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
