import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterSystem

/// One series of attempts of one calibration probe against a server, run by `edgemeter
/// calibrate-probe` inside the calibration topology's client namespace. Each attempt yields one
/// line, `ok <ms>` (six decimals) or `fail <reason>`, in completion order.
///
/// What each figure covers (all CLOCK_MONOTONIC unless said):
/// - `icmp`: the ping probe's RTT, request sent → reply's kernel receive stamp (CLOCK_REALTIME at
///   both ends when kernel stamps are on, as `ICMPProbe` documents); sends every `interval`.
/// - `tcp-connect`: the handshake's round trip as the client's kernel measured it (`tcpi_rtt`: SYN
///   handed to IP → SYN-ACK processed by TCP; `KernelStampedTCP`), so the client thread's wake-up
///   after the SYN-ACK is not in it; when the SYN was retransmitted, `connect()` → connected. Each
///   connection is then aborted with one RST, so no teardown frames queue ahead of the next handshake.
/// - `http-new-connection`: the http probe's `total`, name resolution of the literal address (µs)
///   → connect → request → whole response; `GET /healthz`.
/// - `http-keepalive`: one request on a connection opened once before the series (a plain socket,
///   `KernelStampedTCP.KeepAliveConnection`), CLOCK_REALTIME just before the request's `send()` →
///   the kernel receive stamp (SO_TIMESTAMPNS) of the segment that completed the response: the
///   client thread's wake-up to read it is not in the figure. After each response the client's
///   ACK is pushed out at once (TCP_QUICKACK), so it never leaves just ahead of the next request.
/// TCP and HTTP attempts are sequential with `interval` of pause after each.
public struct CalibrationSeries: Sendable {
    public var probe: CalibrationProbe
    public var address: String
    public var port: Int
    public var count: Int
    public var interval: Duration
    public var timeout: Duration
    public var path = "/healthz"

    public init(probe: CalibrationProbe, address: String, port: Int, count: Int, interval: Duration, timeout: Duration) {
        (self.probe, self.address, self.port, self.count, self.interval, self.timeout) = (probe, address, port, count, interval, timeout)
    }

    /// TCP_QUICKACK (Linux, 12): setting it sends a pending delayed ACK at once.
    static let quickAck = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: 12))

    static func ms(_ ns: Int64) -> String { String(format: "%.6f", Double(ns) / 1e6) }

    public func run(emit: @escaping @Sendable (String) -> Void) async throws {
        switch probe {
        case .icmp:
            let target = try Resolver.resolve(address, family: .ipv4)
            let p = try ICMPProbe(targets: [target], options: ICMPOptions(count: count, interval: interval, timeout: timeout))
            p.echoes(schedule: Schedule(count: count, interval: interval), clock: SystemClock(), stop: StopFlag()) { r in
                switch r.outcome {
                case .reply(let rtt, _, _, _, _): emit("ok \(Self.ms(rtt))")
                case .timeout(let why), .unreachable(let why), .error(let why): emit("fail \(why)")
                }
            }
        case .tcpConnect:
            for _ in 0..<count {
                do {
                    let c = try KernelStampedTCP.connect(host: address, port: port, timeoutNanoseconds: timeout.nanoseconds)
                    // Abort with one RST (SO_LINGER 0) instead of a FIN exchange: on a link that
                    // never reorders, the previous connection's FIN/ACK frames (up to 2 × (d + 3σ)
                    // behind) would otherwise sit ahead of the next SYN-ACK and raise its delay.
                    var lingerOff = linger(l_onoff: 1, l_linger: 0)
                    _ = setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lingerOff, socklen_t(MemoryLayout<linger>.size))
                    close(c.fd)
                    emit("ok \(Self.ms(c.figureNanoseconds))")
                } catch {
                    emit("fail \(error)")
                }
                try await Task.sleep(for: interval)
            }
        case .httpNewConnection:
            let target = HTTPTarget(host: address, port: port, path: path)
            for _ in 0..<count {
                let x = await HTTPProbe.exchange(target, request: HTTPRequestSpec(path: path), timeout: timeout)
                if x.error == nil, let total = x.totalNanoseconds, x.response?.status == 200 { emit("ok \(Self.ms(total))") } else {
                    emit("fail \(x.error?.description ?? "status \(x.response?.status ?? 0)")")
                }
                try await Task.sleep(for: interval)
            }
        case .httpKeepAlive:
            let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address):\(port)\r\nUser-Agent: edgemeter-calibrate\r\nConnection: keep-alive\r\n\r\n".utf8)
            var conn = try KernelStampedTCP.KeepAliveConnection(host: address, port: port, timeoutNanoseconds: timeout.nanoseconds)
            for _ in 0..<count {
                do {
                    let r = try conn.exchange(request, timeoutNanoseconds: timeout.nanoseconds)
                    if r.status == 200 { emit("ok \(Self.ms(r.nanoseconds))") } else { emit("fail status \(r.status)") }
                    // Send the response's ACK now rather than when the delayed-ACK timer (≥ 40 ms)
                    // fires: that timer can fire a few ms before the next request is written, and a
                    // pure ACK just ahead of the request on a link that never reorders makes the
                    // request wait for the later of two draws. Sent now, the ACK leaves `interval`
                    // ahead of the request (more than the jitter's range), so each request crosses
                    // the link as one frame.
                    conn.quickAck()
                } catch {
                    emit("fail \(error)")
                    // A failed exchange leaves the connection in an unknown state: use a new one.
                    conn = try KernelStampedTCP.KeepAliveConnection(host: address, port: port, timeoutNanoseconds: timeout.nanoseconds)
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
