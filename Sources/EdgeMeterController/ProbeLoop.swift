import Foundation
import NIOCore
import NIOPosix
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes

/// The controller's own measurements: every `interval`, each node with a target is measured once
/// through the client's path, all nodes concurrently, and the delay goes into its windows; every
/// `decideEvery` rounds each service is decided (trigger "probe loop"), so the controller runs
/// closed-loop with nobody posting delays.
///
/// - `http://` target: `http_total`, a GET on a new connection from before name resolution to the
///   response's last byte (`HTTPProbe.exchange`, CLOCK_MONOTONIC); a status other than 2xx/3xx or
///   no answer within `timeout` is a lost sample.
/// - `tcp://` target: `tcp_connect`, from just before `connect()` until the handshake completed
///   (CLOCK_MONOTONIC, the span tcping measures); refused or timed out is a lost sample.
///
/// With `namespace` set, every measurement is made from inside that network namespace
/// (`NamespaceProbe`: the same spans, on socket threads created inside the namespace), so the loop
/// measures the path a node (such as the lab's vehicle) sees, not the host's.
///
/// A sample is stamped with the controller clock's time when its measurement started.
public final class ProbeLoop: @unchecked Sendable {
    public let controller: MigrationController
    public let interval: Duration
    public let timeout: Duration
    public let decideEvery: Int
    /// The network namespace the probes run in (`/var/run/netns/<name>`); nil: the controller's own.
    public let namespace: String?
    private let log: @Sendable (String) -> Void
    private var task: Task<Void, Never>?
    /// The socket threads inside `namespace`, made at the first round and kept until `stop()`.
    private var namespaceThreads: HTTPSocketThreads?

    public init(controller: MigrationController, interval: Duration = .milliseconds(200), timeout: Duration = .seconds(1),
                decideEvery: Int = 5, namespace: String? = nil, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.controller = controller
        self.namespace = namespace
        self.interval = interval
        self.timeout = timeout
        self.decideEvery = decideEvery
        self.log = log
    }

    /// Measures one target once; nil milliseconds = lost.
    public static func measure(_ target: String, timeout: Duration) async -> Double? {
        if target.hasPrefix("tcp://") {
            guard let hp = ProbeTarget.hostPort(String(target.dropFirst(6))) else { return nil }
            do {
                let addr = try await HTTPConnection.resolve(host: hp.host, port: hp.port)
                let conn = try await HTTPConnection.connect(to: addr, targetName: "\(hp.host):\(hp.port)",
                                                            timeout: .nanoseconds(timeout.nanoseconds))
                let ns = conn.connectNanoseconds
                conn.close()
                return Double(ns) / 1e6
            } catch { return nil }
        }
        guard let t = try? HTTPTarget(url: target) else { return nil }
        let x = await HTTPProbe.exchange(t, request: HTTPRequestSpec(method: "GET", path: t.path), timeout: timeout)
        guard x.error == nil, let r = x.response, (200..<400).contains(r.status), let total = x.totalNanoseconds else { return nil }
        return Double(total) / 1e6
    }

    /// One round: measures every (service, node) with a target and feeds the windows.
    public func round() async {
        var threads: HTTPSocketThreads?
        if let namespace {
            if namespaceThreads == nil {
                do { namespaceThreads = try NamespaceProbe.threads(in: namespace) } catch {
                    log("cannot probe from network namespace \(namespace): \(error)")
                    return
                }
            }
            threads = namespaceThreads
        }
        let services = await controller.allServices
        let clock = controller.clock
        await withTaskGroup(of: Void.self) { group in
            for s in services {
                for n in s.nodes {
                    guard let target = n.target else { continue }
                    let timeout = self.timeout
                    let controller = self.controller
                    group.addTask {
                        let at = clock.monotonicNanoseconds()
                        let ms: Double?
                        if let threads {
                            ms = await NamespaceProbe.measure(target, timeout: timeout, threads: threads)
                        } else {
                            ms = await Self.measure(target, timeout: timeout)
                        }
                        _ = try? await controller.add([.init(milliseconds: ms, atNanoseconds: at)], node: n.name, metric: s.metric,
                                                      service: s.name, field: "probe")
                    }
                }
            }
        }
    }

    /// Starts the loop (rounds every `interval` on the controller's clock).
    public func start() {
        task = Task { [self] in
            var k = 0
            let clock = controller.clock
            var next = clock.monotonicNanoseconds()
            while !Task.isCancelled {
                await round()
                k += 1
                if k % decideEvery == 0 {
                    for name in await controller.serviceNames {
                        do {
                            _ = try await controller.decide(service: name, trigger: "probe loop")
                        } catch let e as ControllerError where e.status == 409 {
                            continue
                        } catch {
                            log("\(name): the probe loop's decision failed: \(error)")
                        }
                    }
                }
                next += interval.nanoseconds
                let now = clock.monotonicNanoseconds()
                if next < now { next = now }
                await clock.sleep(untilNanoseconds: next, stop: { Task.isCancelled })
            }
        }
    }

    public func stop() async {
        task?.cancel()
        await task?.value
        await namespaceThreads?.shutdown()
        namespaceThreads = nil
    }
}
