import VeilAggregator
import VeilDevice
import VeilProtocol
import VeilSimulation
import VeilWire
import VeilStore

/// What the report needs from the round: from the in-process aggregator's ``CompletedRound``, or
/// read back from an external aggregator's store (which has no compute or per-phase figures).
struct RoundView {
    let configuration: RoundConfiguration
    let outcome: AggregationOutcome
    let statistics: UnmaskingStatistics
    let serverComputeSeconds: Double
    let phaseSeconds: [Phase: Double]
    let phaseClosedAt: [Phase: Double]
    let arrivals: [Phase: [Double]]
    let bytesReceived: [Phase: Int]
    let bytesSent: [Phase: Int]

    init(_ round: CompletedRound) {
        configuration = round.configuration
        outcome = round.outcome
        statistics = round.statistics
        serverComputeSeconds = round.serverComputeSeconds
        phaseSeconds = round.phaseSeconds
        phaseClosedAt = round.phaseClosedAt
        arrivals = round.arrivals
        bytesReceived = round.bytesReceived
        bytesSent = round.bytesSent
    }

    /// The round the devices took part in, as the external aggregator stored it.
    init(stored store: any AggregatorStore, outcomes: [RoundParticipation]) async throws {
        let configurations = Set(outcomes.compactMap(\.configuration))
        guard configurations.count == 1, let configuration = configurations.first else {
            throw ScenarioError(field: "aggregator", reason: "the devices were placed in \(configurations.count) rounds; configure the aggregator's minimumCohort and maximumCohort to the scenario's device count")
        }
        self.configuration = configuration
        let id = "\(configuration.roundID)"
        if let stored = try await store.result(roundID: id) {
            let sum: ModularVector
            let survivors: [UInt32]
            do {
                sum = try ModularVector(packed: stored.packedSum, count: stored.dimension, bitWidth: stored.bitWidth)
                survivors = try SurvivorBitmap.decode(stored.survivorBitmap, cohortSize: configuration.cohortSize)
            } catch {
                throw ScenarioError(field: "aggregator", reason: "the stored result of round \(id) is unreadable: \(error)")
            }
            outcome = .finished(AggregationResult(roundID: configuration.roundID, sum: sum, survivors: survivors, droppedInPhase: [:], misbehaving: [:]))
        } else {
            let reason = try await store.round(id: id)?.reason ?? "no record of the round"
            outcome = .aborted(.cancelled(reason))
        }
        statistics = UnmaskingStatistics()
        serverComputeSeconds = 0
        phaseSeconds = [:]
        phaseClosedAt = [:]
        arrivals = [:]
        bytesReceived = [:]
        bytesSent = [:]
    }
}
