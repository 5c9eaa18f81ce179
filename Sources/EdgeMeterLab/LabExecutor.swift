import Foundation
#if canImport(Glibc)
import Glibc
#endif
import EdgeMeterSystem
import EdgeMeterCore

/// Builds a `TopologyPlan` on the host and tears it down, through the system module's `ip` API.
///
/// `up` records each object in the state file before creating it, runs the steps in order, starts
/// the workloads and waits for their ports; on any failure it undoes everything it did and throws a
/// `LabError` naming the step, the command and its stderr. `down` (and `edgemeter cleanup`) read the
/// state file: they stop every process left in the lab's namespaces and delete the recorded objects,
/// and only names carrying edgemeter's prefixes.
public struct LabExecutor: Sendable {
    public var ip: IPRoute
    /// Where state files live (`<topo>.json`, and `<topo>.logs/` for the workloads' output).
    public var stateDirectory: String
    /// How long each declared port may take to accept a TCP connect after its workload started.
    public var portTimeout: Duration
    /// How declared impairments are applied (LabExecutor+Impairment.swift).
    public var impairMode: ImpairMode = .forwarder

    public static let defaultStateDirectory = "/run/edgemeter/lab"

    public init(ip: IPRoute = IPRoute(), stateDirectory: String = LabExecutor.defaultStateDirectory, portTimeout: Duration = .seconds(10)) {
        (self.ip, self.stateDirectory, self.portTimeout) = (ip, stateDirectory, portTimeout)
    }

    public func statePath(_ topology: String) -> String { "\(stateDirectory)/\(topology).json" }
    public func logDirectory(_ topology: String) -> String { "\(stateDirectory)/\(topology).logs" }

    // MARK: checks before anything is built

    /// Throws `.refused` for what `lab up` cannot build: node kinds other than netns and router, a
    /// missing `ip`/`iptables`, not being root, or a topology that is already up.
    public func preflight(_ topology: Topology) throws {
        for n in topology.nodes where n.kind != .netns && n.kind != .router {
            throw LabError(.refused, "node \(n.name): kind \(n.kind.rawValue) is not supported by `lab up` yet; use netns or router")
        }
        guard getuid() == 0 else {
            throw LabError(.refused, "`lab up` creates network namespaces and links, which needs root: run it as root (sudo edgemeter lab up \(topology.name))")
        }
        guard which(ip.program) != nil else { throw LabError(.refused, "iproute2's `ip` not found on PATH: apt-get install -y iproute2") }
        let needsIptables = topology.nodes.contains { !$0.nat.isEmpty || !$0.filter.isEmpty }
        if needsIptables && which("iptables") == nil {
            throw LabError(.refused, "the routers of \(topology.name) have NAT or filter rules, which need `iptables`: apt-get install -y iptables")
        }
        if FileManager.default.fileExists(atPath: statePath(topology.name)) {
            throw LabError(.refused, "topology \(topology.name) is already up (\(statePath(topology.name))): `edgemeter lab down \(topology.name)` first")
        }
    }

    // MARK: up

    /// Builds the topology and starts its workloads; returns the state written to the state file.
    /// `binary` replaces the word `edgemeter` in workloads. `progress` gets one line per phase.
    /// A stop request (`stop`, set by SIGINT/SIGTERM) is honoured between steps and while waiting
    /// for ports: everything built is undone and `.interrupted` thrown.
    public func up(_ topology: Topology, binary: String, stop: StopFlag? = nil, progress: (String) -> Void = { _ in }) async throws -> LabState {
        try preflight(topology)
        try await preflightImpairment(topology)
        let plan = impairmentPlan(topology)
        for name in plan.interfaceNames { try checked { try Names.checkInterface(name) } }
        // Names already taken (another topology with the same tag, a leftover): refuse before building.
        let existing = Set(try await namespaces())
        for o in plan.createdObjects {
            switch o {
            case .namespace(let n) where existing.contains(n):
                throw LabError(.refused, "namespace \(n) already exists (a leftover of an earlier run?): `edgemeter cleanup`, or `ip netns del \(n)` if it is not edgemeter's")
            case .hostLink(let l) where FileManager.default.fileExists(atPath: "/sys/class/net/\(l)"):
                throw LabError(.refused, "link \(l) already exists: `edgemeter lab status` shows which topology holds it; `lab down` that one first")
            default: break
            }
        }
        var state = LabState(plan: plan)
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        try save(state)
        do {
            func checkStop() throws {
                if let stop, stop.isStopped {
                    throw LabError(.interrupted, "lab up \(topology.name) interrupted by \(stop.reason ?? "a stop request")")
                }
            }
            for step in plan.steps {
                try checkStop()
                if let o = step.creates {
                    state.objects.append(o)
                    try save(state)
                }
                try await run(step)
            }
            progress("built \(plan.steps.count) steps: \(state.objects.count) namespaces and links")
            try FileManager.default.createDirectory(atPath: logDirectory(topology.name), withIntermediateDirectories: true)
            try await startImpairment(topology, state: &state, binary: binary, progress: progress)
            for (i, node) in topology.nodes.enumerated() where !node.workload.isEmpty {
                state.nodes[i].pid = try startWorkload(node, namespace: plan.namespace(of: node.name), binary: binary, topology: topology.name)
                try save(state)
            }
            for (i, node) in topology.nodes.enumerated() {
                for port in node.ports where !node.workload.isEmpty {
                    try checkStop()
                    try await waitForPort(node: node, namespace: plan.namespace(of: node.name), port: port, pid: state.nodes[i].pid, topology: topology.name, stop: stop)
                }
            }
            state.status = "up"
            try save(state)
            return state
        } catch {
            let left = await teardown(state)
            var e = error as? LabError ?? LabError(.stepFailed, "lab up \(topology.name): \(error)")
            e.message += left.isEmpty ? " (everything built so far was removed again)" : " (undoing left behind: \(left.joined(separator: "; ")))"
            throw e
        }
    }

    /// The temporary file a state file is written to before it is renamed over the state file.
    public func temporaryStatePath(_ topology: String) -> String { "\(statePath(topology)).tmp" }

    /// Writes the state file atomically (`<topo>.json.tmp`, then renamed over it), so a kill never
    /// leaves half a file. The temporary has a name of its own (not Foundation's random
    /// `.dat.nosync*`), so a kill between the write and the rename leaves a file that `down` and
    /// `removeStaleTemporaries` know to remove.
    func save(_ state: LabState) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let tmp = temporaryStatePath(state.topology)
        do {
            try enc.encode(state).write(to: URL(fileURLWithPath: tmp))
            guard rename(tmp, statePath(state.topology)) == 0 else {
                throw LabError(.stepFailed, "cannot rename \(tmp) to \(statePath(state.topology)): \(String(cString: strerror(errno)))")
            }
        } catch {
            throw LabError(.stepFailed, "cannot write the state file \(statePath(state.topology)): \(error); is /run writable (run as root)?")
        }
    }

    /// Removes state-file temporaries left by a `lab up` killed while writing: `<topo>.json.tmp`
    /// whose topology has no state file (the kill came during its first write, before anything was
    /// built), and Foundation's `.dat.nosync*` files that earlier versions wrote. Returns what was
    /// removed. A topology that is up keeps its files.
    public func removeStaleTemporaries() -> [String] {
        let fm = FileManager.default
        var removed: [String] = []
        for f in (try? fm.contentsOfDirectory(atPath: stateDirectory)) ?? [] {
            let path = "\(stateDirectory)/\(f)"
            let stale = f.hasPrefix(".dat.nosync")
                || (f.hasSuffix(".json.tmp") && !fm.fileExists(atPath: "\(stateDirectory)/\(f.dropLast(4))"))
            if stale, (try? fm.removeItem(atPath: path)) != nil { removed.append("stale file \(path)") }
        }
        return removed
    }

    private func checked(_ body: () throws -> Void) throws {
        do { try body() } catch { throw LabError(.refused, "\(error)") }
    }

    /// Runs one step; a failure throws `.stepFailed` naming the step, the command and its stderr.
    func run(_ step: TopologyPlan.Step) async throws {
        let r: CommandResult
        do {
            switch step.action {
            case .ip(let args, let ns): r = try await ip.result(args, netns: ns)
            case .exec(let ns, let argv):
                let program = which(argv[0]) ?? argv[0]
                r = try await ip.exec(in: ns, [program] + argv.dropFirst(), timeout: .seconds(30))
            }
        } catch {
            throw LabError(.stepFailed, "step \"\(step.summary)\" could not run `\(step.commandLine.joined(separator: " "))`: \(error)", command: step.commandLine)
        }
        guard r.ok else {
            let out = r.combined.isEmpty ? "no output" : r.combined
            throw LabError(.stepFailed, "step \"\(step.summary)\" failed: `\(step.commandLine.joined(separator: " "))` exited with status \(r.status): \(out)",
                           command: step.commandLine, output: r.combined)
        }
    }

    /// The workload, `edgemeter` replaced by `binary`, started as `ip netns exec NS argv...` in a
    /// process group of its own (so ^C on `lab up` does not reach it), output to `<topo>.logs/<node>.log`.
    func startWorkload(_ node: Node, namespace: String, binary: String, topology: String) throws -> Int32 {
        let argv = node.workload.map { $0 == "edgemeter" ? binary : $0 }
        let log = "\(logDirectory(topology))/\(node.name).log"
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LabError(.stepFailed, "node \(node.name): cannot write its log \(log): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let ipPath = which(ip.program) else { throw LabError(.refused, "iproute2's `ip` not found on PATH: apt-get install -y iproute2") }
        guard let program = which(argv[0]) else {
            throw LabError(.stepFailed, "node \(node.name): workload program \(argv[0]) not found on PATH: install it or give its absolute path in the topology")
        }
        do {
            let child = try ChildProcess([ipPath, "netns", "exec", namespace, program] + argv.dropFirst(), outputFD: fd, newProcessGroup: true)
            return child.pid
        } catch {
            throw LabError(.stepFailed, "node \(node.name): workload `\(argv.joined(separator: " "))` did not start: \(error)", command: argv)
        }
    }

    /// Waits until `port` accepts a TCP connect on 127.0.0.1 inside the node's namespace, at most `portTimeout`.
    func waitForPort(node: Node, namespace: String, port: Int, pid: Int32?, topology: String, stop: StopFlag? = nil) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + portTimeout
        var last = "not tried"
        while clock.now < deadline {
            if let stop, stop.isStopped { throw LabError(.interrupted, "lab up \(topology) interrupted by \(stop.reason ?? "a stop request")") }
            let outcome = NamespaceConnect.connect(netns: namespace, address: "127.0.0.1", port: port, timeoutMilliseconds: 500)
            if outcome == .connected { return }
            if case .failed(let why) = outcome { last = why }
            if let pid, !Self.isAlive(pid) {
                throw LabError(.stepFailed, "node \(node.name): its workload exited before port \(port) answered; its output: \(logTail(topology, node.name))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let secs = Double(portTimeout.components.seconds) + Double(portTimeout.components.attoseconds) / 1e18
        throw LabError(.stepFailed, "node \(node.name): port \(port) did not accept a TCP connect from inside \(namespace) within \(secs) s (last: \(last)); "
            + "check the workload's output in \(logDirectory(topology))/\(node.name).log: \(logTail(topology, node.name))")
    }

    func logTail(_ topology: String, _ node: String) -> String {
        let text = (try? String(contentsOfFile: "\(logDirectory(topology))/\(node).log", encoding: .utf8)) ?? ""
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? "(nothing)" : String(t.suffix(400))
    }

    /// A process that exists and is not a zombie.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        guard let close = stat.lastIndex(of: ")") else { return false }
        let rest = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces)
        return !rest.hasPrefix("Z") && !rest.hasPrefix("X")
    }

    // MARK: down

    /// Reads the state file of a topology that is up (or was being built).
    public func state(_ topology: String) throws -> LabState {
        let path = statePath(topology)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LabError(.refused, "no topology \(topology) is up (no \(path)): `edgemeter lab status` lists what is up")
        }
        do {
            return try JSONDecoder().decode(LabState.self, from: data)
        } catch {
            throw LabError(.refused, "\(path) cannot be read (\(error)); remove the lab's namespaces with `ip netns list | grep edgemeter-\(topology)` and delete the file")
        }
    }

    /// Every state file in the state directory, by topology name.
    public func states() -> [LabState] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().compactMap { try? state(String($0.dropLast(5))) }
    }

    /// Tears a topology down; returns what was removed. Throws `.teardown` naming what could not be.
    @discardableResult
    public func down(_ topology: String) async throws -> [String] {
        let s = try state(topology)
        var removed: [String] = []
        let left = await teardown(s, removed: &removed)
        guard left.isEmpty else {
            throw LabError(.teardown, "lab down \(topology) left behind: \(left.joined(separator: "; ")); the state file \(statePath(topology)) is kept, run `edgemeter lab down \(topology)` again")
        }
        return removed
    }

    func teardown(_ s: LabState) async -> [String] {
        var removed: [String] = []
        return await teardown(s, removed: &removed)
    }

    /// Stops every process in the lab's namespaces, deletes the recorded objects (last created
    /// first; only edgemeter names; missing ones are skipped), then the state file and logs when
    /// nothing was left. Returns what could not be removed.
    func teardown(_ s: LabState, removed: inout [String]) async -> [String] {
        var left: [String] = []
        let namespaces = s.objects.compactMap { o -> String? in if case .namespace(let n) = o { return n } else { return nil } }
        let existing = Set((try? await self.namespaces()) ?? [])
        // 1. processes: every pid in each lab namespace (the workloads and anything they started).
        var pids: [Int32] = []
        for ns in namespaces where existing.contains(ns) && Names.isEdgemeterName(ns) {
            if let r = try? await ip.result(["netns", "pids", ns]), r.ok {
                pids += r.stdout.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            }
        }
        for p in pids where p > 1 { kill(p, SIGTERM) }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(2)
        while pids.contains(where: Self.isAlive) && clock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        for p in pids where Self.isAlive(p) { kill(p, SIGKILL) }
        for p in pids { if Self.isAlive(p) { try? await Task.sleep(for: .milliseconds(50)) } }
        if !pids.isEmpty { removed.append("\(pids.count) process(es)") }
        // 2. objects, reverse order.
        for o in s.objects.reversed() {
            let step = TopologyPlan.teardown([o])[0]
            guard Names.isEdgemeterName(o.name) else { left.append("\(o) (not an edgemeter name, not touched)"); continue }
            let present: Bool
            switch o {
            case .namespace(let n): present = existing.contains(n)
            case .hostLink(let l): present = FileManager.default.fileExists(atPath: "/sys/class/net/\(l)")
            }
            guard present else { continue }
            do {
                try await run(step)
                removed.append(o.description)
            } catch {
                left.append("\(o): \(error)")
            }
        }
        if left.isEmpty {
            try? FileManager.default.removeItem(atPath: logDirectory(s.topology))
            try? FileManager.default.removeItem(atPath: statePath(s.topology))
            try? FileManager.default.removeItem(atPath: temporaryStatePath(s.topology))
            try? FileManager.default.removeItem(atPath: forwarderSocketPath(s.topology))
        }
        return left
    }

    func namespaces() async throws -> [String] {
        do { return try await ip.namespaces() } catch { throw LabError(.refused, "\(error)") }
    }

    // MARK: using a topology that is up

    /// The gateway for a route from `node`: `via` is a node name (its address on a network shared
    /// with `node`) or an IPv4 address on one of `node`'s networks.
    public static func gateway(_ via: String, from node: LabState.NodeState, in s: LabState) throws -> String {
        let nets = Set(node.interfaces.map(\.network))
        if let router = s.node(via) {
            guard let shared = router.interfaces.first(where: { nets.contains($0.network) }) else {
                throw LabError(.refused, "node \(via) shares no network with \(node.name) (\(node.name) is on \(nets.sorted().joined(separator: ", "))); route via a node on one of those")
            }
            return shared.address
        }
        guard let a = IPv4Address(via) else {
            throw LabError(.refused, "`\(via)` is neither a node of \(s.topology) (\(s.nodes.map(\.name).joined(separator: ", "))) nor an IPv4 address")
        }
        let onLink = node.interfaces.contains { p in
            s.networks.first { $0.name == p.network }.flatMap { IPv4Prefix($0.subnet) }?.contains(a) ?? false
        }
        guard onLink else { throw LabError(.refused, "gateway \(a) is on none of \(node.name)'s networks; give an address on \(nets.sorted().joined(separator: ", "))") }
        return a.description
    }

    /// `ip -n NS route add|del PREFIX via GATEWAY` inside the node's namespace. Before a `del`, the
    /// node's TCP connections to addresses in PREFIX are closed (`ss -K dst PREFIX` inside the node),
    /// so that keep-alive connections opened through the old route do not hang until TCP gives up:
    /// the next request connects anew and meets the missing route. Returns the gateway and how
    /// many connections were closed.
    public func route(_ add: Bool, topology: String, node: String, prefix: String, via: String) async throws -> (gateway: String, closed: Int) {
        let s = try state(topology)
        guard let n = s.node(node) else {
            throw LabError(.refused, "topology \(topology) has no node \(node); its nodes: \(s.nodes.map(\.name).joined(separator: ", "))")
        }
        guard let p = IPv4Prefix(prefix) else {
            throw LabError(.refused, "`\(prefix)` is not an IPv4 prefix with no host bits set, such as 192.168.2.0/24")
        }
        let gw = try Self.gateway(via, from: n, in: s)
        let step = TopologyPlan.Step(summary: "\(node): route \(add ? "add" : "del") \(p) via \(gw)",
                                     action: .ip(["route", add ? "add" : "del", p.description, "via", gw], netns: n.namespace))
        if add {
            try await run(step)
            return (gw, 0)
        }
        // The route must exist (so a typo fails before any connection is touched) ...
        let show = try await ip.result(["route", "show", p.description, "via", gw], netns: n.namespace)
        guard show.ok, !show.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw LabError(.refused, "\(node) has no route \(p) via \(gw): `edgemeter lab exec \(topology) \(node) -- ip route` shows its routes")
        }
        // ... and the connections close while it still carries their resets to the peers; after
        // the delete, resets would go to the default gateway and use up its ICMP error budget
        // (1 per second per source), delaying the "unreachable" the next connect should meet.
        let kill = TopologyPlan.Step(summary: "\(node): close TCP connections into \(p)",
                                     action: .exec(netns: n.namespace, ["ss", "-K", "-H", "-tn", "dst", p.description]))
        let closed: Int
        do {
            let program = which("ss") ?? "ss"
            let r = try await ip.exec(in: n.namespace, [program, "-K", "-H", "-tn", "dst", p.description], timeout: .seconds(10))
            guard r.ok else { throw LabError(.stepFailed, "step \"\(kill.summary)\" failed: \(r.combined)") }
            closed = r.stdout.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.count
        } catch {
            throw LabError(.stepFailed, "closing \(node)'s connections into \(p) failed (`\(kill.commandLine.joined(separator: " "))`: \(error)); the route was not deleted")
        }
        try await run(step)
        return (gw, closed)
    }
}
