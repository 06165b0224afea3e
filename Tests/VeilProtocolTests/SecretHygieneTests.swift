import Testing
@testable import VeilCrypto
@testable import VeilProtocol

/// Secret hygiene of the protocol core: sessions print no input value and no secret through any
/// standard printing path, and ``ModularVector/wipe()`` zeroes the vector's own buffer.
@Suite struct SecretHygieneTests {
    /// Device 0's input: values that cannot appear in a printout by chance.
    static let distinctiveInput: [UInt64] = [123_456_789, 987_654_321, 314_159_265, 271_828_182, 161_803_398, 141_421_356, 173_205_080, 223_606_797]

    // MARK: - Device and server sessions through a whole round

    @Test(arguments: [ThreatModel.honestButCurious, .active])
    func sessionsPrintNoInputOrSecretInAnyState(threatModel: ThreatModel) throws {
        var harness = try Self.harness(threatModel: threatModel)
        // Device 4 sends its keys and shares, then drops: the server reconstructs its masking key.
        harness.dropBefore = [4: .maskedInputCollection]
        // Every device's input is looked for (values below 10^6 are too short to search for).
        var probe = LeakProbe(inputValues: harness.inputs.flatMap(\.elements).filter { $0 >= 1_000_000 })
        #expect(Set(Self.distinctiveInput).isSubset(of: probe.inputValues))
        var statesSeen = Set<String>()
        var checks = 0

        let outcome = Self.drive(&harness) { harness, step, changed in
            for session in harness.devices {
                probe.learnSecrets(of: session)
                statesSeen.insert(Self.caseName(session.state))
            }
            probe.learnRevealedShares(of: harness.server)
            // Every device at each phase change, and the device that just answered after each answer.
            for session in harness.devices where changed == nil || changed == session.device {
                checks += probe.check(session, "device \(session.device) after \(step)")
                checks += probe.checkNestedValues(of: session, "device \(session.device) after \(step)")
            }
            checks += probe.check(harness.server, "server after \(step)")
            for (index, record) in harness.server.records.enumerated() {
                checks += probe.check(record, "server record \(index) after \(step)")
            }
        }

        guard case let .finished(result) = outcome else {
            Issue.record("the round did not finish: \(outcome)")
            return
        }
        #expect(result.sum == harness.plaintextSum(of: result.survivors), "the round with the distinctive input sums correctly")
        var expectedStates: Set<String> = ["ready", "advertised", "sharedKeys", "maskedInputSent", "finished"]
        if threatModel == .active { expectedStates.insert("consistencySigned") }
        #expect(expectedStates.isSubset(of: statesSeen), "states seen: \(statesSeen.sorted())")
        // The probe knew the input, the identity seeds, both key pairs and seed of every device,
        // the held shares, opening keys, pairwise seeds and the revealed shares.
        #expect(probe.secrets.count > 5 * 4)
        #expect(checks > 100)
    }

    @Test func aDeviceSessionDescribesItsProgressWithoutSecrets() throws {
        var harness = try Self.harness(threatModel: .honestButCurious)
        let ready = String(describing: harness.devices[0])
        #expect(ready.hasPrefix("DeviceSession(round \(harness.configuration.roundID), device 0, awaiting advertise-keys"))
        #expect(ready.hasSuffix("secrets redacted)"))
        #expect(String(reflecting: harness.devices[0]) == ready)
        _ = try harness.devices[0].start(using: &harness.random)
        #expect(String(describing: harness.devices[0]).contains("awaiting share-keys"))
        #expect(String(describing: harness.devices[0].state) == "advertised(input redacted, round secrets redacted)")
    }

    @Test func anAbortedSessionNamesTheViolationOnly() throws {
        var harness = try Self.harness(threatModel: .honestButCurious)
        var probe = LeakProbe(inputValues: Self.distinctiveInput)
        _ = try harness.devices[0].start(using: &harness.random)
        probe.learnSecrets(of: harness.devices[0])
        #expect(throws: ProtocolViolation.self) {
            _ = try harness.devices[0].handle(.sealedShares([]), using: &harness.random)
        }
        let text = String(describing: harness.devices[0])
        #expect(text.contains("aborted: "), "\(text)")
        _ = probe.check(harness.devices[0], "aborted device")
    }

    @Test func unmaskingValuesPrintRedacted() throws {
        var random = SeededRandomSource(seed: 5, label: "unmasking")
        let seed = SecretBytes(randomCount: 32, using: &random)
        let key = X25519.PrivateKey(using: &random)
        let shares = try ShamirSecretSharing.split(seed, threshold: 2, shareCount: 3, using: &random)
        var probe = LeakProbe(inputValues: [])
        probe.learn(seed)
        probe.learn(key.rawRepresentation)
        for share in shares { probe.learn(share.values) }
        probe.check(AggregationSession.MaskJob.selfMask(owner: 1, seed: seed), "self-mask job")
        probe.check(AggregationSession.MaskJob.pairwise(dropped: 2, survivor: 3, droppedKey: key), "pairwise job")
        probe.check(AggregationSession.Reconstruction(owner: 1, isSelfMask: true, shares: shares, digestTable: shares.map { _ in ShareDigest([UInt8](repeating: 0, count: 16))! }, digestOffsets: Array(shares.indices)), "reconstruction")
        probe.check(AggregationSession.ReconstructedSecret(secret: seed, usedRobustPath: true, badHolders: [2]), "reconstructed secret")
        #expect(String(describing: AggregationSession.MaskJob.selfMask(owner: 1, seed: seed)) == "MaskJob.selfMask(owner: 1, seed redacted)")
    }

    // MARK: - The probe catches leaks (so the checks above can fail)

    @Test func theProbeCatchesAnInputOrASecretInEveryForm() throws {
        var probe = LeakProbe(inputValues: Self.distinctiveInput)
        let input = try ModularVector(values: Self.distinctiveInput, bitWidth: 32)
        #expect(!probe.leaks(in: LeakProbe.renderings(of: input)).isEmpty, "a plain ModularVector prints its elements")
        var random = SeededRandomSource(seed: 9, label: "probe")
        let secret = SecretBytes(randomCount: 32, using: &random)
        probe.learn(secret)
        let bytes = secret.unprotectedCopy()
        #expect(!probe.leaks(in: ["hex": "key " + Hex.encode(bytes[3..<11])]).isEmpty, "a hex window")
        #expect(!probe.leaks(in: LeakProbe.renderings(of: bytes)).isEmpty, "an array of secret bytes, as dump and print show it")
        #expect(probe.leaks(in: LeakProbe.renderings(of: secret)).isEmpty, "SecretBytes itself prints redacted")
    }

    // MARK: - ModularVector.wipe

    @Test(arguments: [32, 64])
    func wipeZeroesTheVectorsOwnBufferInPlace(bitWidth: Int) throws {
        // A buffer of the vector's own (a 64-bit vector would otherwise share the static array's).
        var vector = try ModularVector(values: Self.distinctiveInput.map { $0 }, bitWidth: bitWidth)
        let before = Self.bufferAddress(of: vector)
        vector.wipe()
        #expect(vector.elements == Array(repeating: 0, count: Self.distinctiveInput.count))
        #expect(vector.count == Self.distinctiveInput.count)
        #expect(vector.bitWidth == bitWidth)
        #expect(Self.bufferAddress(of: vector) == before, "zeroed in place, not in a fresh buffer")
    }

    @Test func wipeLeavesCopiesMadeBeforehandToTheirOwner() throws {
        var vector = try ModularVector(values: Self.distinctiveInput, bitWidth: 32)
        let copy = vector
        vector.wipe()
        #expect(vector.elements.allSatisfy { $0 == 0 })
        #expect(copy.elements == Self.distinctiveInput)
        var empty = ModularVector(zerosOfCount: 0, bitWidth: 16)
        empty.wipe()
        #expect(empty.count == 0)
    }

    // MARK: - Helpers

    static func harness(threatModel: ThreatModel) throws -> RoundHarness {
        var harness = try RoundHarness(cohortSize: 5, threshold: 3, threatModel: threatModel, seed: 12)
        let input = try ModularVector(values: distinctiveInput, bitWidth: harness.configuration.bitWidth)
        harness.inputs[0] = input
        harness.devices[0] = try DeviceSession(
            configuration: harness.configuration, graph: harness.graph, device: 0,
            identity: harness.devices[0].identity, input: input, policy: .permissiveForTests)
        return harness
    }

    /// Runs the round like ``RoundHarness/run()``, calling `afterEachStep` at the start, after every
    /// phase change (with no device) and after every device step (with the device that stepped).
    static func drive(_ h: inout RoundHarness, afterEachStep: (RoundHarness, String, UInt32?) -> Void) -> AggregationOutcome {
        afterEachStep(h, "creation", nil)
        for d in 0..<UInt32(h.devices.count) where !h.silent(d, in: .advertiseKeys) {
            guard let message = try? h.devices[Int(d)].start(using: &h.random) else { continue }
            h.deliver(message, from: d)
            afterEachStep(h, "start of device \(d)", d)
        }
        while true {
            if let outcome = h.server.closePhase(using: &h.random) {
                afterEachStep(h, "the outcome", nil)
                return outcome
            }
            let phase = h.server.phase!
            afterEachStep(h, "opening \(phase.rawValue)", nil)
            for d in h.server.recipients {
                guard let message = h.server.outgoingMessage(for: d) else { continue }
                if h.silent(d, in: phase) { h.server.deviceLeft(d); continue }
                do {
                    let answer = try h.devices[Int(d)].handle(message, using: &h.random)
                    h.deliver(answer, from: d)
                } catch {
                    h.deviceViolations[d] = error
                    h.server.deviceLeft(d)
                }
                afterEachStep(h, "\(phase.rawValue) answer of device \(d)", d)
            }
        }
    }

    static func caseName(_ state: DeviceSession.State) -> String {
        switch state {
        case .ready: return "ready"
        case .advertised: return "advertised"
        case .sharedKeys: return "sharedKeys"
        case .maskedInputSent: return "maskedInputSent"
        case .consistencySigned: return "consistencySigned"
        case .finished: return "finished"
        case .aborted: return "aborted"
        }
    }

    static func bufferAddress(of vector: ModularVector) -> UInt {
        switch vector.storage {
        case let .narrow(a): return a.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        case let .wide(a): return a.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        }
    }
}

/// Looks for an input value or a secret in every printed form of a value.
///
/// An input value is found as its decimal or hex digits anywhere in a run of hex digits. A secret
/// is found as any run of ``window`` of its bytes, either as hex digits or as consecutive decimal
/// numbers (the way `dump` and `print` show a `[UInt8]`).
struct LeakProbe {
    /// Consecutive secret bytes that count as a leak.
    static let window = 6
    let inputValues: [UInt64]
    private let inputNeedles: [(value: UInt64, decimal: String, hex: String)]
    private(set) var secrets: [[UInt8]] = []
    /// Every `window`-byte run of every secret (and its hex), to the secret's index.
    private var byteWindows: [[UInt8]: Int] = [:]
    private var hexWindows: [String: Int] = [:]

    init(inputValues: [UInt64]) {
        self.inputValues = inputValues
        inputNeedles = inputValues.map { ($0, String($0), String($0, radix: 16)) }
    }

    /// Adds a secret to look for.
    mutating func learn(_ secret: SecretBytes) {
        learn(bytes: secret.unprotectedCopy())
    }

    /// Adds secret bytes to look for.
    mutating func learn(bytes: [UInt8]) {
        guard bytes.count >= Self.window, !secrets.contains(bytes) else { return }
        let index = secrets.count
        secrets.append(bytes)
        for start in 0...(bytes.count - Self.window) {
            let run = Array(bytes[start..<(start + Self.window)])
            byteWindows[run] = index
            hexWindows[Hex.encode(run)] = index
        }
    }

    /// The leaks found in `renderings`, as "form: what".
    func leaks(in renderings: [String: String]) -> [String] {
        var found: [String] = []
        for (form, text) in renderings.sorted(by: { $0.key < $1.key }) {
            let utf8 = Array(text.lowercased().utf8)
            var i = 0
            while i < utf8.count {
                guard Self.isHexDigit(utf8[i]) else { i += 1; continue }
                var j = i
                while j < utf8.count && Self.isHexDigit(utf8[j]) { j += 1 }
                let run = String(decoding: utf8[i..<j], as: UTF8.self)
                for needle in inputNeedles {
                    if run.contains(needle.decimal) { found.append("\(form): input value \(needle.value)") }
                    if run.contains(needle.hex) { found.append("\(form): input value \(needle.value) in hex") }
                }
                let width = 2 * Self.window
                if j - i >= width {
                    for start in i...(j - width) {
                        if let index = hexWindows[String(decoding: utf8[start..<(start + width)], as: UTF8.self)] {
                            found.append("\(form): secret \(index) in hex")
                            break
                        }
                    }
                }
                i = j
            }
            let numbers = Self.numbers(in: utf8)
            if numbers.count >= Self.window {
                for start in 0...(numbers.count - Self.window) {
                    let run = numbers[start..<(start + Self.window)]
                    guard run.allSatisfy({ $0 <= 255 }) else { continue }
                    if let index = byteWindows[run.map { UInt8($0) }] {
                        found.append("\(form): secret \(index) as decimal bytes")
                        break
                    }
                }
            }
        }
        return found
    }

    static func isHexDigit(_ c: UInt8) -> Bool { (48...57).contains(c) || (97...102).contains(c) }

    /// The decimal numbers in `utf8`, in order.
    static func numbers(in utf8: [UInt8]) -> [UInt64] {
        var result: [UInt64] = []
        var current: UInt64?
        for c in utf8 {
            if (48...57).contains(c) {
                current = (current ?? 0) &* 10 &+ UInt64(c - 48)
            } else if let value = current {
                result.append(value)
                current = nil
            }
        }
        if let current { result.append(current) }
        return result
    }

    /// Every printed form of `value`: description, debug description, print, debugPrint, dump
    /// and a recursive walk of its mirror.
    static func renderings<T>(of value: T) -> [String: String] {
        var printed = ""
        print(value, to: &printed)
        var debugPrinted = ""
        debugPrint(value, to: &debugPrinted)
        var dumped = ""
        dump(value, to: &dumped, maxDepth: 12, maxItems: 100_000)
        var mirrored = ""
        walk(Mirror(reflecting: value), depth: 0, into: &mirrored)
        return [
            "description": String(describing: value), "debugDescription": String(reflecting: value),
            "print": printed, "debugPrint": debugPrinted, "dump": dumped, "mirror": mirrored,
        ]
    }

    static func walk(_ mirror: Mirror, depth: Int, into text: inout String) {
        guard depth < 12 else { return }
        for child in mirror.children {
            text += "\(child.label ?? "_"): \(String(describing: child.value)) | \(String(reflecting: child.value))\n"
            walk(Mirror(reflecting: child.value), depth: depth + 1, into: &text)
        }
    }

    /// Records a failure for each leak in `value`'s printed forms; returns the number of forms checked.
    @discardableResult
    func check<T>(_ value: T, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        let forms = Self.renderings(of: value)
        let found = leaks(in: forms)
        #expect(found.isEmpty, "\(context) leaks: \(found.prefix(5))", sourceLocation: sourceLocation)
        return forms.count
    }

    /// Checks the nested values of the session's state one by one.
    func checkNestedValues(of session: DeviceSession, _ context: String) -> Int {
        var checked = 0
        func neighbours(_ records: [UInt32: DeviceSession.NeighbourRecord]) {
            for (peer, record) in records { checked += check(record, "\(context), neighbour record \(peer)") }
        }
        func held(_ shares: [UInt32: DeviceSession.HeldShares]) {
            for (peer, pair) in shares { checked += check(pair, "\(context), shares held for \(peer)") }
        }
        checked += check(session.state, "\(context), state")
        switch session.state {
        case let .ready(input):
            checked += check(input, "\(context), private input")
        case let .advertised(input, secrets):
            checked += check(input, "\(context), private input")
            checked += check(secrets, "\(context), round secrets")
        case let .sharedKeys(input, secrets, records):
            checked += check(input, "\(context), private input")
            checked += check(secrets, "\(context), round secrets")
            neighbours(records)
        case let .maskedInputSent(shares, _, records):
            held(shares)
            neighbours(records)
        case let .consistencySigned(shares, _, records, _):
            held(shares)
            neighbours(records)
        case .finished, .aborted:
            break
        }
        return checked
    }

    /// Adds every secret `session` holds in its current state.
    mutating func learnSecrets(of session: DeviceSession) {
        if let identity = session.identity { learn(identity.seed) }
        switch session.state {
        case let .advertised(_, secrets):
            learnRoundSecrets(secrets)
        case let .sharedKeys(_, secrets, records):
            learnRoundSecrets(secrets)
            learnNeighbourSecrets(records)
        case let .maskedInputSent(held, _, records), let .consistencySigned(held, _, records, _):
            for pair in held.values {
                learn(pair.maskingKey)
                learn(pair.selfMask)
            }
            learnNeighbourSecrets(records)
        case .ready, .finished, .aborted:
            break
        }
    }

    mutating func learnRoundSecrets(_ secrets: DeviceSession.RoundSecrets) {
        learn(secrets.encryption.rawRepresentation)
        learn(secrets.masking.rawRepresentation)
        learn(secrets.selfMaskSeed)
    }

    mutating func learnNeighbourSecrets(_ records: [UInt32: DeviceSession.NeighbourRecord]) {
        for record in records.values {
            if let opening = record.opening { learn(opening.key.secret) }
        }
    }

    /// Adds the shares devices revealed to the server.
    mutating func learnRevealedShares(of server: AggregationSession) {
        for record in server.records {
            for share in (record.selfMaskShares ?? []) + (record.maskingKeyShares ?? []) { learn(share.values) }
        }
    }
}
