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
/// TCP and HTTP attempts are sequential with `interval` of pause after each. With `directAddress`,
/// the same figures are taken on the direct path, interleaved attempt by attempt.
public struct CalibrationSeries: Sendable {
    public var probe: CalibrationProbe
    public var address: String
    public var port: Int
    public var count: Int
    public var interval: Duration
    public var timeout: Duration
    public var path = "/healthz"
    /// A second address of the same server reached over a link with no forwarder (`calibrate`'s
    /// direct path). When set, every attempt to `address` is paired with one to this address in the
    /// same process (`order`), and its lines are prefixed `direct `.
    public var directAddress: String?

    public init(probe: CalibrationProbe, address: String, port: Int, count: Int, interval: Duration, timeout: Duration) {
        (self.probe, self.address, self.port, self.count, self.interval, self.timeout) = (probe, address, port, count, interval, timeout)
    }

    /// TCP_QUICKACK (Linux, 12): setting it sends a pending delayed ACK at once.
    static let quickAck = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: 12))

    static func ms(_ ns: Int64) -> String { String(format: "%.6f", Double(ns) / 1e6) }

    public func run(emit: @escaping @Sendable (String) -> Void) async throws {
        let addresses = [address] + (directAddress.map { [$0] } ?? [])
        func line(_ target: Int, _ text: String) -> String { (target == 1 ? "direct " : "") + text }
        switch probe {
        case .icmp:
            // Every round sends one echo to each address (fping-like), so both paths see the same
            // moments of the host.
            let targets = try addresses.map { try Resolver.resolve($0, family: .ipv4) }
            let p = try ICMPProbe(targets: targets, options: ICMPOptions(count: count, interval: interval, timeout: timeout))
            p.echoes(schedule: Schedule(count: count, interval: interval), clock: SystemClock(), stop: StopFlag()) { r in
                switch r.outcome {
                case .reply(let rtt, _, _, _, _): emit(line(r.targetIndex, "ok \(Self.ms(rtt))"))
                case .timeout(let why), .unreachable(let why), .error(let why): emit(line(r.targetIndex, "fail \(why)"))
                }
            }
        case .tcpConnect:
            for t in Self.order(count: count, interleaved: directAddress != nil) {
                do {
                    let c = try KernelStampedTCP.connect(host: addresses[t], port: port, timeoutNanoseconds: timeout.nanoseconds)
                    // Abort with one RST (SO_LINGER 0) instead of a FIN exchange: on a link that
                    // never reorders, the previous connection's FIN/ACK frames (up to 2 × (d + 3σ)
                    // behind) would otherwise sit ahead of the next SYN-ACK and raise its delay.
                    var lingerOff = linger(l_onoff: 1, l_linger: 0)
                    _ = setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lingerOff, socklen_t(MemoryLayout<linger>.size))
                    close(c.fd)
                    emit(line(t, "ok \(Self.ms(c.figureNanoseconds))"))
                } catch {
                    emit(line(t, "fail \(error)"))
                }
                try await Task.sleep(for: interval)
            }
        case .httpNewConnection:
            for t in Self.order(count: count, interleaved: directAddress != nil) {
                let target = HTTPTarget(host: addresses[t], port: port, path: path)
                let x = await HTTPProbe.exchange(target, request: HTTPRequestSpec(path: path), timeout: timeout)
                if x.error == nil, let total = x.totalNanoseconds, x.response?.status == 200 { emit(line(t, "ok \(Self.ms(total))")) } else {
                    emit(line(t, "fail \(x.error?.description ?? "status \(x.response?.status ?? 0)")"))
                }
                try await Task.sleep(for: interval)
            }
        case .httpKeepAlive:
            // One request and one connection per address, made before the series.
            let requests = addresses.map { host in
                Array("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: edgemeter-calibrate\r\nConnection: keep-alive\r\n\r\n".utf8)
            }
            var conns = try addresses.map { try KernelStampedTCP.KeepAliveConnection(host: $0, port: port, timeoutNanoseconds: timeout.nanoseconds) }
            for t in Self.order(count: count, interleaved: directAddress != nil) {
                do {
                    let r = try conns[t].exchange(requests[t], timeoutNanoseconds: timeout.nanoseconds)
                    if r.status == 200 { emit(line(t, "ok \(Self.ms(r.nanoseconds))")) } else { emit(line(t, "fail status \(r.status)")) }
                    // Send the response's ACK now rather than when the delayed-ACK timer (≥ 40 ms)
                    // fires: that timer can fire a few ms before the next request is written, and a
                    // pure ACK just ahead of the request on a link that never reorders makes the
                    // request wait for the later of two draws. Sent now, the ACK leaves `interval`
                    // ahead of the request (more than the jitter's range), so each request crosses
                    // the link as one frame.
                    conns[t].quickAck()
                } catch {
                    emit(line(t, "fail \(error)"))
                    // A failed exchange leaves the connection in an unknown state: use a new one.
                    conns[t] = try KernelStampedTCP.KeepAliveConnection(host: addresses[t], port: port, timeoutNanoseconds: timeout.nanoseconds)
                }
                try await Task.sleep(for: interval)
            }
        }
    }

    /// The target of each sequential attempt (0 = `address`, 1 = `directAddress`): `count` times 0
    /// alone; interleaved, `count` pairs in ABBA order (1 0, 0 1, 1 0, ...), so a drift of the
    /// endpoints during the series weighs on both paths alike and neither always goes first.
    public static func order(count: Int, interleaved: Bool) -> [Int] {
        guard interleaved else { return Array(repeating: 0, count: max(0, count)) }
        return (0..<max(0, count)).flatMap { $0 % 2 == 0 ? [1, 0] : [0, 1] }
    }
}
