import Foundation

/// Generated samples for testing and benchmarking the samples.csv readers (`edgemeter
/// generate-samples`, `benchmarks/peers/report-vs-datamash.sh`). Deterministic: the same
/// `shape`, `seed` and index give the same sample.
///
/// - `ping`: what `edgemeter ping` writes (ICMP echo rtt in ms with its labels), one target,
///   about 1% timeouts; no field needs quoting, so the file is plain comma-separated text.
/// - `mixed`: every shape a run directory holds, interleaved: ping with `from`/`to` labels (delay
///   rows), http phases (four keys in turn) with `error` rows whose reason has commas and quotes,
///   tcping `refused`/`unreachable`, scenario names with a comma, quotes and non-ASCII letters,
///   label values with commas (a quoted labels field), signed differences (negative values), the
///   units s, us and count, zero values.
public struct SampleFixture: Sendable {
    public enum Shape: String, Sendable, CaseIterable {
        case ping, mixed
    }

    public var shape: Shape
    public var seed: UInt64
    public var runID: String
    /// The first sample's timestamp; sample i is 1 ms later than sample i − 1.
    public var start: Date

    public init(shape: Shape, seed: UInt64 = 1, runID: String = "20261202T000000Z-fixture",
                start: Date = Date(timeIntervalSince1970: 1_795_000_000.123456)) {
        (self.shape, self.seed, self.runID, self.start) = (shape, seed, runID, start)
    }

    /// SplitMix64 of (seed, i): independent uniform bits per sample.
    func bits(_ i: Int, _ salt: UInt64 = 0) -> UInt64 {
        var z = seed &+ UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15 &+ salt &* 0xD1B5_4A32_D192_ED03
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    func unit(_ i: Int, _ salt: UInt64 = 0) -> Double { Double(bits(i, salt) >> 11) / Double(1 << 53) }

    /// A right-skewed latency around `median` (log-normal, σ = 0.35).
    func latency(_ i: Int, median: Double) -> Double {
        let u1 = Swift.max(unit(i, 1), 1e-12), u2 = unit(i, 2)
        let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return median * exp(0.35 * z)
    }

    public func sample(_ i: Int) -> Sample {
        let ts = start.addingTimeInterval(Double(i) / 1000)
        switch shape {
        case .ping: return ping(i, ts, scenario: "ping", target: "127.0.0.1", extra: [:])
        case .mixed: return mixed(i, ts)
        }
    }

    func ping(_ i: Int, _ ts: Date, scenario: String, target: String, extra: [String: String]) -> Sample {
        var labels = ["bytes": "64", "clock": "realtime-paired", "seq": String(i + 1), "socket": "raw", "timestamp": "kernel"]
        labels.merge(extra) { $1 }
        if unit(i, 3) < 0.01 {
            return Sample(runID: runID, scenario: scenario, probe: "ping", target: target, metric: "rtt", phase: "echo", value: nil,
                          unit: "ms", timestamp: ts, status: .timeout, reason: "no reply within 1 s", labels: labels)
        }
        labels["ttl"] = "64"
        return Sample(runID: runID, scenario: scenario, probe: "ping", target: target, metric: "rtt", phase: "echo",
                      value: latency(i, median: 0.055), unit: "ms", timestamp: ts, status: .ok, labels: labels)
    }

    func mixed(_ i: Int, _ ts: Date) -> Sample {
        let attempt = i / 16
        switch i % 16 {
        case 0, 1, 2:
            return ping(i, ts, scenario: "lab", target: "10.0.0.\(2 + i % 2)",
                        extra: ["from": "edge", "to": i % 2 == 0 ? "cloud" : "edge, \"b\""])
        case 3, 4, 5, 6:
            let phase = ["resolve", "connect", "first_byte", "total"][i % 16 - 3]
            let failed = unit(attempt, 4) < 0.05
            let labels = ["seq": String(attempt), "note": "keep-alive, reused=\(attempt % 2)"]
            if failed && phase != "resolve" {
                return Sample(runID: runID, scenario: "web", probe: "http", target: "http://127.0.0.1:8080/", metric: "latency",
                              phase: phase, value: nil, unit: "ms", timestamp: ts, status: .error,
                              reason: "status 503, body \"busy\"\nretry", labels: labels)
            }
            return Sample(runID: runID, scenario: "web", probe: "http", target: "http://127.0.0.1:8080/", metric: "latency",
                          phase: phase, value: latency(i, median: phase == "resolve" ? 0.01 : 0.3), unit: "ms", timestamp: ts,
                          status: .ok, labels: labels)
        case 7:
            let status: SampleStatus = unit(i, 5) < 0.5 ? .refused : .unreachable
            return Sample(runID: runID, scenario: "tcp, \"quoted\"", probe: "tcping", target: "[::1]:9", metric: "latency",
                          phase: "connect", value: nil, unit: "ms", timestamp: ts, status: status,
                          reason: status == .refused ? "connection refused (RST), nothing listens" : "no route to host")
        case 8, 9:
            return Sample(runID: runID, scenario: "café ☕", probe: "tcping", target: "127.0.0.1:8000", metric: "latency",
                          phase: "connect", value: latency(i, median: 0.08), unit: "ms", timestamp: ts, status: .ok,
                          labels: ["from": "café", "to": "127.0.0.1:8000"])
        case 10:
            // app − wire: a signed difference around zero.
            return Sample(runID: runID, scenario: "wire", probe: "wire", target: "127.0.0.1:8080", metric: "app_minus_wire",
                          phase: "total", value: (unit(i, 6) - 0.5) * 0.2, unit: "ms", timestamp: ts, status: .ok)
        case 11:
            return Sample(runID: runID, scenario: "startup", probe: "startup", target: "docker", metric: "startup", phase: "start",
                          value: latency(i, median: 0.25), unit: "s", timestamp: ts, status: unit(i, 7) < 0.1 ? .timeout : .ok,
                          reason: "", labels: ["image": "busybox"])
        case 12:
            return Sample(runID: runID, scenario: "wire", probe: "wire", target: "lo", metric: "capture_received", phase: "total",
                          value: Double(bits(i, 8) % 1000), unit: "count", timestamp: ts, status: .ok)
        case 13:
            return Sample(runID: runID, scenario: "spin", probe: "ping", target: "127.0.0.1", metric: "rtt", phase: "echo",
                          value: latency(i, median: 45), unit: "us", timestamp: ts, status: .ok, labels: ["spin": "true"])
        case 14:
            return Sample(runID: runID, scenario: "zero", probe: "tcping", target: "127.0.0.1:1", metric: "latency", phase: "connect",
                          value: 0, unit: "ms", timestamp: ts, status: .ok)
        default:
            return Sample(runID: runID, scenario: "lab", probe: "http", target: "http://cloud/healthz", metric: "latency", phase: "total",
                          value: latency(i, median: 1.5), unit: "ms", timestamp: ts, status: unit(i, 9) < 0.02 ? .timeout : .ok,
                          reason: "", labels: ["from": "edge", "to": "cloud"])
        }
    }

    /// samples.csv text: the header and rows `range`, as `RunDirectory` writes them
    /// (`SampleCSV.row`).
    public func csv(_ range: Range<Int>) -> String {
        var out = range.lowerBound == 0 ? SampleCSV.headerLine : ""
        for i in range { out += SampleCSV.row(sample(i)) }
        return out
    }
}
