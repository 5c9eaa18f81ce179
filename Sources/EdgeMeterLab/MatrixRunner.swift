import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// `edgemeter matrix TOPOLOGY`: one `edgemeter agent` per node of a topology that is up, each
/// started inside its node's network namespace (`ip netns exec`), so each sees the lab only as a
/// separate host on that node would; each pings every other node at the address it reaches it by
/// (`NodeAddress.resolve` from that node) and posts its delay summaries to the `MatrixCollector`
/// listening in its own namespace, as it would post to a controller. The posted rows are the
/// node-to-node `DelayMatrix` (rows: origin, columns: destination).
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

    /// How each node's agent runs.
    public struct Options: Sendable {
        /// The edgemeter binary started in each namespace.
        public var binary: String
        /// Echo rounds (each round: one echo to every destination) and the gap between rounds.
        public var count: Int
        public var intervalMilliseconds: Int
        /// Where each node's agent configuration and log go (`DIR/<node>/`).
        public var directory: String
        public init(binary: String, count: Int, intervalMilliseconds: Int, directory: String) {
            self.binary = binary
            self.count = count
            self.intervalMilliseconds = intervalMilliseconds
            self.directory = directory
        }
    }

    /// Quotes a YAML scalar (node names and addresses) as a double-quoted string.
    static func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }

    /// The agent configuration of one node: listen on its namespace's loopback (port chosen by the
    /// kernel), origin = the node, its destinations by node name (`nodes:` maps them to the
    /// addresses this node reaches them at), one ping probe at the interval, pushes to `collector`.
    public static func agentConfig(_ p: NodePlan, options o: Options, collector: String) -> String {
        var y = "# Written by `edgemeter matrix`: the agent on node \(p.node) (netns \(p.namespace)), run with --rounds \(o.count).\n"
        y += "listen: 127.0.0.1:0\n"
        y += "node: \(quoted(p.node))\n"
        y += "interval: \(o.intervalMilliseconds)ms\n"
        y += "nodes:\n" + p.targets.map { "  \(quoted($0.node)): \(quoted($0.address))\n" }.joined()
        y += "controller:\n  url: \(collector)\n"
        y += "probes:\n  - name: matrix\n    kind: ping\n    targets: [" + p.targets.map { quoted($0.node) }.joined(separator: ", ") + "]\n"
        return y
    }

    /// The command one node runs: `ip netns exec NS edgemeter agent --config DIR/<node>/agent.yaml --rounds N`.
    public static func command(_ p: NodePlan, options o: Options) -> [String] {
        ["ip", "netns", "exec", p.namespace, o.binary, "agent", "--config", configPath(p, options: o), "--rounds", String(o.count)]
    }

    static func configPath(_ p: NodePlan, options o: Options) -> String { "\(o.directory)/\(FileName.safe(p.node))/agent.yaml" }

    /// Starts the collector, then every node's agent at the same time, waits for them to run their
    /// rounds and post, and returns the posted rows: `from` = the node whose namespace the post
    /// arrived in, `to` = the destination node. An agent that failed (exit not 0), or exited without
    /// posting, is an error naming its node, its command and its output (also in `DIR/<node>/agent.log`).
    public static func run(_ plans: [NodePlan], options o: Options) async throws -> [DelayRow] {
        var tokenBytes = [UInt8](repeating: 0, count: 24)
        for i in tokenBytes.indices { tokenBytes[i] = UInt8.random(in: 0...255) }
        let token = tokenBytes.map { String(format: "%02x", $0) }.joined()
        let collector = try MatrixCollector(origins: plans.map { ($0.node, $0.namespace, $0.targets.map(\.node)) }, token: token)
        defer { collector.stop() }
        for (p, e) in zip(plans, collector.endpoints) {
            let dir = "\(o.directory)/\(FileName.safe(p.node))"
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try agentConfig(p, options: o, collector: e.url).write(toFile: configPath(p, options: o), atomically: true, encoding: .utf8)
            } catch {
                throw LabError(.refused, "cannot write \(configPath(p, options: o)): \(error.localizedDescription); choose another --out")
            }
        }
        var env = ProcessInfo.processInfo.environment
        env["EDGEMETER_CONTROLLER_TOKEN"] = token
        let environment = env
        let worst = Duration.milliseconds(o.count * o.intervalMilliseconds) + .seconds(60)
        let results = try await withThrowingTaskGroup(of: (NodePlan, [String], CommandResult).self) { g in
            for p in plans {
                let argv = command(p, options: o)
                g.addTask { (p, argv, try await Command.run(argv, timeout: worst, environment: environment)) }
            }
            var all: [(NodePlan, [String], CommandResult)] = []
            for try await r in g { all.append(r) }
            return all
        }
        for (p, _, r) in results {
            try? r.combined.write(toFile: "\(o.directory)/\(FileName.safe(p.node))/agent.log", atomically: true, encoding: .utf8)
        }
        for p in plans {
            guard let (_, argv, r) = results.first(where: { $0.0.node == p.node }) else { continue }
            guard !r.timedOut, r.status == 0 else {
                throw LabError(.stepFailed, "the agent on node \(p.node) failed (exit \(r.status)\(r.timedOut ? ", timed out" : ""))"
                               + (collector.refused.isEmpty ? "" : "; the collector refused: " + collector.refused.joined(separator: "; ")),
                               command: argv, output: r.combined)
            }
            guard collector.arrival(of: p.node) != nil else {
                throw LabError(.stepFailed, "the agent on node \(p.node) exited without posting its delays to the collector", command: argv, output: r.combined)
            }
        }
        return collector.rows
    }
}
