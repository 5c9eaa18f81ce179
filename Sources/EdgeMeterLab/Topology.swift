import Foundation
import EdgeMeterCore

/// A lab topology: L2 networks (bridges the lab creates), nodes attached to them, and what runs on
/// the nodes. Pure model, validated by `TopologyLoader`; building it on the host is the executor's job.
///
/// Shape of the file (every key documented in benchmarks/topologies/README.md):
/// ```yaml
/// name: two-subnet
/// networks:
///   - {name: net1, subnet: 192.168.1.0/24}
/// nodes:
///   - name: front
///     kind: netns                     # netns | router | container | lxc | vm
///     interfaces:
///       - {network: net1, address: 192.168.1.6, impair: {delay: 30ms}}
///     routes: [{to: default, via: 192.168.1.254}]
///     workload: [edgemeter, serve, calculator, --role, front]
///     ports: [50000]
/// ```
public struct Topology: Sendable, Equatable {
    public var name: String
    public var description: String
    public var networks: [Network]
    public var nodes: [Node]
    /// The file it came from (for messages).
    public var path: String

    public func network(_ name: String) -> Network? { networks.first { $0.name == name } }
    public func node(_ name: String) -> Node? { nodes.first { $0.name == name } }
}

/// One L2 segment: a Linux bridge the lab creates, with its IPv4 subnet; or (`docker: bridge`)
/// dockerd's default bridge network (docker0), which the lab joins but does not create.
public struct Network: Sendable, Equatable {
    public var name: String
    /// The lab bridge's subnet. For a docker network it is not known before `lab up` (dockerd
    /// assigns it): `0.0.0.0/0` here, the real one recorded in the state file.
    public var subnet: IPv4Prefix
    /// When set, the host itself joins the network with this address (the bridge gets it), so the
    /// host can reach the nodes on it directly, as a bridged VM's host can.
    public var hostAddress: IPv4Address?
    /// Set for dockerd's default bridge (`docker: bridge`): only container nodes join it, dockerd
    /// gives them their address, and the host reaches them through docker0.
    public var docker: DockerNetwork? = nil
    public var line: Int

    /// Whether dockerd, not the lab, makes this network and its addresses.
    public var isDocker: Bool { docker != nil }
}

/// A network dockerd provides; only its default bridge (docker0) is supported.
public enum DockerNetwork: String, Sendable, Equatable, CaseIterable {
    /// dockerd's default `bridge` network, on the host's docker0.
    case bridge
}

public enum NodeKind: String, Sendable, CaseIterable, Equatable {
    /// A network namespace: the cheapest node.
    case netns
    /// A namespace with IP forwarding, routes, NAT and filter rules.
    case router
    /// A Docker container (Engine API, `NetworkMode: none` or dockerd's default bridge), its network
    /// namespace attached as the node's named namespace, so the plan wires it like a netns node.
    case container
    /// An LXC container (busybox template, network type `empty`), attached the same way.
    case lxc
    /// A QEMU guest (TCG, busybox initramfs) behind a bridge and TAP device in the node's namespace.
    case vm

    /// Kinds whose processes run in a container of their own (image files, not the host's).
    public var isContainer: Bool { self == .container || self == .lxc }
}

/// How a node's link is impaired, as the topology file declares it (`impair: {delay: 30ms, ...}`):
/// the same impairment in EACH direction (a round trip pays the delay twice). Durations in
/// nanoseconds. `spec` is the per-direction model the forwarder runs (EdgeMeterCore's
/// `ImpairmentSpec`, which documents the order of loss, rate, delay and the no-reorder rule).
public struct Impairment: Sendable, Equatable {
    public var delayNanoseconds: Int64 = 0
    public var jitterNanoseconds: Int64 = 0
    public var jitterDistribution: JitterDistribution = .uniform
    /// `loss: 1%` (Bernoulli) or `loss: gemodel 1% 25% 100% 0%` (Gilbert–Elliott, netem's order).
    public var loss: LossModel = .none
    /// Bits per second; nil = unlimited.
    public var rateBitsPerSecond: UInt64?
    /// Per-direction form (`impair: {egress: {...}, ingress: {...}}`): the network → node direction's
    /// model; the fields above are then the node → network direction's. nil = both the same.
    public var toNodeSpec: ImpairmentSpec?

    public typealias JitterDistribution = EdgeMeterCore.JitterDistribution
    public init(delayNanoseconds: Int64 = 0, jitterNanoseconds: Int64 = 0, jitterDistribution: JitterDistribution = .uniform,
                loss: LossModel = .none, rateBitsPerSecond: UInt64? = nil) {
        self.delayNanoseconds = delayNanoseconds
        self.jitterNanoseconds = jitterNanoseconds
        self.jitterDistribution = jitterDistribution
        self.loss = loss
        self.rateBitsPerSecond = rateBitsPerSecond
    }
    public init(_ spec: ImpairmentSpec) {
        self.init(delayNanoseconds: spec.delayNanoseconds, jitterNanoseconds: spec.jitterNanoseconds,
                  jitterDistribution: spec.distribution, loss: spec.loss, rateBitsPerSecond: spec.rateBitsPerSecond)
    }
    /// Bernoulli loss in percent (0 for none; the long-run mean for Gilbert–Elliott).
    public var lossPercent: Double { loss.meanLossFraction * 100 }
    public var isNone: Bool { spec.isNone && (toNodeSpec?.isNone ?? true) }
    /// The network → node direction's model (`spec` unless declared per direction).
    public var specToNode: ImpairmentSpec { toNodeSpec ?? spec }
    /// The node → network direction's model (both directions, with different seeds, unless
    /// `toNodeSpec` is set).
    public var spec: ImpairmentSpec {
        ImpairmentSpec(delayNanoseconds: delayNanoseconds, jitterNanoseconds: jitterNanoseconds,
                       distribution: jitterDistribution, loss: loss, rateBitsPerSecond: rateBitsPerSecond)
    }
}

public struct Interface: Sendable, Equatable {
    public var network: String
    /// nil only on a docker network, where dockerd assigns the address at `lab up`.
    public var address: IPv4Address?
    public var impair: Impairment?
    public var line: Int
}

public struct Route: Sendable, Equatable {
    /// nil = default route.
    public var to: IPv4Prefix?
    public var via: IPv4Address
    public var line: Int
}

/// A router's NAT rule.
public enum NATRule: Sendable, Equatable {
    /// Source NAT of traffic leaving through `network` to the router's address there (VirtualBox NAT,
    /// an OpenStack router's external gateway).
    case masquerade(outNetwork: String)
    /// Destination NAT: traffic to `listen` (an address of the router, or a floating address it answers
    /// for) and `port` goes to `to`:`toPort` (a port forward, an OpenStack floating IP).
    case forward(proto: Proto, listen: IPv4Address, port: Int?, to: IPv4Address, toPort: Int?)

    public enum Proto: String, Sendable, CaseIterable { case tcp, udp, all }
}

/// A router's forwarding filter (an OpenStack security group in front of a node): rules in order, first match wins.
public struct FilterRule: Sendable, Equatable {
    public enum Action: String, Sendable { case allow, drop }
    public var action: Action
    public var proto: NATRule.Proto
    public var to: IPv4Prefix?
    public var port: Int?
    public var line: Int
}

public struct Node: Sendable, Equatable {
    public var name: String
    public var kind: NodeKind
    public var interfaces: [Interface]
    public var routes: [Route]
    public var nat: [NATRule]
    /// Forwarding filter; empty = forward everything. A router with rules drops what no rule allows
    /// only when its last rule says so (`{action: drop}`).
    public var filter: [FilterRule]
    /// The command the node runs once up (argument list, no shell).
    public var workload: [String]
    /// TCP ports the workload listens on (probed by `reach`).
    public var ports: [Int]
    /// Image for container/lxc/vm nodes.
    public var image: String?
    public var line: Int

    public func address(on network: String) -> IPv4Address? { interfaces.first { $0.network == network }?.address ?? nil }
}
