import Foundation
import Testing
import VeilAggregator
import VeilFeatures
import VeilStore

/// The aggregator's configuration: file, then environment, validated with errors naming the field.
@Suite struct AggregatorConfigurationTests {
    static func decode(_ json: String) throws -> AggregatorConfiguration {
        try JSONDecoder().decode(AggregatorConfiguration.self, from: Data(json.utf8))
    }

    static func field(of body: () throws -> Void) -> String? {
        do { try body() } catch let AggregatorConfigurationError.invalid(field, _) { return field } catch { return "unexpected \(error)" }
        return nil
    }

    @Test func aFileOverridesDefaultsAndTheEnvironmentOverridesTheFile() throws {
        var c = try Self.decode("""
            {"insecurePlaintext": true, "database": "/tmp/x.sqlite", "rounds": {"minimumCohort": 20, "maximumCohort": 500, "graph": "complete"}}
            """)
        #expect(c.insecurePlaintext && c.database == "/tmp/x.sqlite" && c.rounds.minimumCohort == 20 && c.rounds.graph == "complete")
        #expect(c.rounds.dimension == 1000 && c.listen.port == 7443, "unset keys keep their defaults")
        try c.applyEnvironment(["VEIL_MAX_COHORT": "400", "VEIL_LISTEN": "[::1]:7000", "VEIL_HTTP_LISTEN": "off", "VEIL_DATABASE": "postgres://veil@db/veil"])
        #expect(c.rounds.maximumCohort == 400 && c.listen.host == "::1" && c.listen.port == 7000 && c.httpListen == nil)
        #expect(c.database == "postgres://veil@db/veil")
        try c.validate()
    }

    /// A misspelt key is an error naming it, not a setting silently left at its default.
    @Test func unknownKeysAreRefusedByName() {
        #expect(Self.field { _ = try Self.decode(#"{"databasePath": "old.sqlite"}"#) } == "databasePath")
        #expect(Self.field { _ = try Self.decode(#"{"rounds": {"minimumCohrt": 5}}"#) } == "rounds.minimumCohrt")
    }

    @Test func badValuesNameTheirField() throws {
        var base = AggregatorConfiguration()
        base.insecurePlaintext = true
        let cases: [(String, (inout AggregatorConfiguration) -> Void)] = [
            ("tlsCertificatePath/tlsPrivateKeyPath", { $0.insecurePlaintext = false }),
            ("listen.port", { $0.listen.port = 70_000 }),
            ("apiToken", { $0.apiToken = "short" }),
            ("database", { $0.database = "" }),
            ("database", { $0.database = "postgres://db.internal/veil" }),
            ("database", { $0.database = "postgres://veil@db/veil?sslmode=sometimes" }),
            ("rounds.minimumCohort", { $0.rounds.minimumCohort = 2 }),
            ("rounds.maximumCohort", { $0.rounds.maximumCohort = 5 }),
            ("rounds.expectedDropout", { $0.rounds.expectedDropout = 1.5 }),
            ("rounds.graph", { $0.rounds.graph = "star" }),
            ("rounds.degree", { $0.rounds.graph = "harary" }),
            // An explicit threshold too low for the cohort's security target is refused at start.
            ("rounds.graph", { $0.rounds.graph = "complete"; $0.rounds.threshold = 2 }),
            ("rounds.windowSeconds", { $0.rounds.featureSet = Self.set; $0.rounds.windowSeconds = 7000 }),
            ("rounds.maximumCohort", { $0.rounds.featureSet = Self.set; $0.rounds.maximumCohort = 5000 }),
            // Issue 13, L: every duration is bounded; an infinite phase timeout crashed the first round.
            ("rounds.phaseTimeoutSeconds", { $0.rounds.phaseTimeoutSeconds = .infinity }),
            ("rounds.phaseTimeoutSeconds", { $0.rounds.phaseTimeoutSeconds = .nan }),
            ("rounds.gatherSeconds", { $0.rounds.gatherSeconds = 1e300 }),
            ("rounds.maximumWaitSeconds", { $0.rounds.maximumWaitSeconds = -1 }),
            ("checkInTimeoutSeconds", { $0.checkInTimeoutSeconds = .infinity }),
            ("instance", { $0.instance = "" }),
            ("rounds.featureSet.features[0].precision", {
                var s = Self.set
                s.features[0].kind = .numeric(minimum: 0, maximum: 1, precision: 0)
                $0.rounds.featureSet = s
            }),
        ]
        for (field, edit) in cases {
            var c = base
            edit(&c)
            #expect(Self.field { try c.validate() } == field, "\(field)")
        }
        #expect(Self.field { var c = base; try c.applyEnvironment(["VEIL_MIN_COHORT": "ten"]) } == "VEIL_MIN_COHORT")
        #expect(Self.field { var c = base; try c.applyEnvironment(["VEIL_INSECURE_PLAINTEXT": "yes"]) } == "VEIL_INSECURE_PLAINTEXT")
        #expect(Self.field { var c = base; try c.applyEnvironment(["VEIL_PHASE_TIMEOUT_SECONDS": "inf"]); try c.validate() } == "rounds.phaseTimeoutSeconds")
    }

    static let set = FeatureSet(name: "fleet", version: 1, bitWidth: 48, maximumCohort: 1000, features: [
        Feature(name: "speed", kind: .numeric(minimum: 0, maximum: 100, precision: 1), maximumValuesPerDevice: 10),
    ])

    /// Issue 13, M11: TLS that verifies the server by default, no silent plaintext, a CA file,
    /// and the password kept off the command line.
    @Test func postgresDefaultsToVerifiedTLSAndTakesThePasswordFromAFileOrTheEnvironment() throws {
        let plain = try #require(try PostgresLocation(parsing: "postgres://veil@db.internal/veil"))
        #expect(plain.tlsMode == .verifyFull && plain.requireTLS && plain.caCertificatePath == nil)
        #expect(throws: DatabaseURLError.self) { _ = try PostgresLocation(parsing: "postgres://veil@db/veil?sslmode=prefer") }
        #expect(throws: DatabaseURLError.self) { _ = try PostgresLocation(parsing: "postgres://veil@db/veil?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem") }
        #expect(throws: DatabaseURLError.self, "unknown parameters are refused") { _ = try PostgresLocation(parsing: "postgres://veil@db/veil?sslcert=x") }
        #expect(try PostgresLocation(parsing: "postgres://veil@db/veil?sslmode=verify-ca")?.tlsMode == .verifyCA)
        #expect(try PostgresLocation(parsing: "postgres://veil@127.0.0.1/veil?sslmode=disable")?.requireTLS == false)

        let directory = NSTemporaryDirectory() + "veil-pg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ca = directory + "/ca.pem"
        try "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        let secret = directory + "/password"
        try "from-the-file\nignored\n".write(toFile: secret, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret)
        let filed = try #require(try PostgresLocation(parsing: "postgres://veil@db/veil?sslrootcert=\(ca)&passwordfile=\(secret)"))
        #expect(filed.caCertificatePath == ca)
        #expect(try filed.resolvedPassword(environment: ["VEIL_DATABASE_PASSWORD": "from-the-environment"]) == "from-the-file")
        #expect(!filed.description.contains("from-the"))
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: secret)
        #expect(throws: AggregatorStoreError.self, "a password file others can read is refused") { _ = try filed.resolvedPassword() }
        #expect(try plain.resolvedPassword(environment: ["VEIL_DATABASE_PASSWORD": "from-the-environment"]) == "from-the-environment")
        #expect(try PostgresLocation(parsing: "postgres://veil:in-url@db/veil")?.resolvedPassword(environment: ["VEIL_DATABASE_PASSWORD": "env"]) == "in-url")
    }

    @Test func postgresLocationsHideThePassword() throws {
        let location = try #require(try PostgresLocation(parsing: "postgres://veil:s3cret@db.internal:6543/features?sslmode=require"))
        #expect(location.host == "db.internal" && location.port == 6543 && location.database == "features" && location.requireTLS)
        #expect(location.password == "s3cret" && !location.description.contains("s3cret"))
        #expect(try PostgresLocation(parsing: "veil-aggregator.sqlite") == nil, "a path is an SQLite store")
    }

    /// Issue 13, L: a TLS private key that group or others can read is refused at start.
    @Test func aPrivateKeyOthersCanReadIsRefused() throws {
        let directory = NSTemporaryDirectory() + "veil-keys-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let paths = try DevelopmentCertificates.write(to: directory)
        var c = AggregatorConfiguration()
        c.tlsCertificatePath = paths.serverCertificate
        c.tlsPrivateKeyPath = paths.serverPrivateKey
        try c.validate()
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: paths.serverPrivateKey)
        #expect(Self.field { try c.validate() } == "tlsPrivateKeyPath")
    }
}
