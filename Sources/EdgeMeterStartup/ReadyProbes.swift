import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterHTTP
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Readiness checks, each retried until it succeeds, the deadline passes or a stop is requested.
/// They run the project's own probes (`TCPConnectProbe`, `HTTPProbe`, `ICMPProbe`), so a ready
/// check connects, speaks HTTP and pings exactly as the measuring commands do.
enum ReadyProbes {
    /// Runs blocking socket code on a background thread.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            DispatchQueue.global().async {
                do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
            }
        }
    }

    /// What is left of `deadline`, at most `cap`.
    static func remaining(_ deadline: ContinuousClock.Instant, cap: Duration) -> Duration {
        max(.milliseconds(1), min(cap, deadline - .now))
    }

    /// Succeeds at the first TCP connection to `host:port`. With `banner`, the connection must
    /// also deliver at least one byte (QEMU's user-mode NAT accepts on the host side before the
    /// guest listens, so a bare connect proves nothing there).
    static func tcp(host: String, port: Int, banner: Bool, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        try await blocking {
            let target = try resolve(host, port: port)
            var lastError = "no attempt"
            while true {
                try checkStop(stop, deadline, "a TCP connection to \(host):\(port) (last: \(lastError))")
                // An empty payload sends nothing and waits for the first byte: the guest's banner.
                let options = TCPConnectOptions(count: 1, timeout: remaining(deadline, cap: banner ? .milliseconds(300) : .seconds(1)),
                                                payload: banner ? [] : nil)
                let a = TCPConnectProbe(targets: [target], options: options, stop: stop).attempt(target: 0, sequence: 1)
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
    static func http(host: String, port: Int, path: String, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
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
    static func icmp(host: String, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        try await blocking {
            let target = try resolve(host, port: 0, socketType: Int32(SOCK_DGRAM.rawValue))
            let done = StopFlag()
            let probe: ICMPProbe
            do {
                // An echo every 20 ms, each waited for 50 ms, until a reply, the deadline or a stop.
                probe = try ICMPProbe(targets: [target], options: ICMPOptions(count: nil, interval: .milliseconds(20),
                                                                              timeout: .milliseconds(50),
                                                                              deadline: remaining(deadline, cap: .seconds(3600))),
                                      stop: done)
            } catch {
                throw StartupError("\(error)")
            }
            var replied = false
            probe.run { r in
                if case .reply = r.outcome { replied = true; done.stop(reason: "ready") }
                if stop.isStopped { done.stop(reason: stop.reason ?? "stop requested") }
            }
            if !replied { try checkStop(stop, .now, "an ICMP echo reply from \(host)") }
        }
    }

    static func resolve(_ host: String, port: Int, socketType: Int32 = Int32(SOCK_STREAM.rawValue)) throws -> ResolvedTarget {
        do {
            return try Resolver.resolve(host, port: UInt16(clamping: port), socketType: socketType)
        } catch {
            throw StartupError("\(error)")
        }
    }

    static func checkStop(_ stop: StopFlag, _ deadline: ContinuousClock.Instant, _ what: String) throws {
        if stop.isStopped { throw StartupError("interrupted (\(stop.reason ?? "stop requested")) while waiting for \(what)") }
        if ContinuousClock.now >= deadline { throw StartupError("no \(what) before the timeout", status: .timeout) }
    }
}
