import Foundation
import Testing
import VeilAggregator
import VeilDevice
import VeilFeatures
import VeilNetworkSimulation
import VeilPrivacy
import VeilProtocol
import VeilStore

/// Distributed differential privacy end to end (SPEC.md §12.4): devices noise their vectors, the
/// aggregator charges each window to the ledger before its first round, releases estimates with
/// their ε and error bounds, and refuses rounds once the budget is spent.
@Suite(.serialized) struct DifferentialPrivacyTests {
    static let hour = 3600
    static let w0 = 1_800_000_000

    /// A set whose budget allows exactly `windows` windows.
    static func set(budgetWindows: Int) throws -> FeatureSet {
        var set = FeatureSet(name: "dp", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
            Feature(name: "crashes", kind: .eventCount, maximumValuesPerDevice: 3),
            Feature(name: "speed", kind: .numeric(minimum: 0, maximum: 100, precision: 1), maximumValuesPerDevice: 5),
        ])
        set.privacy = FeaturePrivacy(epsilon: 2, delta: 1e-6, minimumSurvivors: 8)
        let plan = try #require(try FeatureLayout(set).privacy)
        let allowed = plan.windowCurve.composed(times: budgetWindows).epsilon(delta: 1e-6).epsilon
        set.privacy?.budget = PrivacyBudget(epsilon: allowed * 1.0001)
        return set
    }

    @Test(arguments: StoreBackend.allCases)
    func theLedgerChargesEachWindowOnceAndRefusesBeyondTheBudget(_ backend: StoreBackend) async throws {
        try await withScratchStore(backend) { _, store in
            let layout = try FeatureLayout(try Self.set(budgetWindows: 2))
            let plan = try #require(layout.privacy)
            func charge(_ window: Int, _ round: String) async throws -> PrivacyChargeOutcome {
                try await store.chargePrivacy(
                    try #require(PrivacyCharge(layout, windowStart: window, roundID: round)), budgetEpsilon: plan.settings.budget?.epsilon,
                    delta: 1e-6, now: Date())
            }
            guard case let .charged(first) = try await charge(Self.w0, "r1") else { Issue.record("first window"); return }
            #expect(abs(first - plan.windowEpsilon) < 1e-9)
            guard case .alreadyCharged = try await charge(Self.w0, "r2") else { Issue.record("a second round of the window"); return }
            guard case let .charged(second) = try await charge(Self.w0 + Self.hour, "r3") else { Issue.record("second window"); return }
            #expect(second > first && second < 2 * first)
            guard case let .refused(spent, wouldBe) = try await charge(Self.w0 + 2 * Self.hour, "r4") else { Issue.record("third window"); return }
            #expect(spent == second && wouldBe > plan.settings.budget!.epsilon)
            let ledger = try await store.privacyLedger(featureSet: "dp")
            #expect(ledger.map(\.windowStart) == [Self.w0, Self.w0 + Self.hour] && ledger.map(\.roundID) == ["r1", "r3"])
            #expect(abs(PrivacyCharge.composed(ledger).epsilon(delta: 1e-6).epsilon - second) < 1e-9)
        }
    }

    @Test func aFleetSpendsItsBudgetAndReadsNoisedWindowsWithTheirEpsilonAndErrorBars() async throws {
        let set = try Self.set(budgetWindows: 2)
        let layout = try FeatureLayout(set)
        let token = "dp-token-0123456789abcdef"
        let harness = try await NetworkHarness.featureRounds(of: set, window: Self.w0, now: Date(timeIntervalSince1970: Double(Self.w0 + 3 * Self.hour + 600))) { c in
            c.apiToken = token
        }
        defer { Task { await harness.stop() } }
        _ = try await harness.aggregator.store.define(set)
        // Group A holds three windows, group B only the first. The devices' copy of the set has no
        // budget (they do not enforce one: aDeviceEnforcesItsOwnBudget… covers devices that do), so
        // the aggregator's ledger is what stops the third window.
        var deviceSet = set
        deviceSet.privacy?.budget = nil
        let a = try harness.eventStores(8, of: deviceSet, windows: [Self.w0, Self.w0 + Self.hour, Self.w0 + 2 * Self.hour], prefix: "a")
        let b = try harness.eventStores(8, of: deviceSet, windows: [Self.w0], prefix: "b")
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(16, connection: connection)
            func round(_ stores: [ObservationStore], _ offset: Int) async throws -> [RoundParticipation] {
                try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                    for (i, store) in stores.enumerated() {
                        group.addTask { try await harness.device(identity: identities[offset + i], connection: connection).participateInFeatureRound(store: store) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            let first = try await round(b, 8)
            #expect(first.allSatisfy { $0.outcome == .counted && $0.task == "dp/v1/\(Self.w0)" }, "\(first.map(\.outcome))")
            let second = try await round(a, 0)
            #expect(second.allSatisfy { $0.outcome == .counted && $0.task == "dp/v1/\(Self.w0)" }, "\(second.map(\.outcome))")
            let third = try await round(a, 0)
            #expect(third.allSatisfy { $0.outcome == .counted && $0.task == "dp/v1/\(Self.w0 + Self.hour)" }, "\(third.map(\.outcome))")
            // The third window would exceed the budget: no round, and the devices are told why.
            let fourth = try await round(a, 0)
            #expect(fourth.allSatisfy { if case .noRound = $0.outcome { true } else { false } }, "\(fourth.map(\.outcome))")
            #expect(fourth.allSatisfy { $0.reason.contains("privacy budget is spent") })
            for store in a { #expect(try !store.isSpent(window: Self.w0 + 2 * Self.hour), "a refused round spends nothing") }
        }
        for _ in 0..<100 where try await harness.countedWindow(of: set, window: Self.w0 + Self.hour)?.contributors != 8 {
            try await Task.sleep(for: .milliseconds(20))
        }

        // The released first window: estimates with error bars and the release's ε, no exact values.
        let response = try await harness.api("GET", "/v1/feature-sets/dp/windows?from=\(Self.w0)&to=\(Self.w0 + Self.hour)", token: token)
        #expect(response.status == 200)
        struct Body: Decodable { let windows: [ReleasedWindow] }
        let window = try #require(try JSONDecoder().decode(Body.self, from: Data(response.text.utf8)).windows.first)
        #expect(window.values == nil && window.contributors == 16)
        let privacy = try #require(window.privacy)
        #expect(privacy.epsilon <= 2 && privacy.delta == 1e-6 && privacy.contributors == 16 && privacy.minimumSurvivors == 8)
        let crashes = try #require(window.estimates?["crashes"])
        let count = try #require(crashes.values["count"]), bound = try #require(crashes.errorBounds["count"])
        #expect(abs(count - 16) <= 2 * bound, "16 events estimated as \(count) ± \(bound)")
        let stored = try await harness.aggregator.store.storedWindows(of: set, from: Self.w0, to: Self.w0 + 1)
        let recomputed = try layout.estimate(try #require(stored.first?.release).sum, contributors: 16)
        #expect(bound > 0 && bound == recomputed?["crashes"]?.errorBounds["count"])

        // The budget over the API and in metrics.
        let budget = try await harness.api("GET", "/v1/feature-sets/dp/budget", token: token)
        #expect(budget.status == 200)
        let status = try #require(try JSONSerialization.jsonObject(with: Data(budget.text.utf8)) as? [String: Any])
        #expect(status["exhausted"] as? Bool == true && status["remainingWindows"] as? Int == 0)
        #expect((status["windows"] as? [[String: Any]])?.count == 2)
        #expect((status["lastRefusal"] as? [String: Any])?["window"] as? Int == Self.w0 + 2 * Self.hour)
        #expect(abs((status["spentEpsilon"] as? Double ?? 0) - set.privacy!.budget!.epsilon) < 0.01)
        #expect(try await harness.api("GET", "/v1/feature-sets/nope/budget", token: token).status == 404)
        let metrics = try await harness.scrape().body
        #expect(metrics.contains("veil_privacy_budget_refusals_total{feature_set=\"dp\"} 1"))
        #expect(metrics.contains("veil_privacy_epsilon_spent{feature_set=\"dp\"}"))
    }

    /// Rounds smaller than the survivors the noise is sized for could never release: refused.
    @Test func theConfigurationRefusesCohortsBelowTheMinimumSurvivors() throws {
        var c = AggregatorConfiguration()
        c.insecurePlaintext = true
        c.rounds.featureSet = try Self.set(budgetWindows: 2)
        c.rounds.minimumCohort = 7
        c.rounds.maximumCohort = 20
        do { try c.validate(); Issue.record("accepted") } catch let AggregatorConfigurationError.invalid(field, reason) {
            #expect(field == "rounds.minimumCohort" && reason.contains("minimumSurvivors (8)"))
        }
        c.rounds.minimumCohort = 8
        try c.validate()
    }

    /// The budget protects the devices, so the devices enforce it too: an aggregator configured
    /// without the budget (or ignoring its ledger) gets no third window from them.
    @Test func aDeviceEnforcesItsOwnBudgetWhateverTheAggregatorDoes() async throws {
        let budgeted = try Self.set(budgetWindows: 2)
        var unlimited = budgeted
        unlimited.privacy?.budget = nil
        let harness = try await NetworkHarness.featureRounds(of: unlimited, window: Self.w0, now: Date(timeIntervalSince1970: Double(Self.w0 + 3 * Self.hour + 600)))
        defer { Task { await harness.stop() } }
        let stores = try harness.eventStores(8, of: budgeted, windows: [Self.w0, Self.w0 + Self.hour, Self.w0 + 2 * Self.hour])
        try await withAggregatorConnection(to: harness.endpoint) { connection in
            let identities = try await harness.enrolledIdentities(8, connection: connection)
            func round() async throws -> [RoundParticipation] {
                try await withThrowingTaskGroup(of: RoundParticipation.self) { group in
                    for (i, store) in stores.enumerated() {
                        group.addTask { try await harness.device(identity: identities[i], connection: connection).participateInFeatureRound(store: store) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
            }
            for w in 0..<2 {
                let results = try await round()
                #expect(results.allSatisfy { $0.outcome == .counted && $0.task == "dp/v1/\(Self.w0 + w * Self.hour)" }, "\(results.map(\.outcome))")
            }
            let third = try await round()
            #expect(third.allSatisfy { if case .noRound = $0.outcome { $0.bytesSent == 0 } else { false } }, "\(third.map(\.outcome))")
            #expect(third.allSatisfy { $0.reason.contains("this device's privacy budget") })
            for store in stores { #expect(try !store.isSpent(window: Self.w0 + 2 * Self.hour)) }
        }
    }
}
