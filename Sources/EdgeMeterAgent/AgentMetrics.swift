import Foundation
import Prometheus
import EdgeMeterCore

/// The agent's `/metrics`: every sample its probes record, in a swift-prometheus registry.
///
/// Families (all labelled `name` = the probe's name in the configuration, `probe` = its kind,
/// `target` = as written, `phase` = the sample's phase):
///
/// - `edgemeter_latency_seconds` (histogram, `RTTBuckets`): the value of every successful sample,
///   in seconds: ping `echo` (ICMP round trip), tcping `connect` (connect() until the handshake
///   completed) and `first_byte`, http/calc/vehicle `resolve`, `connect`, `first_byte`, `total`,
///   calc `hopN_<service>` (the front end's own Server-Timing figure). Extra labels say where the
///   figure comes from: `socket` (`raw`/`datagram` ICMP sockets, `stream` for TCP) and `timestamp`
///   (`kernel`: the receive end is the kernel's SO_TIMESTAMPNS stamp; `userspace`: both ends read by
///   this process on CLOCK_MONOTONIC; `server`: reported by the server in Server-Timing).
/// - `edgemeter_attempts_total` (counter): samples recorded, failed ones included.
/// - `edgemeter_lost_total` (counter): samples with no answer within the timeout (status timeout):
///   the loss. Loss ratio = `rate(edgemeter_lost_total[5m]) / rate(edgemeter_attempts_total[5m])`.
/// - `edgemeter_errors_total` (counter, extra label `status` = refused, unreachable, error): the
///   other failures. A series appears at its first error.
///
/// `attempts_total` and `lost_total` exist for every phase of every target from the start (0 until
/// counted), so a target that never answers still has series. Memory is fixed per series: nothing
/// grows with the number of samples.
public final class AgentMetrics: SampleSink, @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()

    static let latency = MetricNameDescriptor(
        namespace: "edgemeter", metricName: "latency", unitName: "seconds",
        helpText: "Successful samples by target and phase, in seconds (ping echo RTT, tcping connect, http phases); buckets fitted to network RTTs.")
    static let attempts = MetricNameDescriptor(namespace: "edgemeter", metricName: "attempts", unitName: "total",
                                               helpText: "Samples recorded per target and phase, failed ones included.")
    static let lost = MetricNameDescriptor(namespace: "edgemeter", metricName: "lost", unitName: "total",
                                           helpText: "Samples without an answer within the timeout (loss).")
    static let errors = MetricNameDescriptor(namespace: "edgemeter", metricName: "errors", unitName: "total",
                                             helpText: "Failed samples other than timeouts, by status (refused, unreachable, error).")

    private struct Series {
        var attempts: Counter
        var lost: Counter
        var errors: [SampleStatus: Counter] = [:]
        var histograms: [String: ValueHistogram] = [:]
    }

    private let lock = NSLock()
    /// Probe name (the sample's scenario) → its kind.
    private var kinds: [String: String] = [:]
    private var series: [String: Series] = [:]
    /// Samples whose phase is not a per-attempt figure (the one-time `resolve` of ping and tcping).
    private let skippedPhases: [String: Set<String>] = ["ping": ["resolve"], "tcping": ["resolve"]]

    public init() {}

    /// Creates the counters of every phase of a probe's targets up front.
    public func declare(probe name: String, kind: String, targets: [String], phases: [String]) {
        lock.lock(); kinds[name] = kind; lock.unlock()
        for t in targets { for p in phases { _ = withSeries(name: name, kind: kind, target: t, phase: p) { _ in } } }
    }

    private func key(_ name: String, _ target: String, _ phase: String) -> String { name + "\u{1}" + target + "\u{1}" + phase }

    @discardableResult
    private func withSeries<T>(name: String, kind: String, target: String, phase: String, _ body: (inout Series) -> T) -> T {
        let k = key(name, target, phase)
        lock.lock(); defer { lock.unlock() }
        if series[k] == nil {
            let labels = [("name", name), ("probe", kind), ("target", target), ("phase", phase)]
            series[k] = Series(attempts: registry.makeCounter(descriptor: Self.attempts, labels: labels),
                               lost: registry.makeCounter(descriptor: Self.lost, labels: labels))
        }
        return body(&series[k]!)
    }

    /// The sample's provenance labels for the histogram.
    static func provenance(_ s: Sample) -> (socket: String, timestamp: String) {
        let socket = s.labels["socket"] ?? (s.probe == "ping" ? "unknown" : "stream")
        let timestamp = s.labels["timestamp"] ?? (s.labels["source"] == "server-timing" ? "server" : "userspace")
        return (socket, timestamp)
    }

    public func record(_ s: Sample) {
        if skippedPhases[s.probe]?.contains(s.phase) == true { return }
        let kind = s.probe
        withSeries(name: s.scenario, kind: kind, target: s.target, phase: s.phase) { series in
            series.attempts.increment()
            switch s.status {
            case .ok:
                guard let v = s.value, s.unit == "ms" else { return }
                let (socket, timestamp) = Self.provenance(s)
                let hk = socket + "\u{1}" + timestamp
                let h: ValueHistogram
                if let have = series.histograms[hk] { h = have } else {
                    h = registry.makeValueHistogram(descriptor: Self.latency, labels: [("name", s.scenario), ("probe", kind), ("target", s.target),
                                                                                      ("phase", s.phase), ("socket", socket), ("timestamp", timestamp)],
                                                    buckets: RTTBuckets.seconds)
                    series.histograms[hk] = h
                }
                h.record(v / 1000)
            case .timeout:
                series.lost.increment()
            default:
                let c: Counter
                if let have = series.errors[s.status] { c = have } else {
                    c = registry.makeCounter(descriptor: Self.errors, labels: [("name", s.scenario), ("probe", kind), ("target", s.target),
                                                                              ("phase", s.phase), ("status", s.status.rawValue)])
                    series.errors[s.status] = c
                }
                c.increment()
            }
        }
    }

    /// The text exposition (format 0.0.4).
    public func exposition() -> String { registry.emitToString() }
}
