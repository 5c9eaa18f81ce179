import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterRun
import EdgeMeterSystem

/// Fans every sample out to several sinks (the metrics, the push window).
public final class FanOutSink: SampleSink, @unchecked Sendable {
    let sinks: [SampleSink]
    public init(_ sinks: [SampleSink]) { self.sinks = sinks }
    public func record(_ sample: Sample) { for s in sinks { s.record(sample) } }
}

/// Runs the configured probes continuously, each on the no-drift schedule of its interval
/// (`runSchedule`: round k due at start + k·interval, a late round does not move the next ones),
/// until `stop`, or for `rounds` rounds when that is set (then `waitUntilFinished` returns once
/// every probe has done its last round and waited for its last answers). ping runs on a thread of its own (every echo of a round sent at once, replies
/// awaited together); tcping deals its targets over up to `tcpShards` threads, each connecting to
/// its targets one after another, so a target that waits for its timeout delays only its shard;
/// http, calc and vehicle run one task per probe. Attempts to one target never overlap.
public final class AgentRunner: @unchecked Sendable {
    public let config: AgentConfig
    public let stop = StopFlag()
    let sink: SampleSink
    let log: @Sendable (String) -> Void
    private var threads: [Thread] = []
    private var tasks: [Task<Void, Never>] = []
    private var listeners: [LoopbackListener] = []
    private let finished = DispatchGroup()
    /// Rounds each probe runs before it ends; nil: until `stop`.
    public let rounds: Int?

    public init(config: AgentConfig, sink: SampleSink, rounds: Int? = nil, log: @escaping @Sendable (String) -> Void) {
        (self.config, self.sink, self.rounds, self.log) = (config, sink, rounds, log)
    }

    /// Waits until every probe has ended (after its `rounds`, or after `stop`).
    public func waitUntilFinished() async {
        let group = finished
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { group.wait(); c.resume() }
        }
    }

    /// The phases every sample of a kind has (the counters made up front).
    public static func phases(_ p: AgentProbe) -> [String] {
        switch p.kind {
        case "ping": return ["echo"]
        case "tcping": return p.scenario.string("payload") != nil ? ["connect", "first_byte"] : ["connect"]
        case "calc":
            let hops = (try? CalcConfig(p.scenario).options().hops) ?? []
            return HTTPProbe.phases + CalcProbe.hopPhases(hops)
        default: return HTTPProbe.phases
        }
    }

    /// Opens every probe's sockets (ICMP sockets, loopback listeners) and starts them. Throws when
    /// a probe cannot start at all (no ICMP socket allowed, no target resolved).
    public func start(metrics: AgentMetrics?) throws {
        for p in config.probes {
            metrics?.declare(probe: p.name, kind: p.kind, targets: p.targets.map(\.name), phases: Self.phases(p))
            let scope = SampleScope(runID: "agent", scenario: p.name)
            let schedule = Schedule(count: rounds, interval: p.interval, deadline: nil)
            switch p.kind {
            case "ping":
                let c = PingConfig(p.scenario)
                let resolved = try resolve(p) { try Resolver.resolve($0, family: c.schedule.family, socketType: Int32(SOCK_DGRAM.rawValue)) }
                let probe = try ICMPProbe(targets: resolved, options: c.options, scope: scope)
                log("probe \(p.name): ping \(resolved.count) targets every \(KindDeclaration.describe(.duration(p.interval))), \(probe.sockets.first?.mode.rawValue ?? "?") sockets")
                thread("ping \(p.name)") { [sink, stop] in _ = probe.run(schedule: schedule, clock: SystemClock(), stop: stop, sink: sink) }
            case "tcping":
                let c = TCPingConfig(p.scenario)
                var targets = p.targets
                if c.listener {
                    for k in targets.indices {
                        let l = try LoopbackListener(host: targets[k].address, echo: c.payload != nil)
                        listeners.append(l)
                        targets[k].address = l.address.hostPort
                    }
                }
                var q = p
                q.targets = targets
                let resolved = try resolve(q) { text in
                    let (host, port) = try Resolver.splitHostPort(text)
                    return try Resolver.resolve(host, port: port, family: c.schedule.family)
                }
                // Shards on threads of their own: a target whose connect waits for its timeout holds
                // up only the targets of its shard, not the whole round.
                let shards = Self.shards(resolved, count: Self.tcpShards)
                log("probe \(p.name): tcping \(resolved.count) targets every \(KindDeclaration.describe(.duration(p.interval))) on \(shards.count) threads")
                for (k, shard) in shards.enumerated() {
                    let probe = TCPConnectProbe(targets: shard, options: c.options, scope: scope)
                    thread("tcping \(p.name) \(k)") { [sink, stop] in _ = probe.run(schedule: schedule, clock: SystemClock(), stop: stop, sink: sink) }
                }
            case "http":
                let c = HTTPConfig(p.scenario)
                let target = try HTTPTarget(url: p.targets[0].address)
                let options = HTTPProbeOptions(request: c.request.spec(path: target.path), schedule: schedule, timeout: c.request.timeout,
                                               expectedStatuses: c.request.expectedStatuses, expectedBody: c.request.expectedBody)
                // Samples name the target as written (a node name stays a node name).
                let probe = HTTPProbe(options: options, attempts: HTTPAttempts(target: target, scope: scope))
                log("probe \(p.name): http \(p.targets[0].name) every \(KindDeclaration.describe(.duration(p.interval)))")
                task { [sink, stop] in _ = await probe.run(schedule: schedule, clock: SystemClock(), stop: stop, sink: RenamingSink(sink, to: p.targets[0].name)) }
            case "calc":
                let c = CalcConfig(p.scenario)
                let target = try HTTPTarget(url: p.targets[0].address)
                var options = try c.options()
                options.schedule = schedule
                let probe = CalcProbe(options: options, attempts: HTTPAttempts(target: target, scope: scope))
                log("probe \(p.name): calc \(p.targets[0].name) every \(KindDeclaration.describe(.duration(p.interval)))")
                task { [sink, stop] in _ = await probe.run(schedule: schedule, clock: SystemClock(), stop: stop, sink: RenamingSink(sink, to: p.targets[0].name)) }
            case "vehicle":
                let target = try HTTPTarget(url: p.targets[0].address)
                let s = p.scenario
                log("probe \(p.name): vehicle \(p.targets[0].name) every \(KindDeclaration.describe(.duration(p.interval)))")
                task { [sink, stop] in
                    await VehicleAttempts.run(target: target, name: p.targets[0].name, front: s.number("front_distance") ?? 30,
                                              rear: s.number("rear_distance") ?? 50, timeout: s.duration("timeout") ?? .seconds(1),
                                              schedule: schedule, scope: scope, stop: stop, sink: sink)
                }
            default:
                throw AgentError("probe \(p.name): kind \(p.kind) cannot run in an agent")
            }
        }
    }

    /// Threads a tcping probe's targets are spread over (at most; one per target below that).
    public static let tcpShards = 8

    /// `targets` dealt round-robin into at most `count` non-empty groups, order kept within each.
    public static func shards<T>(_ targets: [T], count: Int) -> [[T]] {
        let n = max(1, min(count, targets.count))
        var out = Array(repeating: [T](), count: n)
        for (i, t) in targets.enumerated() { out[i % n].append(t) }
        return out.filter { !$0.isEmpty }
    }

    /// Resolves a probe's targets before any timing; the sample target is the name as written.
    func resolve(_ p: AgentProbe, _ body: (String) throws -> ResolvedTarget) throws -> [ResolvedTarget] {
        var out: [ResolvedTarget] = []
        for t in p.targets {
            do {
                var r = try body(t.address)
                r.name = t.name
                out.append(r)
            } catch {
                log("probe \(p.name): \(error); \(t.name) is left out")
            }
        }
        guard !out.isEmpty else { throw AgentError("probe \(p.name): no target could be resolved; check the names in \(config.file):\(p.line)") }
        return out
    }

    private func thread(_ name: String, _ body: @escaping @Sendable () -> Void) {
        finished.enter()
        let group = finished
        let t = Thread { body(); group.leave() }
        t.name = name
        t.start()
        threads.append(t)
    }

    private func task(_ body: @escaping @Sendable () async -> Void) {
        finished.enter()
        let group = finished
        tasks.append(Task { await body(); group.leave() })
    }

    /// Asks every probe to stop and waits (at most `timeout`) until they have.
    public func shutdown(timeout: Duration = .seconds(5)) {
        stop.stop(reason: "agent stopping")
        _ = finished.wait(timeout: .now() + timeout.seconds)
        listeners.forEach { $0.close() }
        listeners = []
    }
}

/// Renames the target of every sample (an http probe's samples carry the URL it connected to; the
/// agent's series carry the URL as written, node name included).
final class RenamingSink: SampleSink, @unchecked Sendable {
    let next: SampleSink
    let name: String
    init(_ next: SampleSink, to name: String) { (self.next, self.name) = (next, name) }
    func record(_ sample: Sample) {
        var s = sample
        s.target = name
        next.record(s)
    }
}
