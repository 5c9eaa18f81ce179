import Foundation
import NIOCore
import Prometheus
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterSystem

/// `GET /probe?target=…&module=…`: blackbox_exporter's contract (prober/handler.go), so a
/// Prometheus job written for blackbox_exporter works against the agent with the same relabelling.
/// One probe per request, answered as a fresh exposition:
///
/// - `probe_success` (1/0), `probe_duration_seconds` (the whole probe: resolve to last phase),
///   `probe_timeout_seconds`, and from name resolution `probe_dns_lookup_time_seconds`,
///   `probe_ip_protocol` (4/6), `probe_ip_addr_hash` (FNV-1a 32 of the address text, to spot a change);
/// - `icmp`: `probe_icmp_duration_seconds{phase="resolve|setup|rtt"}` (setup: opening the socket;
///   rtt: as `edgemeter ping`, kernel receive stamp when delivered), `probe_icmp_reply_hop_limit`;
/// - `tcp_connect`: `probe_tcp_duration_seconds{phase="resolve|connect"}` (an edgemeter extra:
///   blackbox reports only the total; connect as `edgemeter tcping`);
/// - `http_2xx`: `probe_http_duration_seconds{phase="resolve|connect|tls|processing|transfer"}`
///   (resolve: getaddrinfo; connect as `edgemeter http`; tls 0, plain HTTP only; processing: the
///   request handed to the socket until the read holding the first response byte; transfer: from
///   there to the read that completed the response), `probe_http_status_code`, `probe_http_content_length`,
///   `probe_http_uncompressed_body_length`, `probe_http_version`, `probe_http_redirects` (0: not
///   followed), `probe_http_ssl` (0), `probe_failed_due_to_regex` (0). Success: a 2xx status.
///
/// Every phase gauge exists from the start (0 until measured), so a failed probe still lists them.
public enum BlackboxProbe {
    public static let modules = ["icmp", "tcp_connect", "http_2xx"]

    /// What the handler answers: the HTTP status and the body (an exposition, or a message).
    public struct Answer: Sendable {
        public var status: Int
        public var body: String
        public var contentType: String
    }

    /// blackbox_exporter's default `--timeout-offset`: the probe gets the scrape timeout minus this.
    public static let timeoutOffsetSeconds = 0.5

    /// The probe's time limit: Prometheus's `X-Prometheus-Scrape-Timeout-Seconds` minus the offset
    /// (at least 0.1 s), capped by `configured`; `configured` without the header.
    public static func timeout(header: String?, configured: Duration) -> Result<Duration, AgentError> {
        guard let header else { return .success(configured) }
        guard let s = Double(header), s.isFinite, s > 0 else {
            return .failure(AgentError("X-Prometheus-Scrape-Timeout-Seconds \"\(header)\" is not a number of seconds"))
        }
        let d = Duration.nanoseconds(Int64(max(0.1, s - timeoutOffsetSeconds) * 1e9))
        return .success(min(d, configured))
    }

    /// Handles one request: `target`, `module` and the timeout header; only targets whose address
    /// lies in `cidrs` are probed (403 otherwise).
    public static func handle(target rawTarget: String?, module: String?, timeoutHeader: String?, cidrs: [CIDR],
                              configuredTimeout: Duration, configFile: String) async -> Answer {
        func text(_ status: Int, _ message: String) -> Answer { Answer(status: status, body: message + "\n", contentType: "text/plain; charset=utf-8") }
        let module = module ?? "http_2xx"
        guard modules.contains(module) else {
            return text(400, "Unknown module \"\(module)\": this agent probes with \(modules.joined(separator: ", "))")
        }
        guard let target = rawTarget, !target.isEmpty else { return text(400, "Target parameter is missing: add ?target=HOST (icmp), HOST:PORT (tcp_connect) or a URL (http_2xx)") }
        let timeout: Duration
        switch Self.timeout(header: timeoutHeader, configured: configuredTimeout) {
        case .success(let d): timeout = d
        case .failure(let e): return text(500, "Failed to parse timeout from Prometheus header: \(e)")
        }
        // Where the target points, resolved before anything is sent.
        let host: String, port: UInt16
        var url: HTTPTarget?
        switch module {
        case "icmp":
            host = target; port = 0
        case "tcp_connect":
            do { (host, port) = try Resolver.splitHostPort(target) } catch { return text(400, "target: \(error)") }
        default:
            do {
                let u = try HTTPTarget(url: target.contains("://") ? target : "http://" + target)
                url = u
                host = u.host; port = UInt16(clamping: u.port)
            } catch { return text(400, "target: \(error)") }
        }
        let resolved: ResolvedTarget
        do {
            resolved = try Resolver.resolve(host, port: port, socketType: Int32((module == "icmp" ? SOCK_DGRAM : SOCK_STREAM).rawValue))
        } catch {
            // blackbox answers 200 with probe_success 0 when resolution fails; the CIDR rule needs an
            // address, so a name that does not resolve is refused the same way.
            return text(403, "target \(target): \(error); /probe only probes addresses inside probe_cidrs")
        }
        let addressText = resolved.address.host
        guard let bytes = CIDR.parseAddress(addressText), cidrs.contains(where: { $0.contains(bytes) }) else {
            let allowed = cidrs.isEmpty ? "none are configured" : cidrs.map(\.text).joined(separator: ", ")
            return text(403, "target \(target) (\(addressText)) is outside the networks /probe may reach (probe_cidrs: \(allowed)); "
                        + "add its network to probe_cidrs in \(configFile) if it should be probed")
        }

        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
            let d = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
            return labels.isEmpty ? registry.makeGauge(descriptor: d) : registry.makeGauge(descriptor: d, labels: labels)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let lookup = Double(resolved.resolveNanoseconds) / 1e9
        gauge("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds").set(to: lookup)
        gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6").set(to: resolved.address.family == AF_INET6 ? 6 : 4)
        gauge("probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect if the IP address changes.").set(to: Double(fnv1a32(addressText)))
        var success = false
        switch module {
        case "icmp":
            let phases = Dictionary(uniqueKeysWithValues: ["resolve", "setup", "rtt"].map {
                ($0, gauge("probe_icmp_duration_seconds", "Duration of icmp request by phase", [("phase", $0)]))
            })
            let hop = gauge("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)")
            phases["resolve"]!.set(to: lookup)
            let r = await onThread { () -> (setup: Int64, result: ICMPEchoResult?, error: String?) in
                let t0 = DispatchTime.now().uptimeNanoseconds
                do {
                    let probe = try ICMPProbe(targets: [resolved], options: ICMPOptions(schedule: Schedule(count: 1, interval: .seconds(1)), timeout: timeout))
                    let setup = Int64(DispatchTime.now().uptimeNanoseconds - t0)
                    var got: ICMPEchoResult?
                    probe.echoes(schedule: Schedule(count: 1, interval: .seconds(1)), clock: SystemClock(), stop: StopFlag()) { got = $0 }
                    return (setup, got, nil)
                } catch { return (Int64(DispatchTime.now().uptimeNanoseconds - t0), nil, "\(error)") }
            }
            phases["setup"]!.set(to: Double(r.setup) / 1e9)
            if case .reply(let rtt, _, let ttl, _, _)? = r.result?.outcome {
                phases["rtt"]!.set(to: Double(rtt) / 1e9)
                if let ttl { hop.set(to: Double(ttl)) }
                success = true
            }
        case "tcp_connect":
            let phases = Dictionary(uniqueKeysWithValues: ["resolve", "connect"].map {
                ($0, gauge("probe_tcp_duration_seconds", "Duration of the TCP probe by phase (edgemeter: connect() until the handshake completed)", [("phase", $0)]))
            })
            phases["resolve"]!.set(to: lookup)
            let a = await onThread {
                TCPConnectProbe(targets: [resolved], options: TCPConnectOptions(schedule: Schedule(count: 1), timeout: timeout)).attempt(target: 0, sequence: 1)
            }
            if a.connectStatus == .ok, let ns = a.connectNanoseconds {
                phases["connect"]!.set(to: Double(ns) / 1e9)
                success = true
            }
        default:
            let phases = Dictionary(uniqueKeysWithValues: ["resolve", "connect", "tls", "processing", "transfer"].map {
                ($0, gauge("probe_http_duration_seconds", "Duration of http request by phase, summed over all redirects", [("phase", $0)]))
            })
            let status = gauge("probe_http_status_code", "Response HTTP status code")
            let length = gauge("probe_http_content_length", "Length of http content response")
            let body = gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body")
            let version = gauge("probe_http_version", "Returns the version of HTTP of the probe response")
            gauge("probe_http_redirects", "The number of redirects").set(to: 0)
            gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect").set(to: 0)
            gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex").set(to: 0)
            let u = url!
            phases["resolve"]!.set(to: lookup)
            // Connect to the address that was checked (not to a second resolution of the name),
            // with the URL's own Host header.
            let amount = TimeAmount.nanoseconds(timeout.nanoseconds)
            do {
                let address = try SocketAddress(ipAddress: addressText, port: u.port)
                let conn = try await HTTPConnection.connect(to: address, targetName: "\(u.host):\(u.port)", timeout: amount)
                defer { conn.close() }
                phases["connect"]!.set(to: Double(conn.connectNanoseconds) / 1e9)
                let r = try await conn.send(HTTPRequestSpec(method: "GET", path: u.path), host: u.hostHeader, keepAlive: false, timeout: amount)
                phases["processing"]!.set(to: Double(r.firstByteAt - r.sentAt) / 1e9)
                phases["transfer"]!.set(to: Double(r.endAt - r.firstByteAt) / 1e9)
                status.set(to: Double(r.response.status))
                length.set(to: r.response.header("Content-Length").flatMap { Double($0) } ?? -1)
                body.set(to: Double(r.response.body.readableBytes))
                version.set(to: 1.1)
                success = (200..<300).contains(r.response.status)
            } catch {
                success = false
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 + lookup
        gauge("probe_success", "Displays whether or not the probe was a success").set(to: success ? 1 : 0)
        gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds").set(to: elapsed)
        gauge("probe_timeout_seconds", "Returns how long the probe timeout is in seconds").set(to: timeout.seconds)
        return Answer(status: 200, body: registry.emitToString(), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    /// FNV-1a, 32 bits, as blackbox_exporter hashes the address.
    static func fnv1a32(_ s: String) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in s.utf8 { h ^= UInt32(b); h = h &* 16_777_619 }
        return h
    }

    /// Runs blocking socket work off the cooperative pool.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { k in
            let t = Thread { k.resume(returning: body()) }
            t.start()
        }
    }
}
