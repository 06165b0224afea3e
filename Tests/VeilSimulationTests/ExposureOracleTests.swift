import Testing
import VeilCrypto
import VeilProtocol
@testable import VeilSimulation

/// The exposure oracle can fail: given a real leak it recovers an honest input exactly, and one
/// share short of the threshold, or with a masked input that is not the device's, it does not.
@Suite struct ExposureOracleTests {
    /// An honest session of the adversary test scenario (no dropout) run to its end by the real
    /// server, and the fleet it ran on.
    static func honestSession() throws -> (run: AdversaryRun, session: AdversarialSession) {
        var run = try AdversaryRun(AdversarialAggregator(scenario: try adversaryScenario { $0["dropout"] = [String: Double]() }, workers: 2))
        let (configuration, secret) = try run.makeConfiguration()
        var session = run.started(configuration, secret: secret, schedule: [:])
        session.runServerPhases()
        return (run, session)
    }

    /// The honest device with the fewest colluding holders, its colluding holders and its honest ones.
    static func victim(_ session: AdversarialSession) -> (victim: UInt32, colluding: Int, honest: [UInt32]) {
        let holders = session.view.holdersByOwner()
        let victim = holders.keys.filter(session.isHonest).min { a, b in
            (holders[a]!.count(where: { !session.isHonest($0) }), a) < (holders[b]!.count(where: { !session.isHonest($0) }), b)
        }!
        return (victim, holders[victim]!.count(where: { !session.isHonest($0) }), holders[victim]!.filter(session.isHonest))
    }

    @Test func anHonestRoundExposesNobody() throws {
        let (run, session) = try Self.honestSession()
        guard case .finished? = session.outcome else { Issue.record("the round must finish: \(run.outcomeText(session))"); return }
        #expect(run.finishedCorrectly(session))
        let findings = run.findings([session.view])
        #expect(findings.count == session.view.maskedInputs.count - run.colluders.count)
        #expect(findings.allSatisfy { !$0.recovered && $0.detail.hasPrefix("β rebuilt") }, "survivors' self-mask seeds are rebuilt, nothing more")
    }

    @Test func tLeakingHoldersExposeTheVictimAndOneFewerDoNot() throws {
        let (run, session) = try Self.honestSession()
        let (victim, colluding, honest) = Self.victim(session)
        let t = session.configuration.threshold
        let input = { (d: UInt32) in run.inputs[Int(d)] }
        // The leak: enough honest holders hand over their secrets that, with the colluders, t of
        // the victim's holders can open the share pairs it sealed to them.
        var leak = session.view
        for h in honest.prefix(t - colluding) { leak.colluders[h] = session.leakedSecrets(of: h) }
        #expect(leak.colluders.count == session.view.colluders.count + t - colluding)
        let exposed = try #require(ExposureOracle.examine([leak], devices: [victim], input: input).first)
        #expect(exposed.recovered, "\(exposed.detail)")
        #expect(exposed.detail.contains("s_sk rebuilt"))

        var short = session.view
        for h in honest.prefix(t - colluding - 1) { short.colluders[h] = session.leakedSecrets(of: h) }
        let hidden = try #require(ExposureOracle.examine([short], devices: [victim], input: input).first)
        #expect(!hidden.recovered)
        #expect(hidden.detail.contains("s_sk not rebuilt (\(t - 1) shares)"), "\(hidden.detail)")

        // The comparison is with the device's true input: another masked vector is not "recovered".
        var forged = leak
        var vector = try #require(forged.maskedInputs[victim])
        vector.add(try ModularVector(values: [1] + Array(repeating: 0, count: vector.count - 1), bitWidth: vector.bitWidth))
        forged.maskedInputs[victim] = vector
        let wrong = try #require(ExposureOracle.examine([forged], devices: [victim], input: input).first)
        #expect(!wrong.recovered && wrong.detail.hasSuffix("differs from the device's input"))
    }
}
