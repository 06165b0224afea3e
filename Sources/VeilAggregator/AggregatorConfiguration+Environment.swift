import Foundation

extension AggregatorConfiguration {
    /// Applies `VEIL_*` environment variables over the current values: `VEIL_LISTEN`,
    /// `VEIL_HTTP_LISTEN` and `VEIL_API_LISTEN` (host:port or "off"), `VEIL_TLS_CERTIFICATE`, `VEIL_TLS_PRIVATE_KEY`,
    /// `VEIL_INSECURE_PLAINTEXT` ("true"/"false"), `VEIL_DATABASE`, `VEIL_API_TOKEN`, `VEIL_API_READ_TOKEN`, `VEIL_MIN_COHORT`,
    /// `VEIL_MAX_COHORT`, `VEIL_DIMENSION`, `VEIL_PHASE_TIMEOUT_SECONDS`, `VEIL_INSTANCE`.
    public mutating func applyEnvironment(_ environment: [String: String]) throws(AggregatorConfigurationError) {
        if let v = environment["VEIL_LISTEN"] { listen = try .parse(v, field: "VEIL_LISTEN") }
        if let v = environment["VEIL_HTTP_LISTEN"] { httpListen = v == "off" ? nil : try .parse(v, field: "VEIL_HTTP_LISTEN") }
        if let v = environment["VEIL_TLS_CERTIFICATE"] { tlsCertificatePath = v }
        if let v = environment["VEIL_TLS_PRIVATE_KEY"] { tlsPrivateKeyPath = v }
        if let v = environment["VEIL_INSECURE_PLAINTEXT"] {
            guard let flag = Bool(v) else { throw .invalid("VEIL_INSECURE_PLAINTEXT", "must be true or false, got \"\(v)\"") }
            insecurePlaintext = flag
        }
        if let v = environment["VEIL_DATABASE"] { database = v }
        if let v = environment["VEIL_API_LISTEN"] { apiListen = v == "off" ? nil : try .parse(v, field: "VEIL_API_LISTEN") }
        if let v = environment["VEIL_API_TOKEN"] { apiToken = v }
        if let v = environment["VEIL_API_READ_TOKEN"] { apiReadToken = v }
        if let v = environment["VEIL_INSTANCE"] { instance = v }
        if let v = environment["VEIL_MIN_COHORT"] { rounds.minimumCohort = try Self.integer(v, "VEIL_MIN_COHORT") }
        if let v = environment["VEIL_MAX_COHORT"] { rounds.maximumCohort = try Self.integer(v, "VEIL_MAX_COHORT") }
        if let v = environment["VEIL_DIMENSION"] { rounds.dimension = try Self.integer(v, "VEIL_DIMENSION") }
        if let v = environment["VEIL_PHASE_TIMEOUT_SECONDS"] {
            guard let seconds = Double(v) else { throw .invalid("VEIL_PHASE_TIMEOUT_SECONDS", "must be a number, got \"\(v)\"") }
            rounds.phaseTimeoutSeconds = seconds
        }
    }

    static func integer(_ text: String, _ field: String) throws(AggregatorConfigurationError) -> Int {
        guard let value = Int(text) else { throw .invalid(field, "must be an integer, got \"\(text)\"") }
        return value
    }
}

extension AggregatorConfiguration.Endpoint {
    /// Parses "host:port" (IPv6 hosts in brackets: "[::1]:7443").
    public static func parse(_ text: String, field: String = "listen") throws(AggregatorConfigurationError) -> Self {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw .invalid(field, "must be host:port with a port in 0...65535, got \"\(text)\"")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .invalid(field, "missing host in \"\(text)\"") }
        return .init(host: host, port: port)
    }
}
