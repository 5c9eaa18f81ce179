import Foundation
import EdgeMeterCore
import EdgeMeterHTTP

/// One `Server-Timing` entry (`name;dur=0.412;desc="5 + 6"`).
public struct ServerTimingEntry: Sendable, Equatable {
    public var name: String
    /// Milliseconds, as the server reported them.
    public var duration: Double?
    public var description: String?

    /// Parses a `Server-Timing` header value (comma-separated entries, `;`-separated parameters,
    /// quoted descriptions may contain commas).
    public static func parse(_ header: String) -> [ServerTimingEntry] {
        var entries: [String] = []
        var current = ""
        var quoted = false
        for c in header {
            if c == "\"" { quoted.toggle() }
            if c == ",", !quoted {
                entries.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        entries.append(current)
        return entries.compactMap { raw in
            let parts = raw.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = parts.first, !name.isEmpty else { return nil }
            var e = ServerTimingEntry(name: name)
            for p in parts.dropFirst() {
                guard let eq = p.firstIndex(of: "=") else { continue }
                let key = p[..<eq].lowercased()
                var value = String(p[p.index(after: eq)...])
                if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
                if key == "dur" { e.duration = Double(value) }
                if key == "desc" { e.description = value }
            }
            return e
        }
    }
}

/// What `edgemeter calc` sends and checks.
public struct CalcProbeOptions: Sendable {
    public var expression: String
    /// The answer the front end must return (compared with a relative tolerance of 1e-9).
    public var expected: Double?
    /// The operation services the front end must call, in call order (`sum`, `mul`, ...): names
    /// the hop phases `hop1_sum`, `hop2_mul`, ... so every attempt has the same columns.
    public var hops: [String]
    public var count: Int = 10
    public var interval: Duration = .seconds(1)
    public var timeout: Duration = .seconds(5)

    public init(expression: String, expected: Double?, hops: [String], count: Int = 10, interval: Duration = .seconds(1),
                timeout: Duration = .seconds(5)) {
        self.expression = expression
        self.expected = expected
        self.hops = hops
        self.count = count
        self.interval = interval
        self.timeout = timeout
    }
}

/// `edgemeter calc`: POSTs an expression to the calculator front end, checks the numeric answer
/// and records the client-side phases (resolve, connect, first_byte, total, as `edgemeter http`)
/// plus one phase per downstream call, `hopN_<service>`, taken from the `Server-Timing` header:
/// the front end's own measurement of that call (pooled connection to the operation service,
/// request, reply).
public enum CalcProbe {
    public static func hopPhases(_ hops: [String]) -> [String] {
        hops.enumerated().map { "hop\($0.offset + 1)_\($0.element)" }
    }

    /// Checks a calculator response; returns the reason when it is wrong.
    public static func check(_ r: HTTPResponseInfo, options: CalcProbeOptions) -> (problem: String?, result: Double?, hops: [ServerTimingEntry]) {
        if r.status != 200 {
            // The calculator's errors are JSON with an "error" text; anything else: its first line.
            let object = try? JSONSerialization.jsonObject(with: Data(r.bodyText.utf8))
            let detail = ((object as? [String: Any])?["error"] as? String).flatMap { HTTPProbe.firstLine($0) } ?? HTTPProbe.firstLine(r.bodyText)
            return ("expected status 200, got \(r.statusLine)" + (detail.map { ": \($0)" } ?? ""), nil, [])
        }
        let object = try? JSONSerialization.jsonObject(with: Data(r.bodyText.utf8))
        guard let dict = object as? [String: Any], let number = dict["result"] as? NSNumber else {
            return ("the response has no numeric \"result\"" + (HTTPProbe.firstLine(r.bodyText).map { ": \($0)" } ?? " (empty body)")
                    + "; is the URL the calculator front end's /calculate?", nil, [])
        }
        let value = number.doubleValue
        let hops = r.header("Server-Timing").map(ServerTimingEntry.parse) ?? []
        if let want = options.expected {
            let tolerance = max(1e-9 * max(abs(want), abs(value)), 1e-12)
            if abs(value - want) > tolerance {
                return ("wrong answer for \(options.expression): expected \(want), got \(value)", value, hops)
            }
        }
        if hops.map(\.name) != options.hops {
            return ("Server-Timing lists calls [\(hops.map(\.name).joined(separator: ", "))], expected [\(options.hops.joined(separator: ", "))]", value, hops)
        }
        return (nil, value, hops)
    }

    /// Runs the attempts, numbered from 1 (the `seq` label and the progress lines). A failed
    /// attempt's line gives the reason; with `fullBody` the whole response body follows it.
    @discardableResult
    public static func run(target: HTTPTarget, options: CalcProbeOptions, runID: String, scenario: String,
                           sink: SampleSink, stop: StopFlag, progress: (@Sendable (String) -> Void)? = nil,
                           fullBody: Bool = false) async -> (attempts: Int, succeeded: Int) {
        let request = HTTPRequestSpec(method: "POST", path: target.path, headers: [("Content-Type", "text/plain")],
                                      body: Array(options.expression.utf8))
        let hopNames = hopPhases(options.hops)
        let start = ContinuousClock.now
        var attempts = 0
        var ok = 0
        for seq in 1...max(1, options.count) {
            if stop.isStopped { break }
            if seq > 1 {
                let due = start + options.interval * (seq - 1)
                while ContinuousClock.now < due, !stop.isStopped {
                    try? await Task.sleep(for: min(due - ContinuousClock.now, .milliseconds(50)))
                }
                if stop.isStopped { break }
            }
            let x = await HTTPProbe.exchange(target, request: request, timeout: options.timeout)
            let checked = x.response.map { check($0, options: options) }
            let problem = checked?.problem
            let labels = ["seq": String(seq), "expression": options.expression]
            HTTPProbe.samples(x, mismatch: problem, runID: runID, scenario: scenario, probe: "calc", target: target.description,
                              labels: labels).forEach(sink.record)
            let failure = x.error?.description ?? problem
            for (i, phase) in hopNames.enumerated() {
                var l = labels
                l["source"] = "server-timing"
                if let failure {
                    sink.record(Sample(runID: runID, scenario: scenario, probe: "calc", target: target.description, metric: "latency",
                                       phase: phase, value: nil, unit: "ms", timestamp: x.startedAt,
                                       status: x.error?.sampleStatus ?? .error, reason: failure, labels: l))
                } else {
                    let v = checked?.hops[i].duration
                    sink.record(Sample(runID: runID, scenario: scenario, probe: "calc", target: target.description, metric: "latency",
                                       phase: phase, value: v, unit: "ms", timestamp: x.startedAt, status: v == nil ? .error : .ok,
                                       reason: v == nil ? "the Server-Timing entry has no dur" : "", labels: l))
                }
            }
            attempts += 1
            if failure == nil { ok += 1 }
            if let progress {
                if let failure { progress("seq=\(seq) failed: \(failure)" + (fullBody ? HTTPProbe.bodyBlock(x.response) : "")) }
                else {
                    progress("seq=\(seq) result=\(checked?.result.map { "\($0)" } ?? "?") total=\(String(format: "%.3f", Double(x.totalNanoseconds ?? 0) / 1e6)) ms")
                }
            }
        }
        return (attempts, ok)
    }
}

extension CalcProbe: WireMatchable {
    public static let probeName = "calc"
    public static let wireKeys = [WireKey(phase: "connect", match: .tcpHandshake), WireKey(phase: "first_byte", match: .httpFirstByte)]
}
