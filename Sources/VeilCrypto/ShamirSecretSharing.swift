/// Errors of Shamir secret sharing. None of them carries secret material.
public enum ShamirError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The secret was not exactly 32 bytes.
    case invalidSecretLength(Int)
    /// The threshold is not in 1...shareCount.
    case invalidThreshold(threshold: Int, shareCount: Int)
    /// More than ``ShamirSecretSharing/maximumShareCount`` shares were requested.
    case tooManyShares(Int)
    /// An x-coordinate was zero (where the secret lives) or repeated when splitting.
    case invalidXCoordinate(UInt32)
    /// Fewer shares than the threshold were supplied to reconstruction.
    case tooFewShares(have: Int, need: Int)
    /// Two supplied shares have the same x-coordinate.
    case duplicateShare(x: UInt32)
    /// A share's encoding is wrong: wrong length, or a value outside the field.
    case malformedShare(x: UInt32, reason: String)
    /// The shares belong to different dealings (their commitments differ): they never combine.
    case mixedCommitments
    /// The interpolated secret does not match the commitment: at least one share is wrong.
    case commitmentMismatch
    /// No subset of the supplied shares reconstructs a secret matching the commitment.
    case noConsistentSubset(shareCount: Int, attempts: Int)

    public var description: String {
        switch self {
        case let .invalidSecretLength(n): return "Shamir secrets are 32 bytes, got \(n)"
        case let .invalidThreshold(t, n): return "threshold \(t) must be in 1...\(n) (the number of shares)"
        case let .tooManyShares(n): return "\(n) shares requested; at most \(ShamirSecretSharing.maximumShareCount) are supported"
        case let .invalidXCoordinate(x): return "x-coordinate \(x) is zero or repeated"
        case let .tooFewShares(have, need): return "\(have) shares supplied, \(need) needed"
        case let .duplicateShare(x): return "two shares have x-coordinate \(x)"
        case let .malformedShare(x, reason): return "share at x = \(x) is malformed: \(reason)"
        case .mixedCommitments: return "shares come from different dealings (commitments differ)"
        case .commitmentMismatch: return "reconstructed secret does not match its commitment: a share is wrong"
        case let .noConsistentSubset(n, attempts): return "no subset of \(n) shares matched the commitment after \(attempts) attempts"
        }
    }
}

/// A binding commitment to a 32-byte shared secret: BLAKE2b-256 with label
/// `veil/v1/shamir-commitment`. Every share carries it, reconstruction checks against it.
public struct ShamirCommitment: Sendable, Hashable, CustomStringConvertible {
    /// The 32 commitment bytes.
    public let bytes: [UInt8]

    /// Wraps 32 bytes received in a message.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 32 else { throw .invalidLength(what: "Shamir commitment", expected: 32, actual: bytes.count) }
        self.bytes = bytes
    }

    /// The commitment to `secret`, hashed straight from its protected buffer (no unprotected copy).
    public init(committingTo secret: SecretBytes) {
        bytes = secret.withUnsafeBytes { BLAKE2b.hash(label: "veil/v1/shamir-commitment", message: $0, outputByteCount: 32) }
    }

    public var description: String { "ShamirCommitment(\(Hex.prefix(bytes)))" }
}

/// One share: the x-coordinate, the five field elements of the 32-byte secret's polynomials
/// evaluated at x (in zeroizing storage), and the dealing's commitment.
public struct ShamirShare: Sendable, Equatable, CustomStringConvertible {
    /// The evaluation point, never zero.
    public let x: UInt32
    /// Five little-endian 64-bit field elements, each below 2^61 - 1.
    public let values: SecretBytes
    /// The commitment of the dealing this share belongs to.
    public let commitment: ShamirCommitment

    /// Validates and wraps a share received from a peer.
    public init(x: UInt32, values: SecretBytes, commitment: ShamirCommitment) throws(ShamirError) {
        guard x != 0 else { throw .malformedShare(x: x, reason: "x-coordinate is zero") }
        guard values.count == ShamirSecretSharing.shareValueByteCount else {
            throw .malformedShare(x: x, reason: "values are \(values.count) bytes, expected \(ShamirSecretSharing.shareValueByteCount)")
        }
        let inField = values.withUnsafeBytes { raw in
            (0..<ShamirSecretSharing.limbCount).allSatisfy {
                UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) < PrimeField.p
            }
        }
        guard inField else { throw .malformedShare(x: x, reason: "a value is not a field element") }
        self.x = x
        self.values = values
        self.commitment = commitment
    }

    func limb(_ i: Int) -> UInt64 {
        values.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
    }

    /// Redacted: shows the x-coordinate and commitment only.
    public var description: String { "ShamirShare(x: \(x), \(commitment), values redacted)" }
}

/// Lagrange coefficients for interpolating at zero from a fixed set of x-coordinates.
///
/// Computing them costs O(t^2); reconstructions that reuse the same x set (common on the server,
/// where the same neighbours answer for many devices) reuse one basis.
public struct LagrangeBasis: Sendable, Hashable {
    /// The x-coordinates, in the order shares must be supplied.
    public let xCoordinates: [UInt32]
    let coefficients: [UInt64]

    /// Computes the basis for distinct, non-zero x-coordinates.
    public init(xCoordinates: [UInt32]) throws(ShamirError) {
        var seen = Set<UInt32>()
        for x in xCoordinates {
            guard x != 0 else { throw .invalidXCoordinate(x) }
            guard seen.insert(x).inserted else { throw .duplicateShare(x: x) }
        }
        self.xCoordinates = xCoordinates
        // lambda_i = prod_{j != i} x_j / (x_j - x_i)
        let xs = xCoordinates.map(UInt64.init)
        var numerators = [UInt64](repeating: 1, count: xs.count)
        var denominators = [UInt64](repeating: 1, count: xs.count)
        for i in xs.indices {
            for j in xs.indices where j != i {
                numerators[i] = PrimeField.multiply(numerators[i], xs[j])
                denominators[i] = PrimeField.multiply(denominators[i], PrimeField.subtract(xs[j], xs[i]))
            }
        }
        let inverses = PrimeField.batchInverse(denominators)
        coefficients = xs.indices.map { PrimeField.multiply(numerators[$0], inverses[$0]) }
    }
}

/// The result of ``ShamirSecretSharing/reconstructIdentifyingBadShares(_:threshold:using:maximumAttempts:)``.
public struct RobustReconstruction: Sendable {
    /// The secret, verified against the dealing's commitment.
    public let secret: SecretBytes
    /// x-coordinates of supplied shares that are inconsistent with the verified polynomial.
    public let badShares: [UInt32]
}

/// Shamir t-of-n secret sharing of 32-byte secrets over GF(2^61 - 1).
///
/// The secret is cut into five little-endian limbs of 7, 7, 7, 7 and 4 bytes; each limb is the
/// constant term of its own random polynomial of degree t - 1. A share is the five polynomials
/// evaluated at the share's x-coordinate. Any t shares interpolate the secret; fewer reveal
/// nothing about it. Every share carries the ``ShamirCommitment`` of its dealing, and
/// reconstruction refuses mixed dealings and checks the result against the commitment.
public enum ShamirSecretSharing {
    /// Secret size: 32 bytes.
    public static let secretByteCount = 32
    /// Field elements per share.
    public static let limbCount = 5
    /// Size of a share's values: 40 bytes.
    public static let shareValueByteCount = limbCount * 8
    /// The largest number of shares one dealing may have.
    public static let maximumShareCount = 65_536
    static let limbByteCounts = [7, 7, 7, 7, 4]

    /// Splits `secret` into `shareCount` shares at x = 1...shareCount, any `threshold` of which
    /// reconstruct it.
    public static func split(
        _ secret: SecretBytes, threshold: Int, shareCount: Int, using random: inout some RandomSource
    ) throws(ShamirError) -> [ShamirShare] {
        guard shareCount <= maximumShareCount else { throw .tooManyShares(shareCount) }
        guard shareCount >= 1 else { throw .invalidThreshold(threshold: threshold, shareCount: shareCount) }
        return try split(secret, threshold: threshold, xCoordinates: (1...shareCount).map { UInt32($0) }, using: &random)
    }

    /// Splits `secret` into one share per given x-coordinate (distinct, non-zero), any
    /// `threshold` of which reconstruct it.
    public static func split(
        _ secret: SecretBytes, threshold: Int, xCoordinates: [UInt32], using random: inout some RandomSource
    ) throws(ShamirError) -> [ShamirShare] {
        guard secret.count == secretByteCount else { throw .invalidSecretLength(secret.count) }
        guard xCoordinates.count <= maximumShareCount else { throw .tooManyShares(xCoordinates.count) }
        guard threshold >= 1, threshold <= xCoordinates.count else {
            throw .invalidThreshold(threshold: threshold, shareCount: xCoordinates.count)
        }
        var seen = Set<UInt32>()
        for x in xCoordinates where x == 0 || !seen.insert(x).inserted { throw .invalidXCoordinate(x) }

        let commitment = ShamirCommitment(committingTo: secret)
        // coefficients[limb * threshold + degree]; degree 0 is the secret limb.
        var coefficients = [UInt64](repeating: 0, count: limbCount * threshold)
        defer { SecureMemory.zero(&coefficients) }
        secret.withUnsafeBytes { raw in
            var offset = 0
            for limb in 0..<limbCount {
                var value: UInt64 = 0
                for b in 0..<limbByteCounts[limb] { value |= UInt64(raw[offset + b]) << UInt64(8 * b) }
                offset += limbByteCounts[limb]
                coefficients[limb * threshold] = value
            }
        }
        for limb in 0..<limbCount {
            for degree in 1..<max(threshold, 1) where degree < threshold {
                coefficients[limb * threshold + degree] = randomFieldElement(using: &random)
            }
        }
        return xCoordinates.map { x in
            let point = UInt64(x)
            let values = SecretBytes(count: shareValueByteCount) { out in
                for limb in 0..<limbCount {
                    var acc: UInt64 = 0
                    for degree in stride(from: threshold - 1, through: 0, by: -1) {
                        acc = PrimeField.add(PrimeField.multiply(acc, point), coefficients[limb * threshold + degree])
                    }
                    out.storeBytes(of: acc.littleEndian, toByteOffset: limb * 8, as: UInt64.self)
                }
            }
            return try! ShamirShare(x: x, values: values, commitment: commitment)
        }
    }

    /// Reconstructs the secret from the first `threshold` of `shares` and verifies it against
    /// their common commitment.
    public static func reconstruct(_ shares: [ShamirShare], threshold: Int) throws(ShamirError) -> SecretBytes {
        try validate(shares, threshold: threshold)
        let used = Array(shares.prefix(threshold))
        return try reconstruct(used, basis: LagrangeBasis(xCoordinates: used.map(\.x)))
    }

    /// Reconstructs from exactly the shares whose x-coordinates `basis` was built for, in order.
    public static func reconstruct(_ shares: [ShamirShare], basis: LagrangeBasis) throws(ShamirError) -> SecretBytes {
        guard shares.map(\.x) == basis.xCoordinates else { throw .duplicateShare(x: shares.first?.x ?? 0) }
        try validate(shares, threshold: shares.count)
        var overflow = false
        let secret = SecretBytes(count: secretByteCount) { out in
            var offset = 0
            for limb in 0..<limbCount {
                var acc: UInt64 = 0
                for (i, share) in shares.enumerated() {
                    acc = PrimeField.add(acc, PrimeField.multiply(basis.coefficients[i], share.limb(limb)))
                }
                let width = limbByteCounts[limb]
                if acc >> UInt64(8 * width) != 0 { overflow = true }
                for b in 0..<width { out[offset + b] = UInt8(truncatingIfNeeded: acc >> UInt64(8 * b)) }
                offset += width
            }
        }
        guard !overflow, ShamirCommitment(committingTo: secret) == shares[0].commitment else {
            throw .commitmentMismatch
        }
        return secret
    }

    /// Reconstructs when some shares may be wrong, and names them.
    ///
    /// Decodes with Berlekamp-Welch, which corrects up to floor((s' - t) / 2) wrong shares among
    /// the s' = min(s, t + 2 * `maximumCorrectableErrors`) shares it uses (the bound keeps the
    /// linear algebra small); then tries up to `maximumAttempts` random t-subsets from `random`.
    /// The secret is always checked against the commitment; the shares that disagree with the
    /// verified polynomial are reported.
    public static func reconstructIdentifyingBadShares(
        _ shares: [ShamirShare], threshold: Int, using random: inout some RandomSource,
        maximumAttempts: Int = 64, maximumCorrectableErrors: Int = 64
    ) throws(ShamirError) -> RobustReconstruction {
        try validate(shares, threshold: threshold)
        let t = threshold
        // Berlekamp-Welch on a bounded prefix of the shares, limb by limb.
        let used = Array(shares.prefix(t + 2 * max(0, maximumCorrectableErrors)))
        let xs = used.map { UInt64($0.x) }
        // The share limbs and the decoded polynomials (whose constant terms are the secret's limbs)
        // are zeroed before they are released.
        var polynomials: [[UInt64]] = []
        defer { for i in polynomials.indices { SecureMemory.zero(&polynomials[i]) } }
        for limb in 0..<limbCount {
            var ys = used.map { $0.limb(limb) }
            let decoded = BerlekampWelch.decode(xs: xs, ys: ys, threshold: t)
            SecureMemory.zero(&ys)
            guard let p = decoded else { break }
            polynomials.append(p)
        }
        var constantTerms = polynomials.map { $0[0] }
        let decodedSecret = polynomials.count == limbCount ? secret(fromConstantTerms: constantTerms) : nil
        SecureMemory.zero(&constantTerms)
        if let secret = decodedSecret, ShamirCommitment(committingTo: secret) == shares[0].commitment {
            let bad = shares.filter { share in
                (0..<limbCount).contains { BerlekampWelch.evaluate(polynomials[$0], at: UInt64(share.x)) != share.limb($0) }
            }.map(\.x)
            return RobustReconstruction(secret: secret, badShares: bad)
        }
        // Fall back to random subsets (useful when errors cluster beyond the decoded prefix).
        var order = Array(shares.indices)
        for attempt in 0..<maximumAttempts {
            if attempt > 0 {
                if shares.count == t { break }
                for i in 0..<t {
                    let j = i + Int(random.nextUInt64(below: UInt64(order.count - i)))
                    order.swapAt(i, j)
                }
            }
            let subset = order.prefix(t).map { shares[$0] }
            guard let basis = try? LagrangeBasis(xCoordinates: subset.map(\.x)),
                  let secret = try? reconstruct(subset, basis: basis) else { continue }
            let bad = shares.filter { !subset.contains($0) && !agrees($0, with: subset) }.map(\.x)
            return RobustReconstruction(secret: secret, badShares: bad)
        }
        throw .noConsistentSubset(shareCount: shares.count, attempts: maximumAttempts)
    }

    /// Packs five limbs (each below its byte width) into the 32-byte secret, or nil if a limb
    /// is too large to be a secret limb.
    static func secret(fromConstantTerms limbs: [UInt64]) -> SecretBytes? {
        var overflow = false
        let secret = SecretBytes(count: secretByteCount) { out in
            var offset = 0
            for limb in 0..<limbCount {
                let width = limbByteCounts[limb]
                if limbs[limb] >> UInt64(8 * width) != 0 { overflow = true }
                for b in 0..<width { out[offset + b] = UInt8(truncatingIfNeeded: limbs[limb] >> UInt64(8 * b)) }
                offset += width
            }
        }
        return overflow ? nil : secret
    }

    // MARK: - Internals

    static func validate(_ shares: [ShamirShare], threshold: Int) throws(ShamirError) {
        guard threshold >= 1 else { throw .invalidThreshold(threshold: threshold, shareCount: shares.count) }
        guard shares.count >= threshold else { throw .tooFewShares(have: shares.count, need: threshold) }
        var seen = Set<UInt32>()
        for share in shares {
            guard share.commitment == shares[0].commitment else { throw .mixedCommitments }
            guard seen.insert(share.x).inserted else { throw .duplicateShare(x: share.x) }
        }
    }

    /// Whether `share` lies on the polynomial through `basisShares` (evaluated at share.x).
    static func agrees(_ share: ShamirShare, with basisShares: [ShamirShare]) -> Bool {
        let x = UInt64(share.x)
        let xs = basisShares.map { UInt64($0.x) }
        for limb in 0..<limbCount {
            var value: UInt64 = 0
            for i in xs.indices {
                var numerator: UInt64 = 1
                var denominator: UInt64 = 1
                for j in xs.indices where j != i {
                    numerator = PrimeField.multiply(numerator, PrimeField.subtract(x, xs[j]))
                    denominator = PrimeField.multiply(denominator, PrimeField.subtract(xs[i], xs[j]))
                }
                let term = PrimeField.multiply(PrimeField.multiply(numerator, PrimeField.inverse(denominator)), basisShares[i].limb(limb))
                value = PrimeField.add(value, term)
            }
            if value != share.limb(limb) { return false }
        }
        return true
    }

    static func randomFieldElement(using random: inout some RandomSource) -> UInt64 {
        while true {
            let candidate = random.nextUInt64() & PrimeField.p
            if candidate < PrimeField.p { return candidate }
        }
    }
}
