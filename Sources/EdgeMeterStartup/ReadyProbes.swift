import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterHTTP
import EdgeMeterSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The `ready` phase, the same for every backend: `wait` dispatches the plan's `ReadyCheck` once,
/// on what the instance exposes (its log, its workload's state, its address). Each check is
/// retried until it succeeds, the deadline passes (status `.timeout`) or a stop is requested. The
/// network checks run the project's own probes (`TCPConnectProbe`, `HTTPProbe`, `ICMPProbe`), so a
/// ready check connects, speaks HTTP and pings exactly as the measuring commands do.
public enum ReadyProbes {
    /// How often `wait` polls the log (marker) or the workload's state (exit), on the deadline's clock.
    static let pollInterval: Duration = .milliseconds(1)
    /// While waiting for a marker: how often to ask whether the workload already ended without it.
    static let exitCheckInterval: Duration = .milliseconds(100)

    /// Waits until `instance` is ready by `check` (or by the instance's own check, when it has one)
    /// and returns the labels the check learned (`address` for tcp/http/icmp to an instance's own
    /// address). Throws a `StartupError`: `.timeout` at the deadline, "interrupted" on a stop,
    /// "the workload exited with status N" for a failed exit check.
    public static func wait(for check: ReadyCheck, on instance: StartupInstance, until deadline: Deadline,
                            stop: StopFlag) async throws -> [String: String] {
        if let own = instance.ownReadyCheck {
            try await own(deadline, stop)
            return [:]
        }
        switch check {
        case .exit:
            try await waitExit(instance, until: deadline, stop: stop)
            return [:]
        case .marker(let marker):
            try await waitMarker(marker, instance, until: deadline, stop: stop)
            return [:]
        case .tcp(let port):
            let a = try await instance.address(until: deadline, stop: stop)
            try await tcp(host: a.host, port: a.forwardedPort ?? port, banner: a.behindNAT, until: deadline, stop: stop)
            return labels(a)
        case .http(let port, let path):
            let a = try await instance.address(until: deadline, stop: stop)
            try await http(host: a.host, port: a.forwardedPort ?? port, path: path, until: deadline, stop: stop)
            return labels(a)
        case .icmp:
            let a = try await instance.address(until: deadline, stop: stop)
            guard !a.behindNAT else {
                throw StartupError("ready=icmp is not available for \(instance.name): it sits behind user-mode NAT, which has no route "
                    + "from the host into it; use tcp, http or marker")
            }
            try await icmp(host: a.host, until: deadline, stop: stop)
            return labels(a)
        }
    }

    static func labels(_ a: InstanceAddress) -> [String: String] {
        a.behindNAT ? [:] : ["address": a.host]
    }

    /// `exit`: the workload ended with status 0.
    static func waitExit(_ instance: StartupInstance, until deadline: Deadline, stop: StopFlag) async throws {
        var state = WorkloadState.running
        try await poll("\(instance.name) to exit", until: deadline, stop: stop, interval: pollInterval) {
            state = try await instance.workloadState()
            return state != .running
        }
        switch state {
        case .exited(status: 0), .running:
            return
        case .exited(let status):
            let tail = await logTail(instance)
            throw StartupError.workloadExited(status: status, detail: tail.isEmpty ? "" : "log: \(tail)")
        case .unknown(let why):
            throw StartupError(why)
        }
    }

    /// `marker`: the line appeared in the log. A workload that ends without printing it fails at
    /// once instead of at the timeout.
    static func waitMarker(_ marker: String, _ instance: StartupInstance, until deadline: Deadline, stop: StopFlag) async throws {
        let clock = deadline.clock
        var nextExitCheck = clock.monotonicNanoseconds() + exitCheckInterval.nanoseconds
        try await poll("marker \"\(marker)\" in the log of \(instance.name)", until: deadline, stop: stop, interval: pollInterval) {
            if containsMarker(try await instance.log(), marker) { return true }
            guard clock.monotonicNanoseconds() >= nextExitCheck else { return false }
            nextExitCheck = clock.monotonicNanoseconds() + exitCheckInterval.nanoseconds
            let state = try await instance.workloadState()
            if state == .running { return false }
            // Read once more: the line may have arrived just before the end.
            let log = try await instance.log()
            if containsMarker(log, marker) { return true }
            let how: String
            switch state {
            case .exited(let status): how = "exited with status \(status)"
            case .unknown(let why): how = "ended (\(why))"
            case .running: how = "ended"
            }
            let tail = String(log.trimmingCharacters(in: .whitespacesAndNewlines).suffix(200))
            throw StartupError("the workload \(how) before the marker \"\(marker)\" appeared; its log ends: \(tail.isEmpty ? "(empty)" : tail)")
        }
    }

    /// Whether `marker` ends one of the log's lines (whitespace and `\r` trimmed), at a word
    /// boundary: `EDGEMETER-READY` and `[ 1.2] EDGEMETER-READY` count, `NOT-EDGEMETER-READY` does not.
    public static func containsMarker(_ log: String, _ marker: String) -> Bool {
        guard !marker.isEmpty else { return false }
        // `isNewline`: "\r\n" is one Character in Swift, equal to neither "\r" nor "\n".
        return log.split(whereSeparator: \.isNewline).contains { raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard line.hasSuffix(marker) else { return false }
            guard let before = line.dropLast(marker.count).last else { return true }
            return !(before.isLetter || before.isNumber || before == "-" || before == "_")
        }
    }

    static func logTail(_ instance: StartupInstance) async -> String {
        let log = ((try? await instance.log()) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return String(log.suffix(200))
    }

    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await onBackgroundThread(body)
    }

    /// What is left of `deadline`, at most `cap`.
    static func remaining(_ deadline: Deadline, cap: Duration) -> Duration {
        max(.milliseconds(1), min(cap, deadline.remaining))
    }

    /// Succeeds at the first TCP connection to `host:port`. With `banner`, the connection must
    /// also deliver at least one byte (QEMU's user-mode NAT accepts on the host side before the
    /// guest listens, so a bare connect proves nothing there).
    static func tcp(host: String, port: Int, banner: Bool, until deadline: Deadline, stop: StopFlag) async throws {
        try await blocking {
            let target = try resolve(host, port: port)
            var lastError = "no attempt"
            while true {
                try checkStop(stop, deadline, "a TCP connection to \(host):\(port) (last: \(lastError))")
                // An empty payload sends nothing and waits for the first byte: the guest's banner.
                let options = TCPConnectOptions(count: 1, timeout: remaining(deadline, cap: banner ? .milliseconds(300) : .seconds(1)),
                                                payload: banner ? [] : nil)
                let a = TCPConnectProbe(targets: [target], options: options).attempt(target: 0, sequence: 1, stop: stop)
                if a.connectStatus != .ok {
                    lastError = a.reason
                } else if !banner || a.firstByteStatus == .ok {
                    return
                } else {
                    lastError = a.firstByteReason.isEmpty ? "no banner from the guest" : a.firstByteReason
                }
                usleep(10_000)
            }
        }
    }

    /// Succeeds when `GET path` on `host:port` answers with status 200.
    static func http(host: String, port: Int, path: String, until deadline: Deadline, stop: StopFlag) async throws {
        var lastError = "no attempt"
        while true {
            try checkStop(stop, deadline, "HTTP 200 from http://\(host):\(port)\(path) (last: \(lastError))")
            let x = await HTTPProbe.exchange(HTTPTarget(host: host, port: port, path: path),
                                             request: HTTPRequestSpec(method: "GET", path: path),
                                             timeout: remaining(deadline, cap: .seconds(2)))
            if let r = x.response, r.status == 200 { return }
            if let r = x.response {
                lastError = "answered \(r.status)"
            } else {
                lastError = x.error.map { "\($0)" } ?? "no response"
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Succeeds at the first ICMP echo reply from `host` (datagram or raw socket, as `edgemeter ping`).
    static func icmp(host: String, until deadline: Deadline, stop: StopFlag) async throws {
        try await blocking {
            let target = try resolve(host, port: 0, socketType: Int32(SOCK_DGRAM.rawValue))
            let done = StopFlag()
            let probe: ICMPProbe
            do {
                // An echo every 20 ms, each waited for 50 ms, until a reply, the deadline or a stop.
                probe = try ICMPProbe(targets: [target], options: ICMPOptions(count: nil, interval: .milliseconds(20),
                                                                              timeout: .milliseconds(50),
                                                                              deadline: remaining(deadline, cap: .seconds(3600))))
            } catch {
                throw StartupError("\(error)")
            }
            var replied = false
            probe.echoes(schedule: probe.options.schedule, clock: SystemClock(), stop: done) { r in
                if case .reply = r.outcome { replied = true; done.stop(reason: "ready") }
                if stop.isStopped { done.stop(reason: stop.reason ?? "stop requested") }
            }
            if !replied { try checkStop(stop, Deadline(clock: deadline.clock, nanoseconds: 0), "an ICMP echo reply from \(host)") }
        }
    }

    static func resolve(_ host: String, port: Int, socketType: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> ResolvedTarget {
        do {
            return try Resolver.resolve(host, port: UInt16(clamping: port), socketType: socketType)
        } catch {
            throw StartupError("\(error)")
        }
    }

    static func checkStop(_ stop: StopFlag, _ deadline: Deadline, _ what: String) throws {
        if stop.isStopped { throw StartupError.interrupted(stop, waitingFor: what) }
        if deadline.hasPassed { throw StartupError("no \(what) before the timeout", status: .timeout) }
    }
}
