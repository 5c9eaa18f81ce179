import Foundation
import Histogram
import EdgeMeterCore

/// Renders a `LoadResult` the way wrk2 prints it, and as run-directory samples.
public enum LoadReport {
    static func ms(_ ns: Double) -> String {
        let v = ns / 1e6
        if v >= 1000 { return String(format: "%.2fs", v / 1000) }
        if v < 1 { return String(format: "%.0fus", v * 1000) }
        return String(format: "%.2fms", v)
    }

    static func bytes(_ b: Double) -> String {
        if b >= 1073741824.0 { return String(format: "%.2fGB", b / 1073741824.0) }
        if b >= 1048576.0 { return String(format: "%.2fMB", b / 1048576.0) }
        if b >= 1024.0 { return String(format: "%.2fKB", b / 1024.0) }
        return String(format: "%.0fB", b)
    }

    /// wrk2-style text: thread stats, the latency distribution, the detailed percentile spectrum
    /// (HdrHistogram), totals, errors, requests/s and transfer/s.
    public static func text(_ r: LoadResult, spectrum: Bool = true) -> String {
        var out = ""
        let h = r.corrected
        let mode = r.openLoop ? String(format: "open loop at %.0f requests/s (latency from the intended send time, coordinated-omission corrected)", r.requestedRate ?? 0)
                              : "closed loop (each connection sends when its last response completed)"
        let after = r.warmupSeconds > 0 ? String(format: "measured, after a %.2fs warm-up", r.warmupSeconds) : "measured, no warm-up"
        out += "Ran \(String(format: "%.2f", r.measuredSeconds))s (\(after)) @ \(r.target)\n"
        out += "  \(r.threads) threads and \(r.connections) connections, \(mode)\n"
        if h.totalCount == 0 {
            out += "  No responses were received: no latency to report.\n"
        } else {
        out += "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n"
        // Each of `mean` and `stdDeviation` walks the whole histogram (`stdDeviation` twice): once each.
        let mean = h.mean, deviation = h.stdDeviation
        let within = h.totalCount > 0 ? stdevShare(h, mean: mean, deviation: deviation) : 0
        out += "    Latency " + pad(ms(mean), 9) + pad(ms(deviation), 9) + pad(ms(Double(h.max)), 9)
            + pad(String(format: "%.2f%%", within), 9) + "\n"
        func dist(_ title: String, _ hist: Histogram<UInt64>) {
            out += "  Latency Distribution (HdrHistogram - \(title))\n"
            for p in [50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0] {
                let v = hist.totalCount == 0 ? 0 : Double(hist.valueAtPercentile(p))
                out += pad(String(format: "%.3f%%", p), 9) + pad(ms(v), 10) + "\n"
            }
        }
        dist(r.openLoop ? "Recorded Latency, corrected" : "Recorded Latency", h)
        if r.openLoop {
            dist("Uncorrected Latency (measured from the actual send time)", r.uncorrected)
        }
        }
        out += timeoutLine(r)
        if r.unsent > 0 {
            out += "  Unsent: \(r.unsent) requests were due before the end but not sent (connection busy or reconnecting); "
                + "recorded in the corrected latency at end - intended send time\n"
        }
        if spectrum && h.totalCount > 0 {
            out += "\n  Detailed Percentile spectrum:\n"
            var s = ""
            h.outputPercentileDistribution(to: &s, outputValueUnitScalingRatio: 1e6, percentileTicksPerHalfDistance: 5)
            out += s.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
            out += "  (values in ms)\n"
        }
        out += "----------------------------------------------------------\n"
        out += "  \(r.responses) requests in \(String(format: "%.2f", r.measuredSeconds))s, \(bytes(Double(r.bytesRead))) read\n"
        if r.warmupRequests > 0 { out += "  \(r.warmupRequests) warm-up requests not counted\n" }
        let statuses = r.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        if !statuses.isEmpty { out += "  Status codes: \(statuses)\n" }
        if r.totalErrors > 0 {
            out += "  Errors: " + LoadErrorKind.allCases.map { "\($0.rawValue) \(r.errors[$0] ?? 0)" }.joined(separator: ", ") + "\n"
        }
        if let achieved = r.measuredRate, let transfer = r.transferRate {
            out += String(format: "Requests/sec: %10.2f\n", achieved)
            if let req = r.requestedRate {
                out += String(format: "Requested:    %10.2f (achieved %.1f%% of the requested rate)\n", req, req > 0 ? achieved / req * 100 : 0)
            }
            out += "Transfer/sec: " + pad(bytes(transfer), 10) + "\n"
        } else {
            out += "Requests/sec:        n/a (\(r.noWindowReason ?? "no measured window"))\n"
            out += "Transfer/sec:        n/a\n"
        }
        if let why = r.stopReason { out += "Stopped early: \(why)\n" }
        return out
    }

    /// The timeout count, printed beside the percentiles.
    static func timeoutLine(_ r: LoadResult) -> String {
        let n = r.errors[.timeout] ?? 0
        let limit = ms(Double(r.timeoutNanoseconds))
        if n == 0 { return "  Timeouts: 0 (limit \(limit))\n" }
        return "  Timeouts: \(n) requests without a complete response within \(limit); recorded in the latency at \(limit)\n"
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s
    }

    /// Share of recorded values within one standard deviation of the mean (wrk's "+/- Stdev");
    /// `mean` and `deviation` are `h.mean` and `h.stdDeviation`, passed in so they are computed once.
    static func stdevShare(_ h: Histogram<UInt64>, mean: Double, deviation: Double) -> Double {
        let lo = max(0, mean - deviation)
        let hi = mean + deviation
        let n = h.count(within: UInt64(lo)...UInt64(max(lo, hi)))
        return Double(n) / Double(h.totalCount) * 100
    }

    /// Aggregate samples for the run directory (a fixed, small number of rows whatever the
    /// request count):
    /// - `latency` / `corrected_p50` ... `corrected_p99999`, `corrected_max`, `corrected_mean`,
    ///   `corrected_stddev` (open loop) and the same with `uncorrected_` (both loops), in ms;
    /// - `latency` / `timeouts` (count of timed-out requests, recorded in the percentiles at the
    ///   timeout) and, open loop, `latency` / `unsent` (count of requests due before the end but
    ///   not sent, recorded in the corrected percentiles at end − intended);
    /// - `throughput` / `achieved` and `requested` (req/s), `interval` (one per measured second);
    /// - `transfer` / `read` (bytes/s); `responses` / `status_<code>` (count);
    ///   `errors` / `connect`, `timeout`, `reset`, `status`, `body` (count, always all five).
    /// Without a measured window (stopped during the warm-up, nothing completed) `achieved` and
    /// `read` are failed samples with the reason, not 0.
    public static func samples(_ r: LoadResult, runID: String, scenario: String, probe: String = "load",
                               timestamp: Date, labels: [String: String] = [:]) -> [Sample] {
        var labels = labels
        labels["clock"] = "monotonic"
        labels["loop"] = r.openLoop ? "open" : "closed"
        labels["connections"] = String(r.connections)
        if let rate = r.requestedRate { labels["rate"] = String(format: "%g", rate) }
        var rows: [Sample] = []
        func add(_ metric: String, _ phase: String, _ v: Double?, _ unit: String, status: SampleStatus = .ok, reason: String = "") {
            rows.append(Sample(runID: runID, scenario: scenario, probe: probe, target: r.target, metric: metric, phase: phase,
                               value: v, unit: unit, timestamp: timestamp, status: v == nil ? (status == .ok ? .error : status) : status,
                               reason: v == nil && reason.isEmpty ? "no responses were measured" : reason, labels: labels))
        }
        let percentiles: [(String, Double)] = [("p50", 50), ("p75", 75), ("p90", 90), ("p99", 99), ("p999", 99.9), ("p9999", 99.99), ("p99999", 99.999)]
        var sets: [(String, Histogram<UInt64>)] = [("uncorrected", r.uncorrected)]
        if r.openLoop { sets.insert(("corrected", r.corrected), at: 0) }
        for (name, h) in sets {
            let has = h.totalCount > 0
            for (p, q) in percentiles {
                add("latency", "\(name)_\(p)", has ? Double(h.valueAtPercentile(q)) / 1e6 : nil, "ms")
            }
            add("latency", "\(name)_max", has ? Double(h.max) / 1e6 : nil, "ms")
            add("latency", "\(name)_mean", has ? h.mean / 1e6 : nil, "ms")
            add("latency", "\(name)_stddev", has ? h.stdDeviation / 1e6 : nil, "ms")
        }
        add("latency", "timeouts", Double(r.errors[.timeout] ?? 0), "count")
        if r.openLoop { add("latency", "unsent", Double(r.unsent), "count") }
        let noWindow = r.noWindowReason ?? ""
        add("throughput", "achieved", r.measuredRate, "req/s", reason: noWindow)
        if let req = r.requestedRate { add("throughput", "requested", req, "req/s") }
        for c in r.perSecond { add("throughput", "interval", Double(c), "req/s") }
        add("transfer", "read", r.transferRate, "B/s", reason: noWindow)
        for (code, n) in r.statusCounts.sorted(by: { $0.key < $1.key }) { add("responses", "status_\(code)", Double(n), "count") }
        for kind in LoadErrorKind.allCases { add("errors", kind.rawValue, Double(r.errors[kind] ?? 0), "count") }
        return rows
    }

    /// The run as a `load-histograms.json` entry: both latency histograms whole (nanoseconds),
    /// the per-second throughput, the status and error counts.
    public static func record(_ r: LoadResult, scenario: String) -> LoadRecord {
        var latency: [LatencySeries] = []
        if r.openLoop { latency.append(LatencySeries(series: "corrected", histogram: r.corrected)) }
        latency.append(LatencySeries(series: "uncorrected", histogram: r.uncorrected))
        return LoadRecord(scenario: scenario, target: r.target, openLoop: r.openLoop, requestedRate: r.requestedRate,
                          connections: r.connections, threads: r.threads, measuredSeconds: r.measuredSeconds,
                          warmupSeconds: r.warmupSeconds, responses: r.responses, bytesRead: r.bytesRead, unsent: r.unsent,
                          timeoutNanoseconds: r.timeoutNanoseconds, perSecond: r.perSecond,
                          statusCounts: Dictionary(uniqueKeysWithValues: r.statusCounts.map { (String($0.key), $0.value) }),
                          errors: Dictionary(uniqueKeysWithValues: LoadErrorKind.allCases.map { ($0.rawValue, r.errors[$0] ?? 0) }),
                          latency: latency)
    }

    /// The percentile spectrum as CSV (HdrHistogram's format, values in ms), for the run directory.
    public static func spectrumCSV(_ h: Histogram<UInt64>) -> String {
        var s = ""
        if h.totalCount > 0 { h.outputPercentileDistribution(to: &s, outputValueUnitScalingRatio: 1e6, format: .csv) }
        return s
    }
}
