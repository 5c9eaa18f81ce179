/// What building a topology on the host takes: ordered steps (each one `ip` command, or a program
/// run inside a namespace), the objects they create, and the reverse steps that delete them. Pure:
/// no process runs here, so the plan is tested as a function of the topology.
///
/// Layout on the host:
/// - one namespace per node, `edgemeter-<topo>-<node>`; inside it the node's interfaces are `eth<k>`;
/// - one "fabric" namespace per topology, `edgemeter-<topo>.fabric`, holding one Linux bridge per
///   network (`em-<hash>-n<i>`) and the bridge side of every node interface (`em-<hash>-<node>-<k>`).
///   The bridges sit in a namespace of their own, not the host's, because once dockerd loaded
///   br_netfilter the host's `net.bridge.bridge-nf-call-iptables` is 1 and its FORWARD policy is
///   DROP: bridged frames between two lab nodes would then be dropped by the host's firewall, and a
///   bridge's own `nf_call_iptables 0` does not override the host-wide switch (measured on this
///   kernel). The fabric's firewall is empty, and the host's iptables is never touched;
/// - a network with `host:` gets a veth pair `em-<hash>-h<i>` (in the host, carrying the host's
///   address) ↔ `em-<hash>-x<i>` (a port of that network's bridge), so the host reaches the nodes
///   through a link the lab made.
///
/// Interface names: `em-` + 4 hex digits (FNV-1a of the topology name) + indexes, at most 15 bytes.
public struct TopologyPlan: Sendable, Equatable {
    /// Something a step creates, deleted by the reverse plan (and by `lab down`/`cleanup` through the state file).
    public enum Object: Sendable, Hashable, CustomStringConvertible {
        /// A network namespace (its links, bridges and processes' network go with it).
        case namespace(String)
        /// A link in the host's namespace.
        case hostLink(String)

        public var name: String {
            switch self {
            case .namespace(let n), .hostLink(let n): return n
            }
        }

        public var description: String {
            switch self {
            case .namespace(let n): return "namespace \(n)"
            case .hostLink(let n): return "link \(n)"
            }
        }
    }

    public struct Step: Sendable, Equatable, CustomStringConvertible {
        public enum Action: Sendable, Equatable {
            /// `ip [-n NETNS] ARGS`.
            case ip([String], netns: String?)
            /// `ip netns exec NETNS ARGV` (sysctl, iptables inside a router's namespace).
            case exec(netns: String, [String])
        }
        /// What the step is for, in words ("bridge em-1a2b-n0 for network net1").
        public var summary: String
        public var action: Action
        /// The object this step creates (recorded before the step runs).
        public var creates: Object?

        /// The command line, as it would be typed.
        public var commandLine: [String] {
            switch action {
            case .ip(let args, let ns): return ["ip"] + (ns.map { ["-n", $0] } ?? []) + args
            case .exec(let ns, let argv): return ["ip", "netns", "exec", ns] + argv
            }
        }

        public var description: String { "\(summary): \(commandLine.joined(separator: " "))" }
    }

    /// One node interface as built: where it is and what it is called.
    public struct Port: Sendable, Equatable, Codable {
        public var network: String
        /// The name inside the node's namespace (`eth<k>`).
        public var device: String
        /// The bridge side, in the fabric namespace.
        public var bridgePort: String
        public var address: String
        public var prefixLength: Int
    }

    public let topology: Topology
    /// 4 hex digits from the topology name (FNV-1a, 32 bits folded to 16): stable across runs.
    public let tag: String
    public let fabric: String
    public private(set) var steps: [Step] = []

    public init(_ topology: Topology) {
        self.topology = topology
        tag = Self.tag(for: topology.name)
        fabric = Self.fabricNamespace(topology: topology.name)
        build()
    }

    // MARK: names

    public static func tag(for name: String) -> String {
        var h: UInt32 = 0x811c_9dc5
        for b in name.utf8 {
            h ^= UInt32(b)
            h = h &* 0x0100_0193
        }
        let folded = (h >> 16) ^ (h & 0xffff)
        let hex = String(folded, radix: 16)
        return String(repeating: "0", count: 4 - hex.count) + hex
    }

    public static func nodeNamespace(topology: String, node: String) -> String { "edgemeter-\(topology)-\(node)" }
    /// `.` cannot appear in a node name, so the fabric's name never equals a node's namespace.
    public static func fabricNamespace(topology: String) -> String { "edgemeter-\(topology).fabric" }

    public func namespace(of node: String) -> String { Self.nodeNamespace(topology: topology.name, node: node) }
    public func bridge(network index: Int) -> String { "em-\(tag)-n\(index)" }
    public func bridgePort(node index: Int, interface k: Int) -> String { "em-\(tag)-\(index)-\(k)" }
    public func hostLink(network index: Int) -> String { "em-\(tag)-h\(index)" }
    public func hostLinkPeer(network index: Int) -> String { "em-\(tag)-x\(index)" }

    /// Every interface name the plan uses, with where it lives (for the ≤ 15 bytes and uniqueness checks).
    public var interfaceNames: [String] {
        var out: [String] = []
        for (i, net) in topology.networks.enumerated() {
            out.append(bridge(network: i))
            if net.hostAddress != nil { out += [hostLink(network: i), hostLinkPeer(network: i)] }
        }
        for (n, node) in topology.nodes.enumerated() {
            for k in node.interfaces.indices { out.append(bridgePort(node: n, interface: k)) }
        }
        for link in impairedLinks { out += [link.forwarderB, link.bridgeSide] }
        return out
    }

    /// The node's interfaces as built.
    public func ports(of node: Node) -> [Port] {
        guard let n = topology.nodes.firstIndex(where: { $0.name == node.name }) else { return [] }
        return node.interfaces.enumerated().map { k, iface in
            let len = topology.network(iface.network)?.subnet.length ?? 24
            return Port(network: iface.network, device: "eth\(k)", bridgePort: bridgePort(node: n, interface: k),
                        address: iface.address.description, prefixLength: len)
        }
    }

    /// The objects the plan creates, in creation order.
    public var createdObjects: [Object] { steps.compactMap(\.creates) }

    /// The reverse plan: deletes every created object, last created first. Deleting a namespace
    /// takes its links with it (a veth pair goes as soon as one end does).
    public static func teardown(_ objects: [Object]) -> [Step] {
        objects.reversed().map { o in
            switch o {
            case .namespace(let n): return Step(summary: "delete namespace \(n)", action: .ip(["netns", "del", n], netns: nil))
            case .hostLink(let l): return Step(summary: "delete link \(l)", action: .ip(["link", "del", l], netns: nil))
            }
        }
    }

    public var teardown: [Step] { Self.teardown(createdObjects) }

    // MARK: building the steps

    mutating func add(_ summary: String, _ args: [String], in netns: String? = nil, creates: Object? = nil) {
        steps.append(Step(summary: summary, action: .ip(args, netns: netns), creates: creates))
    }

    mutating func exec(_ summary: String, _ argv: [String], in netns: String) {
        steps.append(Step(summary: summary, action: .exec(netns: netns, argv)))
    }

    private mutating func build() {
        let f = fabric
        add("fabric namespace for the bridges", ["netns", "add", f], creates: .namespace(f))
        add("loopback up in the fabric", ["link", "set", "lo", "up"], in: f)
        for (i, net) in topology.networks.enumerated() {
            let br = bridge(network: i)
            add("bridge \(br) for network \(net.name)", ["link", "add", br, "type", "bridge"], in: f)
            add("bridge \(br): no iptables on bridged frames", ["link", "set", br, "type", "bridge", "nf_call_iptables", "0"], in: f)
            add("bridge \(br) up", ["link", "set", br, "up"], in: f)
            if let h = net.hostAddress {
                let hl = hostLink(network: i), peer = hostLinkPeer(network: i)
                add("host link \(hl) into network \(net.name)", ["link", "add", hl, "type", "veth", "peer", "name", peer, "netns", f],
                    creates: .hostLink(hl))
                add("\(peer) joins bridge \(br)", ["link", "set", peer, "master", br, "up"], in: f)
                add("host address \(h) on \(hl)", ["addr", "add", "\(h)/\(net.subnet.length)", "dev", hl])
                add("host link \(hl) up", ["link", "set", hl, "up"])
            }
        }
        for node in topology.nodes {
            let ns = namespace(of: node.name)
            add("namespace of node \(node.name)", ["netns", "add", ns], creates: .namespace(ns))
            add("loopback up in \(node.name)", ["link", "set", "lo", "up"], in: ns)
            for port in ports(of: node) {
                let br = bridge(network: topology.networks.firstIndex { $0.name == port.network } ?? 0)
                add("veth \(port.bridgePort) <-> \(node.name):\(port.device) on \(port.network)",
                    ["link", "add", port.bridgePort, "type", "veth", "peer", "name", port.device, "netns", ns], in: f)
                if let link = impairedLink(node: node.name, network: port.network) {
                    addForwarderPorts(link, bridge: br)
                } else {
                    add("\(port.bridgePort) joins bridge \(br)", ["link", "set", port.bridgePort, "master", br, "up"], in: f)
                }
                add("\(node.name): address \(port.address) on \(port.device)", ["addr", "add", "\(port.address)/\(port.prefixLength)", "dev", port.device], in: ns)
                add("\(node.name): \(port.device) up", ["link", "set", port.device, "up"], in: ns)
            }
            if node.kind == .router {
                exec("\(node.name): forward IPv4", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], in: ns)
                // "Unreachable" answers pass two per-source limiters that share one token bucket
                // (burst 5, 1 per second): the route-error one (host-wide, left alone) and the ICMP
                // one (per namespace). Without the second, each answer costs one token, not two, so a
                // client trying a missing route a few times in a row still hears "unreachable".
                exec("\(node.name): ICMP errors limited by the route-error limiter only", ["sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0"], in: ns)
                let ports = self.ports(of: node)
                func device(on network: String) -> String? { ports.first { $0.network == network }?.device }
                func device(for address: IPv4Address) -> (String, Int)? {
                    for p in ports {
                        if let net = topology.network(p.network), net.subnet.contains(address) { return (p.device, net.subnet.length) }
                    }
                    return nil
                }
                for rule in node.nat {
                    switch rule {
                    case .masquerade(let out):
                        guard let dev = device(on: out) else { continue }
                        exec("\(node.name): masquerade out of \(out)", ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", dev, "-j", "MASQUERADE"], in: ns)
                    case .forward(let proto, let listen, let port, let to, let toPort):
                        let own = node.interfaces.contains { $0.address == listen }
                        if !own, let (dev, _) = device(for: listen) {
                            add("\(node.name): answers for \(listen) (floating address)", ["addr", "add", "\(listen)/32", "dev", dev], in: ns)
                        }
                        var args = ["iptables", "-t", "nat", "-A", "PREROUTING", "-d", "\(listen)/32"]
                        if proto != .all { args += ["-p", proto.rawValue] }
                        if let port { args += ["--dport", String(port)] }
                        let target = toPort.map { "\(to):\($0)" } ?? to.description
                        args += ["-j", "DNAT", "--to-destination", target]
                        exec("\(node.name): forward \(listen)\(port.map { ":\($0)" } ?? "") to \(target)", args, in: ns)
                    }
                }
                for rule in node.filter {
                    var args = ["iptables", "-A", "FORWARD"]
                    if rule.proto != .all { args += ["-p", rule.proto.rawValue] }
                    if let to = rule.to { args += ["-d", to.description] }
                    if let port = rule.port { args += ["--dport", String(port)] }
                    args += ["-j", rule.action == .allow ? "ACCEPT" : "DROP"]
                    exec("\(node.name): filter rule (line \(rule.line))", args, in: ns)
                }
            }
            for route in node.routes {
                let dest = route.to?.description ?? "default"
                add("\(node.name): route \(dest) via \(route.via)", ["route", "add", dest, "via", route.via.description], in: ns)
            }
        }
        addOffloadSteps()
    }
}
