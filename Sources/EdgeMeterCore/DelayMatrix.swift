import Foundation

/// The node-to-node delay matrix `edgemeter matrix` assembles from what the agent on every node
/// measured of every other node: one cell per ordered pair (origin row, destination column), each
/// a `DelayRow` of one metric (p50/p90/p99 in ms over the received answers, loss, the window).
/// Pure: built from rows, compared with expectations, rendered; no I/O.
public struct DelayMatrix: Sendable, Equatable {
    public struct Pair: Hashable, Sendable, Comparable {
        public var from: String
        public var to: String
        public init(from: String, to: String) { self.from = from; self.to = to }
        public static func < (a: Pair, b: Pair) -> Bool { (a.from, a.to) < (b.from, b.to) }
    }

    /// Node names in the order of the topology (rows and columns).
    public var nodes: [String]
    /// The metric every cell holds (`ping_rtt`, `tcp_connect`, `http_total`).
    public var metric: String
    public var cells: [Pair: DelayRow]

    /// The matrix of `metric` over `nodes` from `rows` (rows of other metrics or of nodes not
    /// listed are ignored; a pair measured twice keeps the row whose window ends last).
    public init(rows: [DelayRow], nodes: [String], metric: String) {
        self.nodes = nodes
        self.metric = metric
        let known = Set(nodes)
        var cells: [Pair: DelayRow] = [:]
        for r in rows where r.metric == metric && known.contains(r.from) && known.contains(r.to) && r.from != r.to {
            let k = Pair(from: r.from, to: r.to)
            if let have = cells[k], have.windowEnd >= r.windowEnd { continue }
            cells[k] = r
        }
        self.cells = cells
    }

    /// Every ordered pair of distinct nodes.
    public var pairs: [Pair] { nodes.flatMap { a in nodes.filter { $0 != a }.map { Pair(from: a, to: $0) } } }
    /// Pairs without a cell (the origin's agent did not report that destination).
    public var missing: [Pair] { pairs.filter { cells[$0] == nil } }

    /// The oldest and newest end of a cell's window: the matrix's age is `now − oldest`, the age
    /// of its stalest cell (every cell is at most that old).
    public var oldestWindowEnd: Date? { cells.values.map(\.windowEnd).min() }
    public var newestWindowEnd: Date? { cells.values.map(\.windowEnd).max() }
    public func ageSeconds(now: Date) -> Double? { oldestWindowEnd.map { now.timeIntervalSince($0) } }

    /// One comparison of a measured cell's p50 with the expected delay, under the calibration rule
    /// (`CalibrationRule.p50Tolerance`: max(0.5 ms, 5 % of the expectation)).
    public struct Check: Sendable, Equatable {
        public var pair: Pair
        public var expectedMs: Double
        public var measuredP50Ms: Double?
        public var toleranceMs: Double
        public var passed: Bool
        public var errorMs: Double? { measuredP50Ms.map { $0 - expectedMs } }
    }

    /// The checks for every pair with an expectation; a pair with no cell or no answer fails.
    public func check(expected: [Pair: Double]) -> [Check] {
        pairs.compactMap { p in
            guard let e = expected[p] else { return nil }
            let tol = CalibrationRule.p50Tolerance(predictedMs: e)
            let m = cells[p]?.p50Milliseconds
            return Check(pair: p, expectedMs: e, measuredP50Ms: m, toleranceMs: tol, passed: m.map { abs($0 - e) <= tol } ?? false)
        }
    }

    /// The cells as delays.csv rows (`DelayTable.csv` writes them), in row-major node order.
    public var rows: [DelayRow] { pairs.compactMap { cells[$0] } }

    /// A Markdown table: one row per origin, one column per destination, each cell
    /// `p50 (p90)` ms plus the loss when there was any, `—` on the diagonal, `?` when missing;
    /// with `expected`, a second table of expected p50, error and verdict per pair.
    public func markdown(now: Date, expected: [Pair: Double]? = nil) -> String {
        var s = "Delay matrix, \(metric) p50 (p90) in ms, row = origin (the agent), column = destination"
        if let age = ageSeconds(now: now) {
            s += "; age \(Format.fixed(age, 1)) s (oldest window end \(Format.timestamp(oldestWindowEnd!)))"
        }
        s += "\n\n| from \\ to | " + nodes.joined(separator: " | ") + " |\n|---|" + nodes.map { _ in "---:|" }.joined() + "\n"
        for a in nodes {
            s += "| \(a) |"
            for b in nodes {
                if a == b { s += " — |"; continue }
                guard let c = cells[Pair(from: a, to: b)] else { s += " ? |"; continue }
                var t = "\(Format.fixed(c.p50Milliseconds, 2)) (\(Format.fixed(c.p90Milliseconds, 2)))"
                if c.lossPercent > 0 { t += " \(Format.fixed(c.lossPercent, 0))% lost" }
                s += " \(t) |"
            }
            s += "\n"
        }
        if let expected {
            let checks = check(expected: expected)
            let failed = checks.filter { !$0.passed }.count
            s += "\nAgainst the injected delays (rule |p50 − expected| ≤ max(0.5 ms, 5 %)): "
                + "\(checks.count - failed)/\(checks.count) pairs pass\n\n"
            s += "| from | to | expected ms | p50 ms | error ms | tolerance ms | verdict |\n|---|---|---:|---:|---:|---:|---|\n"
            for c in checks {
                s += "| \(c.pair.from) | \(c.pair.to) | \(Format.fixed(c.expectedMs, 1)) | \(Format.fixed(c.measuredP50Ms, 3)) | "
                    + "\(Format.fixed(c.errorMs, 3)) | \(Format.fixed(c.toleranceMs, 2)) | \(c.passed ? "pass" : "FAIL") |\n"
            }
        }
        return s
    }
}
