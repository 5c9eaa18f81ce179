import Foundation
import EdgeMeterSystem

/// Runs `ReachPlan.probes` against a topology that is up. Every (source, address) pair runs on its
/// own thread, all at once: first `ip route get ADDR` in the source's namespace (the host's own for
/// `(host)`); only when the route leads into one of the lab's interfaces (a node's `eth<k>`, the
/// host's lab links) are probes sent; otherwise the cell is "not probed: the route leaves the lab".
/// ICMP is iputils `ping` run inside the namespace (`ip netns exec`); TCP connects are made from a
/// thread that entered the namespace (`setns`), no program started. The probes of one pair run in
/// parallel as well, so the whole run takes about one route lookup plus the longest timeout.
public struct ReachRunner: Sendable {
    /// ICMP echoes per address (sent 200 ms apart; ping stops at `icmpDeadlineSeconds`).
    public var echoes = 3
    public var icmpDeadlineSeconds = 1
    /// TCP connects per port; the first failure ends the series.
    public var connects = 3
    public var connectTimeoutMilliseconds: Int32 = 1000

    public init() {}

    /// A compose deployment (no topology file: its probes come from the state alone).
    public func run(composeState state: LabState) throws -> ReachMatrix {
        try run(state: state, topology: Topology(name: state.topology, description: "", networks: [], nodes: [], path: state.file))
    }

    public func run(state: LabState, topology: Topology) throws -> ReachMatrix {
        guard let ip = which("ip") else { throw LabError(.refused, "iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        guard let ping = which("ping") else { throw LabError(.refused, "`ping` (iputils) is not on PATH: apt-get install -y iputils-ping") }
        let start = ContinuousClock.now
        let probes = ReachPlan.probes(state: state, topology: topology)
        struct Pair: Hashable { var from: String; var address: String }
        var byPair: [Pair: [ReachProbe]] = [:]
        for p in probes { byPair[Pair(from: p.from, address: p.address), default: []].append(p) }

        let results = ResultsBox()
        let group = DispatchGroup()
        for (pair, list) in byPair {
            let namespace: String?
            let labDevices: Set<String>
            if pair.from == ReachPlan.hostSource {
                namespace = nil
                // A compose deployment publishes ports on loopback: those probes go through `lo`.
                labDevices = Set(state.hostLinks).union(state.compose == nil ? [] : ["lo"])
            } else {
                guard let n = state.node(pair.from) else { continue }
                if n.kind == NodeKind.vm.rawValue {
                    results.append(list.map { ReachResult(probe: $0, reachable: false, reason: .insideVM, detail: "the guest runs busybox only") })
                    continue
                }
                namespace = n.namespace
                labDevices = Set(n.interfaces.map(\.device))
            }
            group.enter()
            let thread = Thread {
                let r = self.probePair(ip: ip, ping: ping, namespace: namespace, labDevices: labDevices, address: pair.address, probes: list)
                results.append(r)
                group.leave()
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        group.wait()
        return ReachMatrix(topology: state.topology, results: results.all, wallTime: ContinuousClock.now - start)
    }

    /// What `ip route get` says about `address` from the source.
    enum RouteCheck: Equatable {
        case intoLab(device: String)
        case leavesLab(device: String)
        case noRoute(String)
    }

    /// Parses `ip -o route get` output (or its error): `10.0.2.2 dev eth0 src 10.0.2.15 uid 0`.
    static func classifyRoute(status: Int32, output: String, labDevices: Set<String>) -> RouteCheck {
        let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard status == 0 else { return .noRoute(text) }
        if let first = words.first, ["unreachable", "prohibit", "blackhole", "throw"].contains(first) { return .noRoute(text) }
        guard let i = words.firstIndex(of: "dev"), i + 1 < words.count else { return .noRoute(text) }
        let dev = words[i + 1]
        return labDevices.contains(dev) ? .intoLab(device: dev) : .leavesLab(device: dev)
    }

    func probePair(ip: String, ping: String, namespace: String?, labDevices: Set<String>, address: String, probes: [ReachProbe]) -> [ReachResult] {
        let routeArgv = namespace.map { [ip, "-n", $0, "-o", "route", "get", address] } ?? [ip, "-o", "route", "get", address]
        let route: RouteCheck
        do {
            let r = try Command.runBlocking(routeArgv, timeout: .seconds(5))
            route = ReachRunner.classifyRoute(status: r.status, output: r.ok ? r.stdout : r.combined, labDevices: labDevices)
        } catch {
            route = .noRoute("\(error)")
        }
        switch route {
        case .noRoute(let why):
            return probes.map { ReachResult(probe: $0, reachable: false, reason: .noRoute, detail: why) }
        case .leavesLab(let dev):
            return probes.map { ReachResult(probe: $0, reachable: false, reason: .leavesLab, detail: "ip route get \(address) → dev \(dev)") }
        case .intoLab:
            // The probes of one address run at once too, so a silent target costs one timeout, not one per probe.
            let box = ResultsBox()
            let group = DispatchGroup()
            for p in probes {
                group.enter()
                let thread = Thread {
                    switch p.kind {
                    case .icmp: box.append([self.icmp(ip: ip, ping: ping, namespace: namespace, probe: p)])
                    case .tcp: box.append([self.tcp(namespace: namespace, probe: p)])
                    }
                    group.leave()
                }
                thread.stackSize = 512 * 1024
                thread.start()
            }
            group.wait()
            return box.all
        }
    }

    func icmp(ip: String, ping: String, namespace: String?, probe: ReachProbe) -> ReachResult {
        var argv = [ping, "-n", "-c", "\(echoes)", "-i", "0.2", "-w", "\(icmpDeadlineSeconds)", probe.address]
        if let ns = namespace { argv = [ip, "netns", "exec", ns] + argv }
        do {
            let r = try Command.runBlocking(argv, timeout: .seconds(icmpDeadlineSeconds + 4))
            return ReachRunner.parsePing(probe: probe, stdout: r.stdout, stderr: r.stderr)
        } catch {
            return ReachResult(probe: probe, reachable: false, reason: .noRoute, detail: "ping did not start: \(error)")
        }
    }

    /// Reads iputils ping's output: `time=` of each reply (p50 of those), else the first ICMP error
    /// line (`From 10.0.2.2 icmp_seq=1 Destination Host Unreachable`), else a connect error
    /// (`ping: connect: Network is unreachable`), else a timeout.
    static func parsePing(probe: ReachProbe, stdout: String, stderr: String) -> ReachResult {
        var rtts: [Double] = []
        var error: (ReachResult.Reason, String)?
        for line in stdout.split(separator: "\n") {
            if line.contains(" bytes from "), let r = line.range(of: "time=") {
                let num = line[r.upperBound...].prefix { $0.isNumber || $0 == "." }
                if let v = Double(num) { rtts.append(v) }
            } else if line.hasPrefix("From "), error == nil {
                let l = line.lowercased()
                let reason: ReachResult.Reason = l.contains("net unreachable") ? .noRoute
                    : (l.contains("prohibited") || l.contains("filtered")) ? .filtered
                    : l.contains("port unreachable") ? .refused : .hostUnreachable
                error = (reason, String(line))
            }
        }
        if !rtts.isEmpty { return ReachResult(probe: probe, reachable: true, reason: nil, rttP50Milliseconds: median(rtts)) }
        if let (reason, text) = error { return ReachResult(probe: probe, reachable: false, reason: reason, detail: text) }
        let err = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        if err.contains("Network is unreachable") { return ReachResult(probe: probe, reachable: false, reason: .noRoute, detail: err) }
        if err.contains("No route to host") { return ReachResult(probe: probe, reachable: false, reason: .hostUnreachable, detail: err) }
        return ReachResult(probe: probe, reachable: false, reason: .timeout, detail: err.isEmpty ? "no reply" : err)
    }

    func tcp(namespace: String?, probe: ReachProbe) -> ReachResult {
        var rtts: [Double] = []
        for _ in 0..<connects {
            let (outcome, elapsed) = NamespaceConnect.timedConnect(netns: namespace, address: probe.address, port: probe.port ?? 0,
                                                                   timeoutMilliseconds: connectTimeoutMilliseconds)
            switch outcome {
            case .connected:
                rtts.append(elapsed.seconds * 1000)
            case .failed(let text):
                if !rtts.isEmpty { break }
                let reason: ReachResult.Reason = text.contains("refused") ? .refused
                    : text == "timed out" ? .timeout
                    : text.contains("Network is unreachable") ? .noRoute
                    : text.contains("No route to host") ? .hostUnreachable : .timeout
                return ReachResult(probe: probe, reachable: false, reason: reason, detail: text)
            }
        }
        return ReachResult(probe: probe, reachable: true, reason: nil, rttP50Milliseconds: ReachRunner.median(rtts))
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [ReachResult] = []
    func append(_ r: [ReachResult]) { lock.lock(); results += r; lock.unlock() }
    var all: [ReachResult] { lock.lock(); defer { lock.unlock() }; return results }
}
