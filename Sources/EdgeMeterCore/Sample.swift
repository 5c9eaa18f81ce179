import Foundation

/// Outcome of one measurement attempt. Every attempt yields a sample, failed ones included, so a
/// gap in the data is always explained by a status and a reason.
public enum SampleStatus: String, Sendable, CaseIterable, Codable {
    case ok
    case timeout
    case refused
    case unreachable
    case error

    /// Position in `allCases`, for per-status tallies kept in arrays.
    var tallyIndex: Int {
        switch self {
        case .ok: return 0
        case .timeout: return 1
        case .refused: return 2
        case .unreachable: return 3
        case .error: return 4
        }
    }
}

/// One tidy row (in the spirit of PerfKitBenchmarker's samples): what was measured, on what, how long
/// it took, when, whether it worked, and the provenance labels needed to trust the figure.
///
/// - `value` is in `unit` and is `nil` whenever `status != .ok`.
/// - `timestamp` is wall-clock time (UTC) of the attempt's start: it orders and dates samples; it is
///   never used to compute a duration. Durations come from a monotonic clock or from paired kernel
///   stamps, which the `clock`/`timestamp` labels record.
public struct Sample: Sendable, Equatable {
    public var runID: String
    public var scenario: String
    /// Probe kind: `ping`, `tcping`, `http`, `load`, `startup`, `wire`, ...
    public var probe: String
    public var target: String
    /// The quantity: `rtt`, `latency`, `throughput`, ...
    public var metric: String
    /// Which span of the attempt: `echo`, `resolve`, `connect`, `first_byte`, `total`, ...
    public var phase: String
    public var value: Double?
    public var unit: String
    public var timestamp: Date
    public var status: SampleStatus
    /// Empty when `status == .ok`; otherwise says what failed (e.g. "no reply within 1 s").
    public var reason: String
    /// Provenance and context: `socket=raw`, `timestamp=kernel`, `clock=realtime-paired`, `seq=3`, ...
    public var labels: [String: String]

    public init(runID: String, scenario: String, probe: String, target: String, metric: String, phase: String,
                value: Double?, unit: String, timestamp: Date, status: SampleStatus, reason: String = "",
                labels: [String: String] = [:]) {
        self.runID = runID
        self.scenario = scenario
        self.probe = probe
        self.target = target
        self.metric = metric
        self.phase = phase
        self.value = status == .ok ? value : nil
        self.unit = unit
        self.timestamp = timestamp
        self.status = status
        self.reason = reason
        self.labels = labels
    }
}

/// Where probes deliver samples. Implementations must be safe to call from any thread; the run
/// directory streams each sample to `samples.csv` as it arrives.
public protocol SampleSink: AnyObject, Sendable {
    func record(_ sample: Sample)
}

/// A sink that keeps samples in memory: for tests and for short in-process runs only.
public final class MemorySink: SampleSink, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Sample] = []
    public init() {}
    public func record(_ sample: Sample) {
        lock.lock(); stored.append(sample); lock.unlock()
    }
    public var samples: [Sample] {
        lock.lock(); defer { lock.unlock() }
        return stored
    }
}

/// A flag set once, from a signal handler's dispatch source or a deadline, and polled by probes
/// between attempts (they wait in slices of at most 50 ms so a stop request is honoured promptly).
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var reasonText: String?
    public init() {}
    public func stop(reason: String) {
        lock.lock(); if reasonText == nil { reasonText = reason }; lock.unlock()
    }
    public var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return reasonText != nil }
    public var reason: String? { lock.lock(); defer { lock.unlock() }; return reasonText }
}
