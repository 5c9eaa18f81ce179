import Foundation
import EdgeMeterSystem

/// Runs `ReachPlan.probes` against a topology that is up. Every (source, address) pair runs on its
/// own thread, all at once: first `ip route get ADDR` in the source's namespace (the host's own for
/// `(host)`); only when the route leads into one of the lab's interfaces (a node's `eth<k>`, the
/// host's lab links) are probes sent; otherwise the cell is "not probed: the route leaves the lab".
/// ICMP is iputils `ping` run inside the namespace (`ip netns exec`); TCP connects are made from a
/// thread that entered the namespace (`setns`), no program started. The probes of one pair run in
/// parallel as well, so the whole run takes about one route lookup plus the longest timeout.
/// A vm node's probes run inside its guest through the guest's command channel (`probeFromVM`),
/// one after the other, on one thread per vm node.
public struct ReachRunner: Sendable {
    /// ICMP echoes per address (sent 200 ms apart; ping stops at `icmpDeadlineSeconds`).
    public var echoes = 3
    public var icmpDeadlineSeconds = 1
    /// TCP connects per port; the first failure ends the series.
    public var connects = 3
    public var connectTimeoutMilliseconds: Int32 = 1000

    /// Where `lab up` put the state and the vm nodes' command sockets (`<topo>.logs/<node>.cmd`).
    public var stateDirectory = LabExecutor.defaultStateDirectory

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
        var vmPairs: [String: [(address: String, probes: [ReachProbe])]] = [:]
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
                    vmPairs[n.name, default: []].append((pair.address, list))
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
        // A vm source's probes run one after the other through its guest's command channel, one
        // thread per vm node (in parallel with the rest).
        for (name, pairs) in vmPairs {
            let socket = LabExecutor.vmCommandSocket(logDirectory: "\(stateDirectory)/\(state.topology).logs", node: name)
            group.enter()
            let thread = Thread {
                results.append(self.probeFromVM(socket: socket, pairs: pairs))
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

    // MARK: probes from a vm node (through its guest's command channel, VMCommandChannel)

    /// A vm node's probes, sent as fixed busybox commands to its guest: per address `ip route get
    /// ADDR` in the guest (its `eth0` is its only lab link, so any other device "leaves the lab"),
    /// then busybox `ping` for ICMP and busybox `nc -w 1 ADDR PORT -e true` for each TCP connect (once
    /// connected nc runs `true`, which exits at once: a server that never talks or closes cannot hold it).
    /// Addresses come from the lab state and are checked to be numeric before they are sent.
    func probeFromVM(socket: String, pairs: [(address: String, probes: [ReachProbe])]) -> [ReachResult] {
        let channel: VMCommandChannel
        do { channel = try VMCommandChannel(path: socket) } catch {
            return pairs.flatMap { $0.probes.map { ReachResult(probe: $0, reachable: false, reason: .insideVM, detail: "\(error)") } }
        }
        var out: [ReachResult] = []
        for (address, probes) in pairs.sorted(by: { $0.address < $1.address }) {
            guard !address.isEmpty, address.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) else {
                out += probes.map { ReachResult(probe: $0, reachable: false, reason: .noRoute, detail: "\(address) is not a numeric address") }
                continue
            }
            let r = channel.run("ip route get \(address)", timeout: .seconds(5))
            let route: RouteCheck = r.status.map { ReachRunner.classifyRoute(status: $0, output: r.output, labDevices: ["eth0"]) }
                ?? .noRoute("the guest did not answer `ip route get` within 5 s: \(r.output.suffix(200))")
            switch route {
            case .noRoute(let why):
                out += probes.map { ReachResult(probe: $0, reachable: false, reason: .noRoute, detail: why) }
            case .leavesLab(let dev):
                out += probes.map { ReachResult(probe: $0, reachable: false, reason: .leavesLab, detail: "ip route get \(address) in the guest → dev \(dev)") }
            case .intoLab:
                for p in probes {
                    switch p.kind {
                    case .icmp: out.append(vmICMP(channel, probe: p))
                    case .tcp: out.append(vmTCP(channel, probe: p))
                    }
                }
            }
        }
        return out
    }

    /// busybox ping in the guest: `echoes` echoes 200 ms apart, stopping after `icmpDeadlineSeconds + 1` s
    /// (one more second than from a namespace: the guest is a TCG emulation).
    func vmICMP(_ channel: VMCommandChannel, probe: ReachProbe) -> ReachResult {
        let deadline = icmpDeadlineSeconds + 1
        let r = channel.run("ping -c \(echoes) -i 0.2 -W 1 -w \(deadline) \(probe.address)", timeout: .seconds(deadline + 5))
        guard r.status != nil else {
            return ReachResult(probe: probe, reachable: false, reason: .timeout, detail: "the guest's ping did not finish: \(r.output.suffix(200))")
        }
        return ReachRunner.parseBusyboxPing(probe: probe, output: r.output)
    }

    /// Reads busybox ping's output (`64 bytes from 10.0.0.1: seq=0 ttl=64 time=1.234 ms`, errors
    /// such as `ping: sendto: Network is unreachable` on the same stream): the p50 of the replies'
    /// `time=`, else the error's reason, else a timeout.
    static func parseBusyboxPing(probe: ReachProbe, output: String) -> ReachResult {
        parsePing(probe: probe, stdout: output, stderr: output.split(separator: "\n").filter { !$0.contains(" bytes from ") }.joined(separator: "\n"))
    }

    /// `connects` busybox `nc` connects from the guest; the first failure ends the series. busybox nc
    /// gives no timing, so a reachable cell from a vm node has no RTT.
    func vmTCP(_ channel: VMCommandChannel, probe: ReachProbe) -> ReachResult {
        for _ in 0..<connects {
            let r = channel.run("nc -w 1 \(probe.address) \(probe.port ?? 0) -e true", timeout: .seconds(6))
            guard let status = r.status else {
                return ReachResult(probe: probe, reachable: false, reason: .timeout, detail: "the guest's nc did not finish: \(r.output.suffix(200))")
            }
            if status != 0 { return ReachRunner.classifyBusyboxNC(probe: probe, output: r.output) }
        }
        return ReachResult(probe: probe, reachable: true, reason: nil)
    }

    /// busybox nc's error (`nc: can't connect to remote host (10.0.0.1): Connection refused`, `nc: timed out`).
    static func classifyBusyboxNC(probe: ReachProbe, output: String) -> ReachResult {
        let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
        let reason: ReachResult.Reason = text.contains("refused") ? .refused
            : text.contains("Network is unreachable") ? .noRoute
            : text.contains("No route to host") ? .hostUnreachable : .timeout
        return ReachResult(probe: probe, reachable: false, reason: reason, detail: text.isEmpty ? "nc failed without a message" : text)
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
