import Foundation
import VeilAggregator
import VeilCrypto
import VeilDevice
import VeilFeatures
import VeilProtocol
import VeilSimulation
import VeilStore

extension FeatureNetworkSimulation {
    /// One window: devices record, the clock passes the window's end, rounds run until every
    /// active device is counted or the window's rounds are used up, then the window is read over
    /// the API and checked.
    func runWindow(
        _ w: Int, fleet: Fleet, deviceIndex: [String: Int], synthesis: FeatureObservationSynthesis, layout: FeatureLayout,
        aggregator: Aggregator, api: FeatureAPIClient, clock: SimulatedClock, apiReads: inout Int
    ) async throws -> FeatureWindowReport {
        let windowStart = scenario.windowStart(w)
        let n = scenario.devices
        // Devices record their raw observations while the window is open, spread over it.
        clock.set(Date(timeIntervalSince1970: Double(windowStart)))
        var raw: [Int: WindowObservations] = [:]
        for d in 0..<n where synthesis.isActive(device: d, window: w) {
            let observed = synthesis.observations(device: d, window: w)
            raw[d] = observed
            try fleet.stores[d].record(Self.timestamped(observed, windowStart: windowStart, seconds: scenario.windowSeconds, device: d))
        }
        // The window closes: rounds now aggregate it.
        let after = Date(timeIntervalSince1970: Double(windowStart + scenario.windowSeconds) + 1)
        clock.set(after)
        let rounds = await aggregator.completedRounds()
        var iterator = rounds.makeAsyncIterator()
        var summaries: [FeatureRoundSummary] = []
        var counted: [Int] = []
        // The devices of the window's last release, by the release rule (SPEC.md §12.1).
        var releasedDevices: [Int] = []
        var problems: [String] = []
        var toldAlreadyCounted = 0
        // Devices whose own privacy budget for the set is spent refuse before checking in.
        var devicesRefusing = 0
        for d in 0..<n where raw[d] != nil {
            if try fleet.stores[d].budgetRefusal() != nil { devicesRefusing += 1 }
        }
        for attempt in 0..<scenario.roundsPerWindow {
            let participants = try (0..<n).filter { try fleet.stores[$0].pendingWindows(now: after).contains(windowStart) }
            guard participants.count >= 3 else { break }
            let plan = Dictionary(uniqueKeysWithValues: participants.map { ($0, dropPhase(device: $0, window: w, attempt: attempt)) })
            let roundStart = ContinuousClock.now
            let (outcomes, started) = try await runRound(window: windowStart, at: after, participants: participants, plan: plan, fleet: fleet, aggregator: aggregator, api: api)
            toldAlreadyCounted += outcomes.values.filter { $0 == .alreadyCounted }.count
            guard started, let completed = await iterator.next() else {
                summaries.append(FeatureRoundSummary(
                    attempt: attempt, round: "-", devices: participants.count, survivors: 0, outcome: "not started",
                    sumCorrect: true, neighbors: 0, threshold: 0, seconds: (ContinuousClock.now - roundStart).seconds, serverSeconds: 0, bytesUpPerDevice: 0))
                break
            }
            let configuration = completed.configuration
            var survivors = 0
            var sumCorrect = false
            var outcomeText = "finished"
            switch completed.outcome {
            case let .finished(result):
                let devices = result.survivors.compactMap { deviceIndex[completed.deviceIDs[Int($0)]] }
                if devices.count != result.survivors.count { problems.append("round \(configuration.roundID) counted devices the simulation does not know") }
                survivors = devices.count
                counted += devices
                if WindowRelease.allows(
                    contributors: counted.count, previouslyReleased: releasedDevices.isEmpty ? nil : releasedDevices.count,
                    minimumReleaseCohort: scenario.minimumReleaseCohort) {
                    releasedDevices = counted
                }
                if layout.privacy == nil {
                    var expected = ModularVector(zerosOfCount: layout.dimension, bitWidth: scenario.featureSet.bitWidth)
                    for d in devices { expected.add(try layout.encode(raw[d] ?? WindowObservations())) }
                    sumCorrect = Oracle.mismatches(output: result.sum, expected: expected).isEmpty
                } else {
                    // Each device's noise stays on the device: the sum is checked through the
                    // window's estimates and their bounds below.
                    sumCorrect = true
                    outcomeText = "finished (noised)"
                }
                for d in devices where outcomes[d] == .counted {
                    if try !fleet.stores[d].isCounted(window: windowStart) { problems.append("device \(d) heard COUNTED but did not record the window") }
                }
            case let .aborted(reason):
                outcomeText = "aborted: \(reason)"
            }
            summaries.append(FeatureRoundSummary(
                attempt: attempt, round: "\(configuration.roundID)", devices: configuration.cohortSize, survivors: survivors,
                outcome: outcomeText, sumCorrect: sumCorrect, neighbors: configuration.degree, threshold: configuration.threshold,
                seconds: (ContinuousClock.now - roundStart).seconds, serverSeconds: completed.serverComputeSeconds,
                bytesUpPerDevice: Double(completed.bytesReceived.values.reduce(0, +)) / Double(max(1, configuration.cohortSize))))
        }
        if Set(counted).count != counted.count { problems.append("a device was counted in two rounds of the window") }
        let countedSet = Set(counted)
        // Devices record only what the aggregator confirmed.
        var unaware = 0
        for d in 0..<n where try fleet.stores[d].isCounted(window: windowStart) != countedSet.contains(d) {
            if countedSet.contains(d) { unaware += 1 } else { problems.append("device \(d) recorded the window as counted, the aggregator did not count it") }
        }

        // Read the window as a training job would, and the stored sum it comes from.
        let served = try await api.windows(from: windowStart, to: windowStart + 1)
        apiReads += 1
        let stored = try await aggregator.store.storedWindows(of: scenario.featureSet, from: windowStart, to: windowStart + 1).first
        let released = served.first
        if (released?.contributors ?? 0) != releasedDevices.count || (released?.pendingContributors ?? 0) != counted.count - releasedDevices.count {
            problems.append("the API reports \(released?.contributors ?? 0) contributors released and \(released?.pendingContributors ?? 0) pending; the rounds counted \(counted.count), the release rule allows \(releasedDevices.count)")
        }
        let expected = FeatureOracle.expected(counted.sorted().map { raw[$0] ?? WindowObservations() }, set: scenario.featureSet)
        if let plan = layout.privacy {
            return try await privateWindowReport(
                windowStart: windowStart, plan: plan, layout: layout, released: released, releasedDevices: releasedDevices, raw: raw,
                counted: counted, summaries: summaries, unaware: unaware, alreadyCounted: toldAlreadyCounted, problems: problems, api: api,
                apiReads: &apiReads, devicesRefusing: devicesRefusing)
        }
        if releasedDevices.isEmpty == (released?.values != nil) {
            problems.append(releasedDevices.isEmpty ? "values released below the minimum cohort" : "values withheld although \(releasedDevices.count) devices may be released")
        }
        if let values = released?.values {
            var expectedRelease = ModularVector(zerosOfCount: layout.dimension, bitWidth: scenario.featureSet.bitWidth)
            for d in releasedDevices { expectedRelease.add(try layout.encode(raw[d] ?? WindowObservations())) }
            if values != (try layout.decode(expectedRelease)) { problems.append("the API serves values that differ from the released devices' sum") }
        }
        let decodedStored = try stored.map { try layout.decode($0.sum) }
        let checks = FeatureOracle.check(decodedStored ?? FeatureSimulation.emptyValues(layout), expected: expected, set: scenario.featureSet)
        return FeatureWindowReport(
            windowStart: windowStart, activeDevices: raw.count, contributors: counted.count, released: released?.values != nil,
            rounds: summaries, features: checks, countedUnaware: unaware, alreadyCounted: toldAlreadyCounted, problems: problems,
            releasedContributors: released?.contributors ?? 0)
    }

    /// A window of a set with differential privacy: the release carries estimates (never exact
    /// values) and its privacy, checked against the plaintext over the released devices within
    /// the stated bounds; a window without rounds is refused by the budget when the API's budget
    /// names it as the last refusal.
    private func privateWindowReport(
        windowStart: Int, plan: PrivacyPlan, layout: FeatureLayout, released: ReleasedWindow?, releasedDevices: [Int], raw: [Int: WindowObservations],
        counted: [Int], summaries: [FeatureRoundSummary], unaware: Int, alreadyCounted: Int, problems: [String], api: FeatureAPIClient, apiReads: inout Int,
        devicesRefusing: Int
    ) async throws -> FeatureWindowReport {
        var problems = problems
        if released?.values != nil { problems.append("exact values served for a feature set with differential privacy") }
        if releasedDevices.isEmpty == (released?.estimates != nil) {
            problems.append(releasedDevices.isEmpty ? "estimates released below the minimum cohort" : "estimates withheld although \(releasedDevices.count) devices may be released")
        }
        if let privacy = released?.privacy, privacy.epsilon != plan.windowEpsilon || privacy.contributors != releasedDevices.count {
            problems.append("the release states ε \(privacy.epsilon) over \(privacy.contributors) devices; the plan says \(plan.windowEpsilon) over \(releasedDevices.count)")
        }
        let expected = FeatureOracle.expected(releasedDevices.sorted().map { raw[$0] ?? WindowObservations() }, set: scenario.featureSet)
        let (checks, statistics) = released?.estimates == nil ? ([], []) : FeatureOracle.checkEstimates(released?.estimates, expected: expected, set: scenario.featureSet)
        let budget = try await api.budget()
        apiReads += 1
        let refused = counted.isEmpty && (budget?.lastRefusal?.window == windowStart || devicesRefusing > 0)
        return FeatureWindowReport(
            windowStart: windowStart, activeDevices: raw.count, contributors: counted.count, released: released?.estimates != nil,
            rounds: summaries, features: checks, countedUnaware: unaware, alreadyCounted: alreadyCounted, problems: problems,
            privacy: WindowPrivacy(
                targetEpsilon: nil, windowEpsilon: plan.windowEpsilon, spentEpsilon: budget?.spentEpsilon ?? 0,
                budgetEpsilon: plan.settings.budget?.epsilon, refused: refused, statistics: statistics, devicesRefusing: devicesRefusing),
            releasedContributors: released?.contributors ?? 0)
    }

    /// Runs one round: every participant checks in, and once all of them wait (or were told they
    /// are already counted), the round is started over the API. Returns each device's outcome and
    /// whether a round started.
    private func runRound(
        window: Int, at now: Date, participants: [Int], plan: [Int: Phase?], fleet: Fleet, aggregator: Aggregator, api: FeatureAPIClient
    ) async throws -> (outcomes: [Int: RoundParticipation.Outcome], started: Bool) {
        let finished = ProgressCounter()
        return try await withThrowingTaskGroup(of: (Int, RoundParticipation.Outcome?).self) { group in
            for d in participants {
                group.addTask {
                    defer { finished.increment() }
                    do {
                        let result = try await fleet.device(d).participateInFeatureRound(store: fleet.stores[d], windows: [window], now: now, options: .init(disconnectBefore: plan[d] ?? nil))
                        return (d, result.outcome)
                    } catch {
                        return (d, nil)
                    }
                }
            }
            // Wait until every participant waits in the room or has finished already.
            let deadline = ContinuousClock.now + .seconds(300)
            while await aggregator.waitingDeviceCount() + finished.current < participants.count {
                guard ContinuousClock.now < deadline else { throw ScenarioError(field: "network", reason: "devices did not all check in within 300 s") }
                try await Task.sleep(for: .milliseconds(20))
            }
            let started = await aggregator.waitingDeviceCount() >= 3 ? try await api.startRound() : false
            if !started { group.cancelAll() }
            var outcomes: [Int: RoundParticipation.Outcome] = [:]
            for try await (d, outcome) in group { if let outcome { outcomes[d] = outcome } }
            return (outcomes, started)
        }
    }

    /// The phase before which `device` drops in round `attempt` of window `window`, if it does.
    func dropPhase(device: Int, window: Int, attempt: Int) -> Phase? {
        var random = SeededRandomSource(seed: scenario.seed, label: "network-drop-\(device)-\(window)-\(attempt)")
        return scenario.dropout.dropPhase(among: scenario.threatModel.phases, drawing: { random.nextUnitDouble() })
    }

    /// `observed` as timestamped observations spread over the window.
    static func timestamped(_ observed: WindowObservations, windowStart: Int, seconds: Int, device: Int) -> [Observation] {
        var result: [Observation] = []
        var i = 0
        func at() -> Date {
            i += 1
            return Date(timeIntervalSince1970: Double(windowStart) + Double((device * 7919 + i * 104_729) % seconds))
        }
        for (feature, values) in observed.values.sorted(by: { $0.key < $1.key }) { for v in values { result.append(.value(feature: feature, v, at: at())) } }
        for (feature, values) in observed.categories.sorted(by: { $0.key < $1.key }) { for v in values { result.append(.category(feature: feature, v, at: at())) } }
        for (feature, count) in observed.events.sorted(by: { $0.key < $1.key }) where count > 0 { result.append(.events(feature: feature, count: count, at: at())) }
        return result
    }

    /// The newest window, from memory, and the CSV export of every window, checked against the
    /// windows read before. Returns the number of API reads made.
    func checkLatestAndExport(api: FeatureAPIClient, windows: [FeatureWindowReport]) async throws -> Int {
        guard let last = windows.last(where: { $0.contributors > 0 }) else { return 0 }
        let latest = try await api.latest()
        guard latest?.windowStart == last.windowStart, latest?.contributors == last.releasedContributors,
              (latest?.contributors ?? 0) + (latest?.pendingContributors ?? 0) == last.contributors else {
            throw ScenarioError(field: "network", reason: "/latest served window \(latest?.windowStart ?? -1) with \(latest?.contributors ?? 0) contributors, not the last window \(last.windowStart)")
        }
        let csv = try await api.exportCSV(from: scenario.windowStart(0), to: scenario.windowStart(scenario.windows))
        var exported: [Int: Int] = [:]
        for row in csv.split(separator: "\n").dropFirst() {
            let fields = row.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count >= 6, let start = Int(fields[0]), let contributors = Int(fields[1]) else {
                throw ScenarioError(field: "network", reason: "the CSV export has a malformed row: \(row)")
            }
            exported[start] = contributors
        }
        let released = Dictionary(uniqueKeysWithValues: windows.filter(\.released).map { ($0.windowStart, $0.releasedContributors ?? 0) })
        guard exported == released else {
            throw ScenarioError(field: "network", reason: "the CSV export holds windows \(exported.keys.sorted()), the released ones are \(released.keys.sorted())")
        }
        return 2
    }
}
