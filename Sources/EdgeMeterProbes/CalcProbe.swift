import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem

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
    /// Attempt k is due at start + k·interval; an attempt longer than the interval delays the next.
    public var schedule: Schedule
    /// Limit for the connect, and separately for the whole exchange after it.
    public var timeout: Duration

    /// `count` attempts (at least 1), `interval` apart.
    public init(expression: String, expected: Double?, hops: [String], count: Int = 10, interval: Duration = .seconds(1),
                timeout: Duration = .seconds(5)) {
        (self.expression, self.expected, self.hops) = (expression, expected, hops)
        (schedule, self.timeout) = (Schedule(count: max(1, count), interval: interval), timeout)
    }
}

/// `edgemeter calc`: POSTs an expression to the calculator front end, checks the numeric answer
/// and records the client-side phases (resolve, connect, first_byte, total, as `edgemeter http`)
/// plus one phase per downstream call, `hopN_<service>`, taken from the `Server-Timing` header:
/// the front end's own measurement of that call (pooled connection to the operation service,
/// request, reply).
public struct CalcProbe: HTTPAttemptProbe {
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

    public var options: CalcProbeOptions
    public var attempts: HTTPAttempts

    public init(options: CalcProbeOptions, attempts: HTTPAttempts) { (self.options, self.attempts) = (options, attempts) }

    /// The POST the probe sends: the expression as plain text to the target's path.
    public var request: HTTPRequestSpec {
        HTTPRequestSpec(method: "POST", path: attempts.target.path, headers: [("Content-Type", "text/plain")], body: Array(options.expression.utf8))
    }

    /// Attempts numbered from 1 (the `seq` label and the lines). Samples (probe `calc`) per
    /// attempt: the http phases, then `hopN_<service>` from `Server-Timing` (label
    /// `source=server-timing`), every phase failed with the reason when the attempt failed.
    public func run(schedule: Schedule, clock: any MeasurementClock, stop: StopFlag, sink: SampleSink) async -> [ProbeTotals] {
        let options = self.options, scope = attempts.scope, target = attempts.target, fullBody = attempts.fullBody
        let hopNames = Self.hopPhases(options.hops)
        return await attempts.run(request: request, timeout: options.timeout, schedule: schedule, clock: clock, stop: stop, sink: sink) { seq, x in
            let checked = x.response.map { Self.check($0, options: options) }
            let problem = checked?.problem
            let labels = ["seq": String(seq), "expression": options.expression]
            var rows = HTTPProbe.samples(x, mismatch: problem, runID: scope.runID, scenario: scope.scenario, probe: Self.probeName,
                                         target: target.description, labels: labels)
            let failure = x.error?.description ?? problem
            var hopLabels = labels
            hopLabels["source"] = "server-timing"
            for (i, phase) in hopNames.enumerated() {
                if let failure {
                    rows.append(Sample(runID: scope.runID, scenario: scope.scenario, probe: Self.probeName, target: target.description, metric: "latency",
                                       phase: phase, value: nil, unit: "ms", timestamp: x.startedAt,
                                       status: x.error?.sampleStatus ?? .error, reason: failure, labels: hopLabels))
                } else {
                    let v = checked?.hops[i].duration
                    rows.append(Sample(runID: scope.runID, scenario: scope.scenario, probe: Self.probeName, target: target.description, metric: "latency",
                                       phase: phase, value: v, unit: "ms", timestamp: x.startedAt, status: v == nil ? .error : .ok,
                                       reason: v == nil ? "the Server-Timing entry has no dur" : "", labels: hopLabels))
                }
            }
            let line = failure.map { "seq=\(seq) failed: \($0)" + (fullBody ? HTTPProbe.bodyBlock(x.response) : "") }
                ?? "seq=\(seq) result=\(checked?.result.map { "\($0)" } ?? "?") total=\(String(format: "%.3f", Double(x.totalNanoseconds ?? 0) / 1e6)) ms"
            return (rows, failure, line)
        }
    }

    public static func schedule(of options: CalcProbeOptions) -> Schedule { options.schedule }
}

extension CalcProbe: WireMatchable {
    public static let probeName = "calc"
    public static let wireKeys = [WireKey(phase: "connect", match: .tcpHandshake), WireKey(phase: "first_byte", match: .httpFirstByte)]
}
