import Foundation

/// What a topology that is up consists of, as written to `/run/edgemeter/lab/<topo>.json`. Every
/// object is recorded BEFORE the step that creates it runs, so the file covers everything that may
/// exist even when `lab up` is killed halfway; `lab down` and `edgemeter cleanup` delete from it
/// (only names with edgemeter's prefixes).
public struct LabState: Codable, Sendable, Equatable {
    public struct NetworkState: Codable, Sendable, Equatable {
        public var name: String
        public var subnet: String
        public var bridge: String
        /// The host's link into this network and its address, when the network declares `host:`.
        public var hostLink: String?
        public var hostAddress: String?
        /// `bridge` for dockerd's default network: `bridge`, `hostLink` are docker0 (not the lab's,
        /// never deleted), `subnet` and `hostAddress` as dockerd reported them at `lab up`.
        public var docker: String? = nil
    }

    public struct NodeState: Codable, Sendable, Equatable {
        public var name: String
        public var kind: String
        public var namespace: String
        public var interfaces: [TopologyPlan.Port]
        public var workload: [String]
        public var ports: [Int]
        /// The workload's process (it runs as `ip netns exec`, which execs the program in place;
        /// for a container or lxc node, the container's init, which execs the workload).
        public var pid: Int32?
        /// The node's container (container and lxc nodes): `docker` or `lxc`, and its name.
        public var engine: String? = nil
        public var container: String? = nil
    }

    public var topology: String
    /// The topology file it was built from.
    public var file: String
    public var tag: String
    public var fabric: String
    /// `building` until every step ran and every port answered, then `up`.
    public var status: String
    /// When `lab up` started (ISO 8601, UTC).
    public var started: String
    public var objects: [TopologyPlan.Object]
    public var networks: [NetworkState]
    public var nodes: [NodeState]
    /// For a compose deployment (`lab up FILE.yml`): its Engine API objects. nil for a topology of
    /// namespaces (whose objects are in `objects`).
    public var compose: ComposeState?
    /// Impaired links and the forwarder that impairs them; nil when no link declares `impair`.
    public var impairment: ImpairmentState?

    public init(plan: TopologyPlan, started: Date = Date()) {
        let t = plan.topology
        topology = t.name
        file = t.path
        tag = plan.tag
        fabric = plan.fabric
        status = "building"
        let f = ISO8601DateFormatter()
        self.started = f.string(from: started)
        objects = []
        networks = t.networks.enumerated().map { i, n in
            if let d = n.docker {
                return NetworkState(name: n.name, subnet: "", bridge: "docker0", hostLink: "docker0", hostAddress: nil, docker: d.rawValue)
            }
            return NetworkState(name: n.name, subnet: n.subnet.description, bridge: plan.bridge(network: i),
                                hostLink: n.hostAddress == nil ? nil : plan.hostLink(network: i), hostAddress: n.hostAddress?.description)
        }
        nodes = t.nodes.map { n in
            let engine: String? = n.kind == .container ? "docker" : n.kind == .lxc ? "lxc" : nil
            return NodeState(name: n.name, kind: n.kind.rawValue, namespace: plan.namespace(of: n.name), interfaces: plan.ports(of: n),
                             workload: n.workload, ports: n.ports, pid: nil, engine: engine, container: engine == nil ? nil : plan.namespace(of: n.name))
        }
    }

    public func node(_ name: String) -> NodeState? { nodes.first { $0.name == name } }

    /// The host-side links of the lab (where a route from the host into the lab must lead).
    public var hostLinks: [String] { networks.compactMap(\.hostLink) }
}

extension TopologyPlan.Object: Codable {
    private enum Keys: String, CodingKey { case kind, name }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let name = try c.decode(String.self, forKey: .name)
        switch try c.decode(String.self, forKey: .kind) {
        case "namespace": self = .namespace(name)
        case "link": self = .hostLink(name)
        case "container": self = .container(name)
        case "lxc": self = .lxc(name)
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown object kind \(other)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .namespace(let n): try c.encode("namespace", forKey: .kind); try c.encode(n, forKey: .name)
        case .hostLink(let n): try c.encode("link", forKey: .kind); try c.encode(n, forKey: .name)
        case .container(let n): try c.encode("container", forKey: .kind); try c.encode(n, forKey: .name)
        case .lxc(let n): try c.encode("lxc", forKey: .kind); try c.encode(n, forKey: .name)
        }
    }
}
