import Foundation
import Testing
import VeilCrypto
import VeilFeatures
import VeilProtocol

@Suite struct FeatureEncodingTests {
    static let fleet = FeatureSet(name: "fleet-usage", version: 1, bitWidth: 64, maximumCohort: 100_000, features: [
        Feature(name: "session_seconds", kind: .numeric(minimum: 0, maximum: 3600, precision: 0.5), maximumValuesPerDevice: 50),
        Feature(name: "temperature_c", kind: .histogram(edges: [-20, 0, 10, 20, 30, 60]), maximumValuesPerDevice: 100),
        Feature(name: "app_category", kind: .categorical(vocabulary: ["maps", "music", "video"]), maximumValuesPerDevice: 20),
        Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 5),
    ])

    /// Sums devices' encoded vectors as the secure aggregation would.
    static func aggregate(_ layout: FeatureLayout, _ devices: [WindowObservations]) throws -> FeatureSetValues {
        var sum = ModularVector(zerosOfCount: layout.dimension, bitWidth: layout.featureSet.bitWidth)
        for d in devices { sum.add(try layout.encode(d)) }
        return try layout.decode(sum)
    }

    @Test func layoutPlacesEverySlot() throws {
        let layout = try FeatureLayout(Self.fleet)
        // contributors + numeric 4 + histogram 5 buckets + clipped + categorical 3 + clipped + events 2.
        #expect(layout.dimension == 1 + 4 + 6 + 4 + 2)
        #expect(layout.offsets == [1, 5, 11, 15])
    }

    @Test func everyKindDecodesToThePlaintextAggregate() throws {
        let layout = try FeatureLayout(Self.fleet)
        let devices = [
            WindowObservations(values: ["session_seconds": [10, 20.5], "temperature_c": [-5, 15, 15]], categories: ["app_category": ["maps", "video"]], events: ["crashes": 1]),
            WindowObservations(values: ["session_seconds": [30]], categories: ["app_category": ["maps"]]),
            WindowObservations(values: ["temperature_c": [25, 60]], events: ["crashes": 2]),
        ]
        let result = try Self.aggregate(layout, devices)
        #expect(result.contributors == 3)
        guard case let .numeric(count, sum, mean, variance, clipped) = result.values["session_seconds"] else { Issue.record("numeric"); return }
        let values = [10, 20.5, 30]
        let m = values.reduce(0, +) / 3
        #expect(count == 3 && clipped == 0)
        #expect(abs(sum - 60.5) < 1e-9)
        #expect(abs(mean! - m) < 1e-9)
        #expect(abs(variance! - values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 3) < 1e-9)
        #expect(result.values["temperature_c"] == .histogram(edges: [-20, 0, 10, 20, 30, 60], counts: [1, 0, 2, 1, 1], clipped: 0))
        #expect(result.values["app_category"] == .categorical(counts: ["maps": 2, "music": 0, "video": 1], clipped: 0))
        #expect(result.values["crashes"] == .eventCount(count: 3, clipped: 0))
    }

    @Test func clippingIsAppliedAndCounted() throws {
        let layout = try FeatureLayout(Self.fleet)
        let device = WindowObservations(
            values: ["session_seconds": [-10, 5000, .nan, 100] + [Double](repeating: 1, count: 60), "temperature_c": [-40, 99, 61]],
            categories: ["app_category": ["maps", "chess", "music"]],
            events: ["crashes": 9])
        let result = try Self.aggregate(layout, [device])
        guard case let .numeric(count, sum, _, _, clipped) = result.values["session_seconds"] else { Issue.record("numeric"); return }
        // -10 → 0 and 5000 → 3600 are clipped but counted; NaN is dropped; 64 values leave 13 over the limit of 50.
        #expect(count == 50)
        #expect(abs(sum - (0 + 3600 + 100 + 47)) < 1e-9)
        #expect(clipped == 2 + 1 + 13)
        #expect(result.values["temperature_c"] == .histogram(edges: [-20, 0, 10, 20, 30, 60], counts: [1, 0, 0, 0, 2], clipped: 3))
        #expect(result.values["app_category"] == .categorical(counts: ["maps": 1, "music": 1, "video": 0], clipped: 1))
        #expect(result.values["crashes"] == .eventCount(count: 5, clipped: 4))
    }

    @Test func definitionsThatCouldWrapAreRefused() {
        var set = Self.fleet
        set.bitWidth = 32
        #expect(throws: FeatureDefinitionError.self) { try FeatureLayout(set) }
        do {
            _ = try FeatureLayout(set)
        } catch {
            #expect(error.field == "features[0]")
            #expect(error.reason.contains("session_seconds") && error.reason.contains("would wrap"))
        }
        // The same set at 64 bits fits; a cohort large enough breaks even that.
        set.bitWidth = 64
        set.maximumCohort = 1 << 40
        #expect(throws: FeatureDefinitionError.self) { try FeatureLayout(set) }
    }

    @Test(arguments: [
        ("name", { @Sendable (s: inout FeatureSet) in s.name = "Fleet Usage" }),
        ("features[1].name", { @Sendable (s: inout FeatureSet) in s.features[1].name = "session_seconds" }),
        ("features[1].edges", { @Sendable (s: inout FeatureSet) in s.features[1].kind = .histogram(edges: [0, 10, 10]) }),
        ("features[2].vocabulary", { @Sendable (s: inout FeatureSet) in s.features[2].kind = .categorical(vocabulary: []) }),
        ("features[2].vocabulary", { @Sendable (s: inout FeatureSet) in s.features[2].kind = .categorical(vocabulary: ["a", "a"]) }),
        ("features[0].precision", { @Sendable (s: inout FeatureSet) in s.features[0].kind = .numeric(minimum: 0, maximum: 1, precision: 0) }),
        ("features[0].minimum", { @Sendable (s: inout FeatureSet) in s.features[0].kind = .numeric(minimum: 5, maximum: 1, precision: 1) }),
        ("features[3].maximumValuesPerDevice", { @Sendable (s: inout FeatureSet) in s.features[3].maximumValuesPerDevice = 0 }),
        ("version", { @Sendable (s: inout FeatureSet) in s.version = 0 }),
        ("bitWidth", { @Sendable (s: inout FeatureSet) in s.bitWidth = 65 }),
        ("features", { @Sendable (s: inout FeatureSet) in s.features = [] }),
    ] as [(String, @Sendable (inout FeatureSet) -> Void)])
    func badDefinitionsNameTheField(field: String, change: @Sendable (inout FeatureSet) -> Void) {
        var set = Self.fleet
        change(&set)
        do {
            _ = try FeatureLayout(set)
            Issue.record("accepted a bad definition (\(field))")
        } catch {
            #expect(error.field == field)
        }
    }

    @Test func jsonRoundTripsAndUnknownKindsAreNamed() throws {
        let data = try JSONEncoder().encode(Self.fleet)
        #expect(try JSONDecoder().decode(FeatureSet.self, from: data) == Self.fleet)
        let bad = #"{"name":"x","version":1,"bitWidth":64,"maximumCohort":10,"features":[{"name":"a","kind":"median","maximumValuesPerDevice":1}]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(FeatureSet.self, from: Data(bad.utf8)) }
    }

    @Test func observationsForUnknownFeaturesAreRefused() throws {
        let layout = try FeatureLayout(Self.fleet)
        #expect(throws: FeatureEncodingError.unknownFeature("speed")) { try layout.encode(WindowObservations(values: ["speed": [1]])) }
        #expect(throws: FeatureEncodingError.unknownFeature("app_category")) { try layout.encode(WindowObservations(values: ["app_category": [1]])) }
    }

    @Test(arguments: 0..<20)
    func randomCohortsDecodeExactly(seed: UInt64) throws {
        var random = SeededRandomSource(seed: seed, label: "features")
        let layout = try FeatureLayout(Self.fleet)
        var devices: [WindowObservations] = []
        var sessionValues: [Double] = []
        var buckets = [UInt64](repeating: 0, count: 5)
        var events: UInt64 = 0
        for _ in 0..<(1 + Int(random.nextUInt64(below: 40))) {
            let sessions = (0..<Int(random.nextUInt64(below: 8))).map { _ in Double(random.nextUInt64(below: 7200)) / 2 }
            let temperatures = (0..<Int(random.nextUInt64(below: 8))).map { _ in Double(random.nextUInt64(below: 80)) - 20 }
            let crashes = Int(random.nextUInt64(below: 5))
            sessionValues += sessions
            for t in temperatures { buckets[t < 0 ? 0 : t < 10 ? 1 : t < 20 ? 2 : t < 30 ? 3 : 4] += 1 }
            events += UInt64(crashes)
            devices.append(WindowObservations(values: ["session_seconds": sessions, "temperature_c": temperatures], events: ["crashes": crashes]))
        }
        let result = try Self.aggregate(layout, devices)
        #expect(result.contributors == UInt64(devices.count))
        guard case let .numeric(count, sum, mean, variance, clipped) = result.values["session_seconds"] else { Issue.record("numeric"); return }
        #expect(count == UInt64(sessionValues.count) && clipped == 0)
        #expect(abs(sum - sessionValues.reduce(0, +)) < 1e-6)
        if let mean, let variance {
            let m = sessionValues.reduce(0, +) / Double(sessionValues.count)
            #expect(abs(mean - m) < 1e-6)
            #expect(abs(variance - sessionValues.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(sessionValues.count)) < 1e-3)
        }
        #expect(result.values["temperature_c"] == .histogram(edges: [-20, 0, 10, 20, 30, 60], counts: buckets, clipped: 0))
        #expect(result.values["crashes"] == .eventCount(count: events, clipped: 0))
    }
}
