import EdgeMeterCore

/// One impaired node interface as built: the node's `eth<k>` is the peer of `forwarderA` (in the
/// fabric, not on any bridge); the forwarder moves frames between `forwarderA` and `forwarderB`,
/// whose veth peer `bridgeSide` is the port on the network's bridge:
///
///     node eth<k> ⇄ A (em-<tag>-<n>-<k>) | forwarder | B (…f) ⇄ bridge side (…b) ∈ bridge
///
/// `spec` applies to the node → network direction and, unless `specToNode` is set (a topology's
/// per-direction `impair: {egress: …, ingress: …}`), to network → node as well: a round trip then
/// pays the delay twice.
public struct ImpairedLink: Sendable, Equatable, Codable {
    public var node: String
    public var network: String
    public var nodeNamespace: String
    /// The node's interface (`eth<k>`).
    public var nodeDevice: String
    /// The fabric end of the node's veth, read and written by the forwarder.
    public var forwarderA: String
    /// The forwarder's end towards the bridge.
    public var forwarderB: String
    /// B's peer, enslaved to the network's bridge.
    public var bridgeSide: String
    public var spec: ImpairmentSpec
    /// The network → node direction's model when it differs from `spec` (nil: the same).
    public var specToNode: ImpairmentSpec?

    /// The network → node direction's model.
    public var toNodeSpec: ImpairmentSpec { specToNode ?? spec }

    /// `node:network`, how the CLI and the HTTP API name a link.
    public var id: String { "\(node):\(network)" }
}

/// How `lab up` applies the declared impairments.
public enum ImpairMode: String, Sendable, CaseIterable, Codable {
    /// The userspace forwarder (AF_PACKET), one process per topology in its fabric namespace.
    case forwarder
    /// `tc qdisc … netem` on both ends of each impaired veth, where the kernel has netem.
    case netem
}

extension Topology {
    /// The same topology with every `impair` removed (the plan `--impair netem` builds; netem is
    /// then added by `TopologyPlan.netemCommands`).
    public var withoutImpairments: Topology {
        var t = self
        for n in t.nodes.indices { for k in t.nodes[n].interfaces.indices { t.nodes[n].interfaces[k].impair = nil } }
        return t
    }
}

extension TopologyPlan {
    /// Every interface that declares `impair` (even all zero: it is forwarded, and can be changed at
    /// runtime), in node order.
    public var impairedLinks: [ImpairedLink] {
        var out: [ImpairedLink] = []
        for (n, node) in topology.nodes.enumerated() {
            for (k, iface) in node.interfaces.enumerated() {
                guard let imp = iface.impair else { continue }
                let a = bridgePort(node: n, interface: k)
                out.append(ImpairedLink(node: node.name, network: iface.network, nodeNamespace: namespace(of: node.name),
                                        nodeDevice: "eth\(k)", forwarderA: a, forwarderB: a + "f", bridgeSide: a + "b", spec: imp.spec, specToNode: imp.toNodeSpec))
            }
        }
        return out
    }

    public func impairedLink(node: String, network: String) -> ImpairedLink? {
        impairedLinks.first { $0.node == node && $0.network == network }
    }

    /// Offloads to switch off so that every frame the forwarder reads is one wire-sized frame with
    /// its checksums filled in: no TSO/GSO super-frames (up to 64 KiB, which AF_PACKET would hand
    /// over whole and the other side would refuse as larger than the MTU), no GRO merging, and no
    /// checksum left to the "hardware" (a veth frame read from a packet socket and sent again would
    /// carry a partial checksum the receiver drops).
    public static let offloadOff = ["tx", "off", "tso", "off", "gso", "off", "gro", "off"]

    /// The forwarder's two ports for one impaired interface: A stays out of the bridge, B/bridge
    /// side is a new veth pair whose bridge side joins the bridge.
    mutating func addForwarderPorts(_ link: ImpairedLink, bridge br: String) {
        let f = fabric
        add("\(link.forwarderA) up, outside the bridge: the forwarder's node side for \(link.id)", ["link", "set", link.forwarderA, "up"], in: f)
        add("veth \(link.forwarderB) <-> \(link.bridgeSide): the forwarder's network side for \(link.id)",
            ["link", "add", link.forwarderB, "type", "veth", "peer", "name", link.bridgeSide], in: f)
        add("\(link.bridgeSide) joins bridge \(br)", ["link", "set", link.bridgeSide, "master", br, "up"], in: f)
        add("\(link.forwarderB) up", ["link", "set", link.forwarderB, "up"], in: f)
    }

    /// With any impaired link on a network: offloads off on every node interface of that network
    /// (frames from unimpaired nodes cross the forwarder too) and on the forwarder's veths.
    mutating func addOffloadSteps() {
        let links = impairedLinks
        guard !links.isEmpty else { return }
        let networks = Set(links.map(\.network))
        for node in topology.nodes {
            for port in ports(of: node) where networks.contains(port.network) {
                exec("\(node.name): offloads off on \(port.device) (frames cross an impairment forwarder)",
                     ["ethtool", "-K", port.device] + Self.offloadOff, in: namespace(of: node.name))
            }
        }
        for link in links {
            for dev in [link.forwarderA, link.forwarderB, link.bridgeSide] {
                exec("offloads off on \(dev) (forwarder of \(link.id))", ["ethtool", "-K", dev] + Self.offloadOff, in: fabric)
            }
        }
    }

    /// The `tc` command lines `--impair netem` runs for one link (pure; run where netem exists):
    /// the node → network direction on the node's `eth<k>` egress, the network → node direction on
    /// the fabric end's egress. Each as `ip netns exec NS tc qdisc replace dev DEV root netem …`.
    /// netem draws jitter per packet and may reorder (it has no no-reorder rule unless a rate is set).
    public static func netemCommands(for link: ImpairedLink, fabric: String) -> [[String]] {
        [
            ["ip", "netns", "exec", link.nodeNamespace, "tc", "qdisc", "replace", "dev", link.nodeDevice, "root", "netem"] + netemArguments(link.spec),
            ["ip", "netns", "exec", fabric, "tc", "qdisc", "replace", "dev", link.forwarderA, "root", "netem"] + netemArguments(link.toNodeSpec),
        ]
    }

    /// netem's words for a spec: `delay D [J distribution normal]`, `loss P%` or
    /// `loss gemodel p r 1-h 1-k`, `rate R bit`, `limit` in packets (the queue limit / 1514 bytes).
    public static func netemArguments(_ s: ImpairmentSpec) -> [String] {
        func time(_ ns: Int64) -> String { ns % 1_000_000 == 0 ? "\(ns / 1_000_000)ms" : "\(ns / 1_000)us" }
        func pct(_ v: Double) -> String { v == v.rounded() ? "\(Int(v))%" : "\(v)%" }
        var a = ["delay", time(s.delayNanoseconds)]
        if s.jitterNanoseconds > 0 {
            a.append(time(s.jitterNanoseconds))
            if s.distribution == .normal { a += ["distribution", "normal"] }
        }
        switch s.loss {
        case .none: break
        case .bernoulli(let p): a += ["loss", pct(p)]
        case .gilbertElliott(let p, let r, let bad, let good): a += ["loss", "gemodel", pct(p), pct(r), pct(bad), pct(good)]
        }
        if let r = s.rateBitsPerSecond { a += ["rate", "\(r)bit"] }
        a += ["limit", String(max(1, s.queueLimitBytes / 1514))]
        return a
    }
}
