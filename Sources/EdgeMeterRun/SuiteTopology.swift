import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterLab
import EdgeMeterProbes
import EdgeMeterSystem

/// Topologies for the suite loader: built-in names and files, found as `edgemeter lab up` finds
/// them (relative to the suite's directory first), and the kinds that may run inside a node.
public enum SuiteTopologies {
    public static var catalog: TopologyCatalog {
        TopologyCatalog(kindsWithFrom: Set(ScenarioKinds.all.filter(\.runsInNode).map(\.schema.kind))) { reference, directory in
            do {
                let (t, compose) = try TopologyFiles.loadDeployment(reference, relativeTo: directory)
                // A compose file's nodes are its services.
                return .success(TopologyCatalog.Entry(name: t.name, file: t.path, nodes: compose?.services.map(\.name) ?? t.nodes.map(\.name)))
            } catch {
                return .failure(TopologyLookupError("\(error)"))
            }
        }
    }

    /// Loads a suite with every kind's schema and the topology checks.
    public static func load(yaml: String, file: String) throws -> Suite {
        try SuiteLoader.load(yaml: yaml, file: file, schemas: ScenarioKinds.schemas, topologies: catalog)
    }
}

/// What a scenario running in a lab topology knows of it: the topology, its state while up, and
/// the node it runs from (nil = the host).
public struct ScenarioLab: Sendable {
    @TaskLocal public static var current: ScenarioLab?

    public var topology: Topology
    public var state: LabState
    public var from: String?

    /// The namespace probes run in: `from`'s, nil for the host.
    public var namespace: String? { from.flatMap { state.node($0)?.namespace } }

    /// The namespace of the node that has `address` on one of its interfaces.
    public func namespace(ofAddress address: String) -> String? {
        state.nodes.first { $0.interfaces.contains { $0.address == address } }?.namespace
    }

    /// Runs `body` where the scenario's sockets belong: on a thread inside `from`'s namespace
    /// (`NamespaceThread`), or on the calling thread for the host or outside a topology.
    public static func inSource<T>(_ lab: ScenarioLab?, _ body: @escaping () throws -> T) throws -> T {
        guard let ns = lab?.namespace else { return try body() }
        return try NamespaceThread.run(in: ns, body)
    }

    /// Runs `body` (http, calc) with its HTTP sockets made where the scenario's source is: for a
    /// node, a thread pool and event loop made on a thread inside its namespace (threads inherit
    /// the namespace of the thread that creates them), set as `HTTPSocketThreads.current` for the
    /// body and shut down after it; for the host, NIO's shared threads.
    public static func withHTTPSource<T: Sendable>(_ lab: ScenarioLab?, _ body: () async throws -> T) async throws -> T {
        guard let ns = lab?.namespace else { return try await body() }
        let threads = try NamespaceThread.run(in: ns) { HTTPSocketThreads() }
        do {
            let r = try await HTTPSocketThreads.$current.withValue(threads) { try await body() }
            await threads.shutdown()
            return r
        } catch {
            await threads.shutdown()
            throw error
        }
    }

    /// tcping's listener for `host`: in the node that has the address (its socket made inside that
    /// node's namespace), else nil (the caller makes an ordinary one).
    public func listener(host: String, echo: Bool) throws -> LoopbackListener? {
        guard let ns = namespace(ofAddress: host) else { return nil }
        return try NamespaceThread.run(in: ns) { try LoopbackListener(host: host, echo: echo) }
    }
}

/// One bring-up of a topology during a suite: which scenarios used it, how long up and down took.
struct TopologyVisit {
    var reference: String
    var topology: Topology
    var state: LabState
    var scenarios: [String] = []
    var upSeconds: Double
    var downSeconds: Double?
    var removed: String?
}

/// The topology a suite has up, at most one at a time: brought up when a scenario names it, shared
/// with the following scenarios naming the same one, taken down when a scenario names another one
/// (or none), and always at the end of the suite, after a failure or a stop request too. Each
/// bring-up is recorded by `LabExecutor` in its state file before anything is created, so a killed
/// run leaves nothing `edgemeter cleanup` cannot find.
final class SuiteLab: @unchecked Sendable {
    let binary: String
    let executor: LabExecutor
    let dir: RunDirectory
    let progress: @Sendable (String) -> Void
    private(set) var visits: [TopologyVisit] = []
    private var upIndex: Int?

    init(binary: String, executor: LabExecutor = LabExecutor(), dir: RunDirectory, progress: @escaping @Sendable (String) -> Void) {
        (self.binary, self.executor, self.dir, self.progress) = (binary, executor, dir, progress)
    }

    /// The topology `reference` up for `scenario`: the one already up, or a fresh bring-up (after
    /// taking down another one). Throws `ScenarioNotRun` when it cannot be built.
    /// `provenance`: one sentence for run.json's notes (which topology, which file, which bring-up).
    func ensure(_ reference: String, suiteDirectory: String, scenario: String,
                stop: StopFlag) async throws -> (topology: Topology, state: LabState, provenance: String) {
        if let i = upIndex, visits[i].reference == reference {
            visits[i].scenarios.append(scenario)
            writeSection()
            // Routes added by earlier scenarios are in the namespaces; the state file holds the rest.
            return (visits[i].topology, (try? executor.state(visits[i].state.topology)) ?? visits[i].state,
                    "topology \(visits[i].state.topology) (\(visits[i].topology.path)), bring-up shared with \(visits[i].scenarios.dropLast().joined(separator: ", "))")
        }
        await down()
        let loaded: (topology: Topology, compose: ComposeFile?)
        do { loaded = try TopologyFiles.loadDeployment(reference, relativeTo: suiteDirectory) } catch {
            throw ScenarioNotRun("topology \(reference): \(error)")
        }
        let topology = loaded.topology
        progress("lab: bringing up \(topology.name) (\(topology.path))")
        let start = ContinuousClock.now
        let state: LabState
        do {
            if let compose = loaded.compose {
                // A compose file: its containers and network through dockerd's Engine API, recorded
                // in the same state directory, so `down` (and `edgemeter cleanup`) remove them.
                state = try await ComposeDeployer.fromEnvironment(executor: executor).up(compose, stop: stop) { [progress] in progress("lab: \($0)") }
            } else {
                state = try await executor.up(topology, binary: binary, stop: stop) { [progress] in progress("lab: \($0)") }
            }
        } catch {
            throw ScenarioNotRun("topology \(topology.name) could not be brought up: \(error)")
        }
        let secs = (ContinuousClock.now - start).seconds
        progress("lab: \(topology.name) up in \(String(format: "%.2f", secs)) s")
        visits.append(TopologyVisit(reference: reference, topology: topology, state: state, scenarios: [scenario], upSeconds: secs))
        upIndex = visits.count - 1
        writeSection()
        return (topology, state, "topology \(topology.name) (\(topology.path)), brought up for it in \(String(format: "%.2f", secs)) s")
    }

    /// Takes the topology that is up down (nothing when none is). A failure is noted in run.json
    /// and summary.md with the command that removes the rest.
    func down() async {
        guard let i = upIndex else { return }
        upIndex = nil
        let name = visits[i].state.topology
        let start = ContinuousClock.now
        do {
            let removed = try await executor.down(name)
            visits[i].removed = "\(removed.count) objects and processes"
        } catch {
            visits[i].removed = "LEFT BEHIND: \(error)"
            dir.addNote(ScenarioNote(scenario: visits[i].scenarios.last ?? name, status: "failed",
                                     reason: "lab down \(name): \(error); run `edgemeter lab down \(name)` or `edgemeter cleanup`"))
        }
        visits[i].downSeconds = (ContinuousClock.now - start).seconds
        progress("lab: \(name) down in \(String(format: "%.2f", visits[i].downSeconds ?? 0)) s")
        writeSection()
    }

    /// summary.md's "Lab topologies" section (replaced as the suite goes on; sections.json keeps it).
    func writeSection() {
        var s = "<!-- section: lab-topologies -->\n## Lab topologies\n\n"
        s += "Each row is one bring-up (`lab up`) shared by the scenarios listed; times are wall clock (monotonic) for the whole "
        s += "`lab up` (until every workload port answered) and `lab down`.\n\n"
        s += "| topology | file | scenarios | up (s) | down (s) | removed |\n|---|---|---|---|---|---|\n"
        for v in visits {
            let down = v.downSeconds.map { String(format: "%.2f", $0) } ?? "still up"
            s += "| \(v.state.topology) | \(v.topology.path) | \(v.scenarios.joined(separator: ", ")) | \(String(format: "%.2f", v.upSeconds)) | \(down) | \(v.removed ?? "") |\n"
        }
        dir.addSection(s)
    }
}

/// A scenario rewritten for the topology it runs in: node names in `targets` and `url` replaced by
/// the addresses they stand for from the scenario's source (`NodeAddress.resolve`), and the targets
/// whose route leaves the lab taken out (each recorded as a failed `route` sample, nothing sent).
struct LabScenario {
    var scenario: ValidatedScenario
    var lab: ScenarioLab
    /// What samples are relabelled with: the address text → the name the user wrote, and its labels.
    var names: [(text: String, name: String, labels: [String: String])]
    var commonLabels: [String: String]
    /// Targets not probed because their route leaves the lab (or there is none), with the reason.
    var notProbed: [(name: String, reason: String)]
    /// Targets left to probe.
    var remaining: Int

    static let leavesLab = "not probed: the route leaves the lab"

    init(_ s: ValidatedScenario, topology: Topology, state: LabState) throws {
        let from = s.string("from")
        lab = ScenarioLab(topology: topology, state: state, from: from)
        commonLabels = ["topology": state.topology, "from": from ?? ReachPlan.hostSource]
        var names: [(text: String, name: String, labels: [String: String])] = []
        var notProbed: [(name: String, reason: String)] = []
        var remaining = 0
        var scenario = s

        func resolve(_ host: String, port: Int?) throws -> NodeAddress {
            if NodeReference.isLiteral(host) { return NodeAddress(node: "", address: host, port: port, via: nil, network: nil) }
            do { return try NodeAddress.resolve(host, port: port, from: from, state: state, topology: topology) } catch {
                throw ScenarioNotRun("\(error)")
            }
        }
        /// Whether to probe `a`; otherwise records why not.
        func routeAllows(_ a: NodeAddress, name: String) -> Bool {
            switch LabRoutes.check(state: state, from: from, address: a.address) {
            case .intoLab: return true
            case .leavesLab(let dev):
                notProbed.append((name, "\(LabScenario.leavesLab) (ip route get \(a.address) in \(from ?? "the host") → dev \(dev)); nothing was sent"))
            case .noRoute(let why):
                notProbed.append((name, "not probed: no route from \(from ?? "the host") to \(a.address) (\(why)); nothing was sent"))
            }
            return false
        }
        func labels(_ a: NodeAddress) -> [String: String] {
            var l = ["to_address": a.hostPort]
            if !a.node.isEmpty { l["to"] = a.node }
            if let via = a.via { l["via"] = via }
            return l
        }
        if let targets = s.strings("targets") {
            var kept: [String] = []
            for t in targets {
                guard let host = NodeReference.host(ofTarget: t) else { kept.append(t); continue }
                let port = NodeReference.port(ofTarget: t)
                let a = try resolve(host, port: port)
                let text = port == nil ? a.address : a.hostPort
                guard routeAllows(a, name: t) else { continue }
                kept.append(text)
                names.append((text, t, labels(a)))
                if port == nil || a.port == port { names.append((a.address, host, labels(a))) }
            }
            remaining += kept.count
            if !kept.isEmpty { scenario.parameters["targets"] = .strings(kept) }
        }
        if let url = s.string("url"), let host = NodeReference.host(ofURL: url) {
            let port = NodeReference.port(ofURL: url)
            let a = try resolve(host, port: port)
            if routeAllows(a, name: url) {
                let rewritten = NodeReference.replacingHost(ofURL: url, with: a.address, port: a.port)
                scenario.parameters["url"] = .string(rewritten)
                names.append((rewritten, url, labels(a)))
                names.append((a.hostPort, "\(host):\(port ?? 80)", labels(a)))
                names.append((a.address, host, labels(a)))
                remaining += 1
            }
        }
        // Longest first, so 10.204.0.10 is not taken for 10.204.0.1 followed by a 0.
        names.sort { $0.text.count > $1.text.count }
        (self.names, self.notProbed, self.remaining, self.scenario) = (names, notProbed, remaining, scenario)
    }

    /// The sample as the user named things: the address in `target` back to the node name, with
    /// the topology, the source node, the target node and the address it was reached at as labels.
    func relabel(_ sample: Sample) -> Sample {
        var s = sample
        for (k, v) in commonLabels { s.labels[k] = v }
        for n in names {
            if s.target == n.text {
                s.target = n.name
            } else if let r = LabScenario.token(n.text, in: s.target) {
                s.target.replaceSubrange(r, with: n.name)
            } else {
                continue
            }
            for (k, v) in n.labels { s.labels[k] = v }
            break
        }
        return s
    }

    /// `text` in `s` not glued to more digits or dots of an address on either side.
    static func token(_ text: String, in s: String) -> Range<String.Index>? {
        var from = s.startIndex
        while let r = s.range(of: text, range: from..<s.endIndex) {
            let before = r.lowerBound == s.startIndex ? nil : s[s.index(before: r.lowerBound)]
            let after = r.upperBound == s.endIndex ? nil : s[r.upperBound]
            let glued: (Character?) -> Bool = { c in c.map { $0.isNumber || $0 == "." } ?? false }
            if !glued(before) && !glued(after) { return r }
            from = s.index(after: r.lowerBound)
        }
        return nil
    }
}

/// Passes samples on with `LabScenario.relabel` applied.
final class LabSink: SampleSink, @unchecked Sendable {
    let inner: SampleSink
    let scenario: LabScenario
    init(_ inner: SampleSink, _ scenario: LabScenario) { (self.inner, self.scenario) = (inner, scenario) }
    func record(_ sample: Sample) { inner.record(scenario.relabel(sample)) }
}
