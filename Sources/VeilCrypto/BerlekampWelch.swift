/// Reed-Solomon decoding of Shamir shares (Berlekamp-Welch) over GF(2^61 - 1).
///
/// Given s points of which at most e = floor((s - t) / 2) are wrong, finds the polynomial P of
/// degree < t through all the right ones: solve Q(x_i) = y_i * E(x_i) for an error locator E
/// (monic, degree e) and Q (degree < t + e), then P = Q / E. The cost is one Gaussian elimination
/// of t + 2e unknowns, so callers bound s.
enum BerlekampWelch {
    /// The decoded polynomial's coefficients (lowest degree first), or nil when the points have
    /// more errors than can be corrected.
    static func decode(xs: [UInt64], ys: [UInt64], threshold t: Int) -> [UInt64]? {
        let s = xs.count
        guard s >= t else { return nil }
        let e = (s - t) / 2
        let unknowns = t + 2 * e
        let rows = Array(0..<unknowns)
        // Columns: q_0...q_{t+e-1}, then e_0...e_{e-1}; right-hand side y_i * x_i^e.
        var matrix = [[UInt64]](repeating: [UInt64](repeating: 0, count: unknowns + 1), count: unknowns)
        // Every intermediate below is derived from secret shares: zero it before it is released.
        defer { for i in matrix.indices { SecureMemory.zero(&matrix[i]) } }
        for r in rows {
            let x = xs[r], y = ys[r]
            var power: UInt64 = 1
            for j in 0..<(t + e) {
                matrix[r][j] = power
                if j < e { matrix[r][t + e + j] = PrimeField.subtract(0, PrimeField.multiply(y, power)) }
                power = PrimeField.multiply(power, x)
            }
            var xe: UInt64 = 1
            for _ in 0..<e { xe = PrimeField.multiply(xe, x) }
            matrix[r][unknowns] = PrimeField.multiply(y, xe)
        }
        guard var solution = solve(&matrix, unknowns: unknowns) else { return nil }
        var q = Array(solution[0..<(t + e)])
        var errorLocator = Array(solution[(t + e)...]) + [1]
        SecureMemory.zero(&solution)
        defer {
            SecureMemory.zero(&q)
            SecureMemory.zero(&errorLocator)
        }
        guard var (quotient, remainder) = divide(q, by: errorLocator) else { return nil }
        defer {
            SecureMemory.zero(&quotient)
            SecureMemory.zero(&remainder)
        }
        guard remainder.allSatisfy({ $0 == 0 }) else { return nil }
        var p = Array(quotient.prefix(t))
        while p.count < t { p.append(0) }
        return p
    }

    /// Evaluates `coefficients` (lowest degree first) at x.
    static func evaluate(_ coefficients: [UInt64], at x: UInt64) -> UInt64 {
        var acc: UInt64 = 0
        for c in coefficients.reversed() { acc = PrimeField.add(PrimeField.multiply(acc, x), c) }
        return acc
    }

    /// Gaussian elimination; free variables are set to zero (any solution yields Q = P * E).
    static func solve(_ m: inout [[UInt64]], unknowns: Int) -> [UInt64]? {
        let rows = m.count
        var pivotColumnOfRow = [Int](repeating: -1, count: rows)
        var row = 0
        for column in 0..<unknowns where row < rows {
            guard let pivot = (row..<rows).first(where: { m[$0][column] != 0 }) else { continue }
            m.swapAt(row, pivot)
            let inverse = PrimeField.inverse(m[row][column])
            for j in column...unknowns { m[row][j] = PrimeField.multiply(m[row][j], inverse) }
            for r in 0..<rows where r != row && m[r][column] != 0 {
                let factor = m[r][column]
                for j in column...unknowns {
                    m[r][j] = PrimeField.subtract(m[r][j], PrimeField.multiply(factor, m[row][j]))
                }
            }
            pivotColumnOfRow[row] = column
            row += 1
        }
        // Inconsistent if a zero row has a non-zero right-hand side.
        for r in row..<rows where m[r][unknowns] != 0 { return nil }
        var solution = [UInt64](repeating: 0, count: unknowns)
        for r in 0..<row { solution[pivotColumnOfRow[r]] = m[r][unknowns] }
        return solution
    }

    /// Polynomial long division (lowest degree first); the divisor must be monic.
    static func divide(_ dividend: [UInt64], by divisor: [UInt64]) -> (quotient: [UInt64], remainder: [UInt64])? {
        guard let lead = divisor.last, lead == 1 else { return nil }
        var remainder = dividend
        let degree = divisor.count - 1
        guard remainder.count > degree else { return ([], remainder) }
        var quotient = [UInt64](repeating: 0, count: remainder.count - degree)
        for i in stride(from: remainder.count - 1, through: degree, by: -1) {
            let coefficient = remainder[i]
            quotient[i - degree] = coefficient
            if coefficient == 0 { continue }
            for j in 0...degree {
                remainder[i - degree + j] = PrimeField.subtract(remainder[i - degree + j], PrimeField.multiply(coefficient, divisor[j]))
            }
        }
        defer { SecureMemory.zero(&remainder) }
        return (quotient, Array(remainder.prefix(degree)))
    }
}
