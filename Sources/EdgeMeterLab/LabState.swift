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
    }

    public struct NodeState: Codable, Sendable, Equatable {
        public var name: String
        public var kind: String
        public var namespace: String
        public var interfaces: [TopologyPlan.Port]
        public var workload: [String]
        public var ports: [Int]
        /// The workload's process (it runs as `ip netns exec`, which execs the program in place).
        public var pid: Int32?
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
            NetworkState(name: n.name, subnet: n.subnet.description, bridge: plan.bridge(network: i),
                         hostLink: n.hostAddress == nil ? nil : plan.hostLink(network: i), hostAddress: n.hostAddress?.description)
        }
        nodes = t.nodes.map { n in
            NodeState(name: n.name, kind: n.kind.rawValue, namespace: plan.namespace(of: n.name), interfaces: plan.ports(of: n),
                      workload: n.workload, ports: n.ports, pid: nil)
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
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown object kind \(other)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .namespace(let n): try c.encode("namespace", forKey: .kind); try c.encode(n, forKey: .name)
        case .hostLink(let n): try c.encode("link", forKey: .kind); try c.encode(n, forKey: .name)
        }
    }
}
