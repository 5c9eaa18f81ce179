import Foundation
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
/// - `tcp-connect`: the tcping probe's connect, `connect()` → handshake complete.
/// - `http-new-connection`: the http probe's `total`, name resolution of the literal address (µs)
///   → connect → request → whole response; `GET /healthz`.
/// - `http-keepalive`: one request on a connection opened once before the series, request written
///   → whole response read (`HTTPTimedResponse.endAt − sentAt`). After each response the client's
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
            let target = try Resolver.resolve(address, port: UInt16(port), family: .ipv4)
            let p = TCPConnectProbe(targets: [target], options: TCPConnectOptions(count: 1, timeout: timeout))
            for i in 0..<count {
                let a = p.attempt(target: 0, sequence: i + 1)
                if a.connectStatus == .ok, let ns = a.connectNanoseconds { emit("ok \(Self.ms(ns))") } else { emit("fail \(a.reason)") }
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
            let addr = try await HTTPConnection.resolve(host: address, port: port)
            let amount = TimeAmount.nanoseconds(timeout.nanoseconds)
            var conn = try await HTTPConnection.connect(to: addr, targetName: "\(address):\(port)", timeout: amount)
            for _ in 0..<count {
                do {
                    let r = try await conn.send(HTTPRequestSpec(path: path), host: address, keepAlive: true, timeout: amount)
                    if r.response.status == 200 { emit("ok \(Self.ms(Int64(r.endAt) - Int64(r.sentAt)))") } else { emit("fail status \(r.response.status)") }
                    // Send the response's ACK now rather than when the delayed-ACK timer (≥ 40 ms)
                    // fires: that timer can fire a few ms before the next request is written, and a
                    // pure ACK just ahead of the request on a link that never reorders makes the
                    // request wait for the later of two draws. Sent now, the ACK leaves `interval`
                    // ahead of the request (more than the jitter's range), so each request crosses
                    // the link as one frame.
                    try? await conn.channel.setOption(Self.quickAck, value: 1).get()
                } catch {
                    emit("fail \(describe(error))")
                    // A timeout closes the connection: the next request gets a new one.
                    conn.close()
                    conn = try await HTTPConnection.connect(to: addr, targetName: "\(address):\(port)", timeout: amount)
                }
                try await Task.sleep(for: interval)
            }
            conn.close()
        }
    }
}
