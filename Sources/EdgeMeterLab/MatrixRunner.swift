import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// `edgemeter matrix TOPOLOGY`: one probing process per node of a topology that is up, each
/// started inside its node's network namespace (`ip netns exec`), so each sees the lab only as a
/// separate host on that node would; each probes every other node at the address it reaches it by
/// (`NodeAddress.resolve` from that node). Their samples are assembled into the node-to-node
/// `DelayMatrix` (rows: origin, columns: destination).
public enum MatrixRunner {
    /// What the agent on one node probes.
    public struct NodePlan: Sendable, Equatable {
        public var node: String
        public var namespace: String
        /// Destination node → the address this node reaches it at.
        public var targets: [(node: String, address: String)]
        public static func == (a: NodePlan, b: NodePlan) -> Bool {
            a.node == b.node && a.namespace == b.namespace && a.targets.map(\.node) == b.targets.map(\.node)
                && a.targets.map(\.address) == b.targets.map(\.address)
        }
    }

    /// The plan for the nodes named (all namespace-backed nodes when `nodes` is empty).
    public static func plan(state: LabState, topology: Topology, nodes: [String] = []) throws -> [NodePlan] {
        let chosen: [LabState.NodeState]
        if nodes.isEmpty {
            chosen = state.nodes
        } else {
            chosen = try nodes.map { n in
                guard let s = state.node(n) else {
                    throw LabError(.refused, "topology \(state.topology) has no node \(n); its nodes: \(state.nodes.map(\.name).joined(separator: ", "))")
                }
                return s
            }
        }
        guard chosen.count >= 2 else {
            throw LabError(.refused, "a delay matrix needs at least two nodes; \(state.topology) gives \(chosen.count)")
        }
        return try chosen.map { a in
            let targets = try chosen.filter { $0.name != a.name }.map { b in
                (node: b.name, address: try NodeAddress.resolve(b.name, port: nil, from: a.name, state: state, topology: topology).address)
            }
            return NodePlan(node: a.name, namespace: a.namespace, targets: targets)
        }
    }

    /// The round trip the topology's impairments add between two nodes that share a network: each
    /// impaired interface delays each direction by its `delay`, so a round trip from a to b pays
    /// 2 × (delay of a's interface + delay of b's interface) (jitter averages to 0). Pairs that share
    /// no network (their path crosses routers) get no expectation. Declared values: a link changed
    /// by `lab link set` afterwards is not followed.
    public static func expectedRoundTripMilliseconds(topology: Topology, nodes: [String]) -> [DelayMatrix.Pair: Double] {
        var out: [DelayMatrix.Pair: Double] = [:]
        let byName = Dictionary(topology.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for a in nodes {
            for b in nodes where a != b {
                guard let na = byName[a], let nb = byName[b] else { continue }
                for ia in na.interfaces {
                    guard let ib = nb.interfaces.first(where: { $0.network == ia.network }) else { continue }
                    let d = Double((ia.impair?.delayNanoseconds ?? 0) + (ib.impair?.delayNanoseconds ?? 0)) / 1e6
                    out[DelayMatrix.Pair(from: a, to: b)] = 2 * d
                    break
                }
            }
        }
        return out
    }

    /// How each node's prober runs.
    public struct Options: Sendable {
        /// The edgemeter binary started in each namespace.
        public var binary: String
        /// Echoes per destination and the gap between them.
        public var count: Int
        public var intervalMilliseconds: Int
        /// Where each node's run directory goes (`DIR/<node>/`).
        public var directory: String
        public init(binary: String, count: Int, intervalMilliseconds: Int, directory: String) {
            self.binary = binary
            self.count = count
            self.intervalMilliseconds = intervalMilliseconds
            self.directory = directory
        }
    }

    /// The command one node runs: `ip netns exec NS edgemeter ping -q -c N -i MS --out DIR/<node> ADDR...`.
    public static func command(_ p: NodePlan, options o: Options) -> [String] {
        ["ip", "netns", "exec", p.namespace, o.binary, "ping", "-q", "-c", String(o.count), "-i", "\(o.intervalMilliseconds)ms",
         "--out", "\(o.directory)/\(FileName.safe(p.node))"] + p.targets.map(\.address)
    }

    /// Runs every node's prober at the same time and returns the delays.csv rows: `from` = the
    /// node the prober ran in, `to` = the node the address belongs to. A prober that could not run
    /// (not exit 0 or 1: 1 only means some destination never answered) is an error naming its
    /// node, its command and its output.
    public static func run(_ plans: [NodePlan], options o: Options) async throws -> [DelayRow] {
        let worst = Duration.milliseconds(o.count * o.intervalMilliseconds) + .seconds(60)
        let results = try await withThrowingTaskGroup(of: (NodePlan, [String], CommandResult).self) { g in
            for p in plans {
                let argv = command(p, options: o)
                g.addTask { (p, argv, try await Command.run(argv, timeout: worst)) }
            }
            var all: [(NodePlan, [String], CommandResult)] = []
            for try await r in g { all.append(r) }
            return all
        }
        var rows: [DelayRow] = []
        for p in plans {
            guard let (_, argv, r) = results.first(where: { $0.0.node == p.node }) else { continue }
            guard !r.timedOut, r.status == 0 || r.status == 1 else {
                throw LabError(.stepFailed, "the prober on node \(p.node) failed (exit \(r.status)\(r.timedOut ? ", timed out" : ""))",
                               command: argv, output: r.combined)
            }
            let file = "\(o.directory)/\(FileName.safe(p.node))/samples.csv"
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw LabError(.stepFailed, "the prober on node \(p.node) wrote no \(file)", command: argv, output: r.combined)
            }
            let byAddress = Dictionary(p.targets.map { ($0.address, $0.node) }, uniquingKeysWith: { a, _ in a })
            let samples = try SampleCSV.parse(text, file: file).map { s -> Sample in
                var s = s
                s.labels["from"] = p.node
                if let to = byAddress[s.target] { s.labels["to"] = to }
                return s
            }
            rows += DelayTable.rows(from: samples)
        }
        return rows
    }
}
