import Testing
import VeilCrypto
@testable import VeilProtocol

@Suite struct ParameterFinderTests {
    @Test(arguments: [100, 1000, 100_000], [0.05, 0.1, 0.3])
    func chosenParametersPassTheirOwnValidation(cohort n: Int, dropout: Double) throws {
        let assumptions = CohortAssumptions(cohortSize: n, dropoutFraction: dropout, corruptFraction: 0.05, threatModel: .active)
        guard let found = try? ParameterFinder.find(for: assumptions) else {
            // Only a small cohort with heavy dropout may be unsatisfiable.
            #expect(n == 100 && dropout == 0.3)
            return
        }
        #expect(2 * found.threshold > found.degree)
        #expect(found.securityBits >= 40 && found.correctnessBits >= 20)
        let validated = try ParameterFinder.validate(degree: found.degree, threshold: found.threshold, for: assumptions)
        #expect(validated.threshold == found.threshold)
        // The configuration accepts what the finder returns.
        var random = SeededRandomSource(seed: 1, label: "finder")
        let needsCommitment = RoundConfiguration.requiresPlacementCommitment(threatModel: .active, graph: found.graph)
        _ = try RoundConfiguration(
            roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: n, dimension: 1, bitWidth: 32,
            prg: .aes128CTR, graph: found.graph, threshold: found.threshold, threatModel: .active,
            placementCommitment: needsCommitment ? Placement.commitment(to: random.bytes(count: 32)) : nil)
    }

    @Test func sparseDegreeGrowsSlowlyWithTheCohortAndWithDropout() throws {
        let small = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.05))
        let large = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 100_000, dropoutFraction: 0.05))
        let stormy = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.3))
        #expect(small.degree < 64 && large.degree < 64)
        #expect(large.degree >= small.degree)
        #expect(stormy.degree > small.degree)
        guard case .harary = large.graph else { Issue.record("expected a sparse graph for 100,000 devices"); return }
    }

    @Test func corruptionRaisesTheThresholdFraction() throws {
        let honest = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 10_000, dropoutFraction: 0.05, threatModel: .active))
        let hostile = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 10_000, dropoutFraction: 0.05, corruptFraction: 0.1, threatModel: .active))
        #expect(Double(hostile.threshold) / Double(hostile.degree) > Double(honest.threshold) / Double(honest.degree))
    }

    @Test func unsafeOverridesAreRefusedWithAnExplanation() throws {
        let assumptions = CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.05, corruptFraction: 0.1, threatModel: .active)
        #expect(throws: ConfigurationError.self) { try ParameterFinder.validate(degree: 40, threshold: 20, for: assumptions) }
        let lowThreshold = refusal { () throws(ConfigurationError) in try ParameterFinder.validate(degree: 40, threshold: 21, for: assumptions) }
        #expect(lowThreshold?.field == "threshold")
        #expect(lowThreshold?.reason.contains("raise t or k") == true)
        let isolating = refusal { () throws(ConfigurationError) in try ParameterFinder.validate(degree: 8, threshold: 5, for: CohortAssumptions(cohortSize: 1000, dropoutFraction: 0.5)) }
        #expect(isolating?.field == "degree")
    }

    /// The field and reason of an `unsafe` refusal, or nil if the call was accepted or failed otherwise.
    func refusal(_ body: () throws(ConfigurationError) -> GraphParameters) -> (field: String, reason: String)? {
        do {
            _ = try body()
            return nil
        } catch {
            switch error {
            case let .unsafe(field, reason): return (field, reason)
            case .invalid: return nil
            }
        }
    }

    @Test func impossibleAssumptionsAreRefused() {
        #expect(throws: ConfigurationError.self) { try ParameterFinder.find(for: CohortAssumptions(cohortSize: 100, dropoutFraction: 0.3)) }
        #expect(throws: ConfigurationError.self) { try ParameterFinder.find(for: CohortAssumptions(cohortSize: 100, dropoutFraction: 1.2)) }
        #expect(throws: ConfigurationError.self) { try ParameterFinder.find(for: CohortAssumptions(cohortSize: 2, dropoutFraction: 0.1)) }
    }

    /// Monte Carlo check of the correctness bound on real graphs: with the chosen k and t, random
    /// 10% dropout never leaves a device with fewer than t live neighbours.
    @Test func chosenThresholdSurvivesRandomDropoutOnRealGraphs() throws {
        let found = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 2000, dropoutFraction: 0.1))
        var random = SeededRandomSource(seed: 5, label: "montecarlo")
        for _ in 0..<5 {
            let configuration = try RoundConfiguration(
                roundID: RoundID(using: &random), roundSeed: random.bytes(count: 32), cohortSize: 2000, dimension: 1, bitWidth: 32,
                prg: .aes128CTR, graph: found.graph, threshold: found.threshold, threatModel: .honestButCurious)
            let graph = NeighbourGraph(configuration: configuration)
            let alive = (0..<2000).map { _ in random.nextUnitDouble() >= 0.1 }
            for d in 0..<UInt32(2000) {
                let live = graph.neighbours(of: d).count { alive[Int($0)] }
                #expect(live >= found.threshold)
            }
        }
    }
}

extension ParameterFinderTests {
    /// Planning for no dropout at all would pick a ring (k = 2) that a single dropout aborts.
    @Test func noDropoutIsPlannedAsTheMinimum() throws {
        let none = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 1000, dropoutFraction: 0))
        let minimum = try ParameterFinder.find(for: CohortAssumptions(cohortSize: 1000, dropoutFraction: ParameterFinder.minimumPlannedDropout))
        #expect(none == minimum)
        #expect(none.degree > 2)
    }
}
