import Foundation
import Yams
import EdgeMeterCore

/// Loads and validates a topology file. Every problem is reported at once, located, with what is
/// expected (`SuiteErrors`, the same shape as suite files): nothing is built from a file with a mistake.
public enum TopologyLoader {
    /// The file's top-level mapping, or the error for invalid YAML (its line) or another shape
    /// (`expected` says what the file must be). Shared by topology and compose files.
    static func topMapping(yaml: String, file: String, expected: String) throws -> Yams.Node.Mapping {
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let e as YamlError {
            throw SuiteErrors([SuiteError(file: file, line: SuiteLoader.yamlErrorLine(e), message: "not valid YAML: \(SuiteLoader.yamlProblem(e))")])
        }
        guard let root, case .mapping(let top) = root else {
            throw SuiteErrors([SuiteError(file: file, line: 1, message: expected)])
        }
        return top
    }

    public static func load(yaml: String, file: String) throws -> Topology {
        var p = Problems(file: file)
        let top = try topMapping(yaml: yaml, file: file, expected: "a topology must be a mapping with `name`, `networks` and `nodes`")
        let m = Map(top, context: "at the top level", problems: &p, known: ["name", "description", "networks", "nodes"])
        let name = m.string("name", &p)
        if name == nil && m.node("name") == nil { p.add(1, "missing `name`: give the topology a short name (letters, digits, '-')") }
        if let name, !validName(name, max: 12) {
            p.add(m.line("name"), "`name` must be 1-12 letters, digits or '-' (it prefixes every object the lab creates), got \"\(name)\"")
        }
        var networks: [Network] = []
        for item in m.list("networks", &p) {
            guard let n = network(item, &p) else { continue }
            if let first = networks.first(where: { $0.name == n.name }) {
                p.add(n.line, "network \"\(n.name)\" is defined twice (first on line \(first.line))")
            } else if n.isDocker, let other = networks.first(where: { $0.docker == n.docker }) {
                p.add(n.line, "network \"\(n.name)\": dockerd's default bridge is already network \"\(other.name)\" (line \(other.line)); declare it once")
            } else if !n.isDocker, let other = networks.first(where: { !$0.isDocker && $0.subnet.overlaps(n.subnet) }) {
                p.add(n.line, "network \"\(n.name)\": subnet \(n.subnet) overlaps network \"\(other.name)\" (\(other.subnet)); give each network its own subnet")
            } else {
                networks.append(n)
            }
        }
        var nodes: [Node] = []
        for item in m.list("nodes", &p) {
            guard let n = node(item, networks: networks, &p) else { continue }
            if let first = nodes.first(where: { $0.name == n.name }) {
                p.add(n.line, "node \"\(n.name)\" is defined twice (first on line \(first.line))")
            } else {
                nodes.append(n)
            }
        }
        if m.node("nodes") != nil && nodes.isEmpty && p.list.isEmpty { p.add(m.line("nodes"), "`nodes` is empty: list at least one node") }
        if m.node("nodes") == nil { p.add(1, "missing `nodes`: list the topology's nodes") }
        // Addresses are unique per network, and no node takes the host's address.
        for net in networks {
            var seen: [IPv4Address: String] = [:]
            if let h = net.hostAddress { seen[h] = "the host" }
            for n in nodes {
                for i in n.interfaces where i.network == net.name {
                    guard let a = i.address else { continue }
                    if let owner = seen[a] {
                        p.add(i.line, "node \"\(n.name)\": address \(a) on network \"\(net.name)\" is already taken by \(owner)")
                    } else {
                        seen[a] = "node \"\(n.name)\""
                    }
                }
            }
        }
        try p.throwIfAny()
        return Topology(name: name ?? "", description: m.string("description", &p) ?? "", networks: networks, nodes: nodes, path: file)
    }

    static func validName(_ s: String, max: Int) -> Bool {
        !s.isEmpty && s.count <= max && s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
            && s.first != "-"
    }

    static func network(_ item: Yams.Node, _ p: inout Problems) -> Network? {
        let line = item.mark?.line ?? 1
        guard case .mapping(let map) = item else { p.add(line, "a network must be a mapping with `name` and `subnet`"); return nil }
        let m = Map(map, context: "in a network", problems: &p, known: ["name", "subnet", "host", "docker"])
        guard let name = m.string("name", &p) else { p.add(line, "a network needs a `name`"); return nil }
        if !validName(name, max: 12) { p.add(m.line("name"), "network name must be 1-12 letters, digits, '-' or '_', got \"\(name)\"") }
        if let d = m.string("docker", &p) {
            guard let docker = DockerNetwork(rawValue: d) else {
                p.add(m.line("docker"), "network \"\(name)\": `docker` must be `bridge` (dockerd's default network, docker0), got \"\(d)\"")
                return nil
            }
            for key in ["subnet", "host"] where m.node(key) != nil {
                p.add(m.line(key), "network \"\(name)\": `\(key)` cannot be set on a docker network: dockerd chooses the subnet and the host is on it through docker0; remove `\(key)`")
            }
            return Network(name: name, subnet: IPv4Prefix(network: IPv4Address(0), length: 0), hostAddress: nil, docker: docker, line: line)
        }
        guard let text = m.string("subnet", &p) else { p.add(line, "network \"\(name)\": missing `subnet` (an IPv4 prefix such as 192.168.1.0/24)"); return nil }
        guard let subnet = IPv4Prefix(text) else {
            p.add(m.line("subnet"), "network \"\(name)\": `subnet` must be an IPv4 prefix with no host bits set, such as 192.168.1.0/24, got \"\(text)\"")
            return nil
        }
        if !subnet.isLabRange {
            p.add(m.line("subnet"), "network \"\(name)\": \(subnet) is outside the ranges a lab may use (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 198.18.0.0/15)")
        }
        if subnet.length > 30 || subnet.length < 8 {
            p.add(m.line("subnet"), "network \"\(name)\": a /\(subnet.length) subnet is not supported; use /8 to /30")
        }
        var host: IPv4Address?
        if let h = m.string("host", &p) {
            if let a = IPv4Address(h), subnet.isUsableHost(a) { host = a } else {
                p.add(m.line("host"), "network \"\(name)\": `host` must be a usable address in \(subnet), got \"\(h)\"")
            }
        }
        return Network(name: name, subnet: subnet, hostAddress: host, line: line)
    }

    static func node(_ item: Yams.Node, networks: [Network], _ p: inout Problems) -> Node? {
        let line = item.mark?.line ?? 1
        guard case .mapping(let map) = item else { p.add(line, "a node must be a mapping with `name` and `interfaces`"); return nil }
        let m = Map(map, context: "in a node", problems: &p,
                    known: ["name", "kind", "interfaces", "routes", "nat", "filter", "workload", "ports", "image"])
        guard let name = m.string("name", &p) else { p.add(line, "a node needs a `name`"); return nil }
        let what = "node \"\(name)\""
        if !validName(name, max: 12) { p.add(m.line("name"), "\(what): the name must be 1-12 letters, digits, '-' or '_'") }
        var kind = NodeKind.netns
        if let k = m.string("kind", &p) {
            if let v = NodeKind(rawValue: k) { kind = v } else {
                let kinds = NodeKind.allCases.map(\.rawValue)
                p.add(m.line("kind"), "\(what): unknown kind `\(k)`\(hint(k, kinds)); expected one of: \(kinds.joined(separator: ", "))")
            }
        }
        var interfaces: [Interface] = []
        for i in m.list("interfaces", &p) {
            let il = i.mark?.line ?? line
            guard case .mapping(let imap) = i else { p.add(il, "\(what): an interface must be a mapping with `network` and `address`"); continue }
            let im = Map(imap, context: "in an interface of \(what)", problems: &p, known: ["network", "address", "impair"])
            guard let netName = im.string("network", &p) else { p.add(il, "\(what): an interface needs `network`"); continue }
            guard let net = networks.first(where: { $0.name == netName }) else {
                p.add(im.line("network"), "\(what): unknown network `\(netName)`\(hint(netName, networks.map(\.name))); expected one of: \(networks.map(\.name).joined(separator: ", "))")
                continue
            }
            if interfaces.contains(where: { $0.network == netName }) {
                p.add(im.line("network"), "\(what): a second interface on network \"\(netName)\"; a node has one interface per network")
                continue
            }
            if net.isDocker {
                if kind != .container {
                    p.add(im.line("network"), "\(what): only container nodes can join the docker network \"\(netName)\"; make it `kind: container` or attach it to a lab network")
                } else if !interfaces.isEmpty {
                    p.add(im.line("network"), "\(what): the interface on the docker network \"\(netName)\" must be the node's first (dockerd makes it eth0); move it to the top of `interfaces`")
                }
                if im.node("address") != nil {
                    p.add(im.line("address"), "\(what): dockerd assigns addresses on \"\(netName)\"; remove `address` (reach names the node instead of its address)")
                }
                if im.node("impair") != nil {
                    p.add(im.line("impair"), "\(what): links on the docker network \"\(netName)\" cannot be impaired; remove `impair`")
                }
                interfaces.append(Interface(network: netName, address: nil, impair: nil, line: il))
                continue
            }
            guard let text = im.string("address", &p) else { p.add(il, "\(what): the interface on \(netName) needs an `address`"); continue }
            guard let a = IPv4Address(text), net.subnet.isUsableHost(a) else {
                p.add(im.line("address"), "\(what): address \"\(text)\" is not a usable address of network \"\(netName)\" (\(net.subnet))")
                continue
            }
            var impair: Impairment?
            if let node = im.node("impair") { impair = impairment(node, what: "\(what) on \(netName)", &p) }
            interfaces.append(Interface(network: netName, address: a, impair: impair, line: il))
        }
        if interfaces.isEmpty && m.node("interfaces") == nil {
            p.add(line, "\(what): missing `interfaces`: attach the node to at least one network")
        }
        var routes: [Route] = []
        for r in m.list("routes", &p) {
            let rl = r.mark?.line ?? line
            guard case .mapping(let rmap) = r else { p.add(rl, "\(what): a route must be a mapping with `to` and `via`"); continue }
            let rm = Map(rmap, context: "in a route of \(what)", problems: &p, known: ["to", "via"])
            guard let toText = rm.string("to", &p), let viaText = rm.string("via", &p) else {
                p.add(rl, "\(what): a route needs `to` (a prefix or `default`) and `via` (a gateway address)"); continue
            }
            var to: IPv4Prefix?
            if toText != "default" {
                guard let pfx = IPv4Prefix(toText) else {
                    p.add(rm.line("to"), "\(what): route `to` must be an IPv4 prefix such as 192.168.2.0/24, or `default`, got \"\(toText)\""); continue
                }
                to = pfx
            }
            guard let via = IPv4Address(viaText) else { p.add(rm.line("via"), "\(what): route `via` must be an IPv4 address, got \"\(viaText)\""); continue }
            let onLink = interfaces.contains { i in networks.first { $0.name == i.network && !$0.isDocker }?.subnet.contains(via) == true }
            if !onLink {
                p.add(rm.line("via"), "\(what): gateway \(via) is not on any of the node's networks; a gateway must be directly reachable")
            }
            routes.append(Route(to: to, via: via, line: rl))
        }
        var nat: [NATRule] = []
        for r in m.list("nat", &p) {
            if kind != .router { p.add(r.mark?.line ?? line, "\(what): `nat` rules need `kind: router`"); break }
            if let rule = natRule(r, what: what, node: interfaces, networks: networks, &p) { nat.append(rule) }
        }
        var filter: [FilterRule] = []
        for r in m.list("filter", &p) {
            if kind != .router { p.add(r.mark?.line ?? line, "\(what): `filter` rules need `kind: router`"); break }
            if let rule = filterRule(r, what: what, &p) { filter.append(rule) }
        }
        let workload = m.strings("workload", &p) ?? []
        var ports: [Int] = []
        for (k, text) in (m.strings("ports", &p) ?? []).enumerated() {
            if let v = Int(text), (1...65535).contains(v) { ports.append(v) } else {
                p.add(m.line("ports"), "\(what): ports[\(k)] must be a TCP port 1-65535, got \"\(text)\"")
            }
        }
        let image = m.string("image", &p)
        if image != nil && (kind == .netns || kind == .router) {
            p.add(m.line("image"), "\(what): `image` is for container, lxc and vm nodes; a \(kind.rawValue) node runs on the host's files")
        }
        if kind == .vm {
            if interfaces.count > 1 {
                p.add(m.line("interfaces"), "\(what): a vm node has one interface (its guest's eth0); give it one network, or use a router to join more")
            }
            if workload.contains("edgemeter") {
                p.add(m.line("workload"), "\(what): a vm's guest runs busybox only; its workload must be a busybox command such as [httpd, -f, -p, \"8080\"], not edgemeter")
            }
            if image != nil {
                p.add(m.line("image"), "\(what): a vm node boots the cached kernel with a busybox initramfs and takes no `image`; remove it")
            }
        }
        if image != nil && kind == .lxc {
            p.add(m.line("image"), "\(what): lxc nodes are made from LXC's busybox template, which takes no image; remove `image`")
        }
        return Node(name: name, kind: kind, interfaces: interfaces, routes: routes, nat: nat, filter: filter,
                    workload: workload, ports: ports, image: image, line: line)
    }

    /// `impair: {delay: 30ms, ...}` (the same in each direction) or, per direction,
    /// `impair: {egress: {delay: 30ms}, ingress: {delay: 5ms}}` (egress: node → network, ingress:
    /// network → node; a direction left out is not impaired). The two forms do not mix.
    static func impairment(_ node: Yams.Node, what: String, _ p: inout Problems) -> Impairment? {
        let line = node.mark?.line ?? 1
        guard case .mapping(let map) = node else { p.add(line, "\(what): `impair` must be a mapping (delay, jitter, distribution, loss, rate, or egress/ingress)"); return nil }
        let fields = ["delay", "jitter", "distribution", "loss", "rate"]
        let m = Map(map, context: "in `impair` of \(what)", problems: &p, known: fields + ["egress", "ingress"])
        let egress = m.node("egress"), ingress = m.node("ingress")
        guard egress != nil || ingress != nil else { return impairmentFields(m, what: what, &p) }
        if let flat = fields.first(where: { m.node($0) != nil }) {
            p.add(m.line(flat), "\(what): `\(flat)` beside `egress`/`ingress`: give every field inside `egress:` (node → network) and/or `ingress:` (network → node), or use the flat form alone for both directions")
            return nil
        }
        func direction(_ n: Yams.Node?, _ name: String, _ p: inout Problems) -> Impairment? {
            guard let n else { return Impairment() }
            guard case .mapping(let dm) = n else {
                p.add(n.mark?.line ?? line, "\(what): `impair.\(name)` must be a mapping (delay, jitter, distribution, loss, rate)"); return nil
            }
            let sub = Map(dm, context: "in `impair.\(name)` of \(what)", problems: &p, known: fields)
            return impairmentFields(sub, what: "\(what) (\(name))", &p)
        }
        guard var out = direction(egress, "egress", &p), let into = direction(ingress, "ingress", &p) else { return nil }
        out.toNodeSpec = into.spec
        return out
    }

    /// The fields of one impairment (both directions, or one direction's mapping).
    static func impairmentFields(_ m: Map, what: String, _ p: inout Problems) -> Impairment {
        var imp = Impairment()
        if let d = m.string("delay", &p) {
            if let v = parseDuration(d), v <= .seconds(10) { imp.delayNanoseconds = v.nanoseconds } else {
                p.add(m.line("delay"), "\(what): `delay` must be a duration up to 10s such as 30ms, got \"\(d)\"")
            }
        }
        if let j = m.string("jitter", &p) {
            if let v = parseDuration(j), v <= .seconds(10) { imp.jitterNanoseconds = v.nanoseconds } else {
                p.add(m.line("jitter"), "\(what): `jitter` must be a duration up to 10s such as 5ms, got \"\(j)\"")
            }
        }
        if let dist = m.string("distribution", &p) {
            if let v = Impairment.JitterDistribution(rawValue: dist) { imp.jitterDistribution = v } else {
                p.add(m.line("distribution"), "\(what): `distribution` must be uniform or normal, got \"\(dist)\"")
            }
        }
        if imp.jitterNanoseconds > imp.delayNanoseconds && imp.jitterDistribution == .uniform {
            p.add(m.line("jitter"), "\(what): uniform jitter (\(imp.jitterNanoseconds / 1_000_000) ms) larger than the delay would need negative delays; lower it or raise `delay`")
        }
        if let l = m.string("loss", &p) {
            if let v = ImpairmentSpec.parseLoss(l) { imp.loss = v } else {
                p.add(m.line("loss"), "\(what): `loss` must be a percentage 0-100 such as 1% (Bernoulli) or `gemodel P R 1-H 1-K` in percent (Gilbert-Elliott), got \"\(l)\"")
            }
        }
        if let r = m.string("rate", &p) {
            if let v = parseRate(r) { imp.rateBitsPerSecond = v } else {
                p.add(m.line("rate"), "\(what): `rate` must be a bit rate such as 10mbit, 500kbit or 1gbit, got \"\(r)\"")
            }
        }
        return imp
    }

    /// `10mbit`, `500kbit`, `1gbit`, `64000bit` (tc's units) to bits per second.
    public static func parseRate(_ text: String) -> UInt64? { ImpairmentSpec.parseRate(text) }

    static func natRule(_ node: Yams.Node, what: String, node interfaces: [Interface], networks: [Network], _ p: inout Problems) -> NATRule? {
        let line = node.mark?.line ?? 1
        guard case .mapping(let map) = node else { p.add(line, "\(what): a NAT rule must be a mapping"); return nil }
        let m = Map(map, context: "in a NAT rule of \(what)", problems: &p, known: ["masquerade", "forward", "proto", "listen", "port", "to", "to_port"])
        if let out = m.string("masquerade", &p) {
            guard interfaces.contains(where: { $0.network == out }) else {
                p.add(m.line("masquerade"), "\(what): masquerade out of `\(out)`, but the router has no interface on that network"); return nil
            }
            return .masquerade(outNetwork: out)
        }
        guard m.node("forward") != nil || m.node("listen") != nil else {
            p.add(line, "\(what): a NAT rule is either `{masquerade: NETWORK}` or `{forward: tcp, listen: ADDR, port: N, to: ADDR, to_port: N}`"); return nil
        }
        let protoText = m.string("forward", &p) ?? m.string("proto", &p) ?? "tcp"
        guard let proto = NATRule.Proto(rawValue: protoText) else {
            p.add(m.line("forward"), "\(what): `forward` must be tcp, udp or all, got \"\(protoText)\""); return nil
        }
        guard let listenText = m.string("listen", &p), let listen = IPv4Address(listenText) else {
            p.add(line, "\(what): a forward needs `listen`: the address it answers on (one of the router's, or a floating address)"); return nil
        }
        guard let toText = m.string("to", &p), let to = IPv4Address(toText) else {
            p.add(line, "\(what): a forward needs `to`: the inside address it forwards to"); return nil
        }
        func port(_ key: String) -> Int? {
            guard let t = m.string(key, &p) else { return nil }
            if let v = Int(t), (1...65535).contains(v) { return v }
            p.add(m.line(key), "\(what): `\(key)` must be a port 1-65535, got \"\(t)\"")
            return nil
        }
        let listenPort = port("port")
        let toPort = port("to_port") ?? listenPort
        if proto == .all && (listenPort != nil || toPort != nil) {
            p.add(line, "\(what): ports need `forward: tcp` or `udp`")
        }
        if !networks.contains(where: { !$0.isDocker && $0.subnet.contains(listen) }) {
            p.add(m.line("listen"), "\(what): listen address \(listen) is on none of the topology's networks")
        }
        return .forward(proto: proto, listen: listen, port: listenPort, to: to, toPort: toPort)
    }

    static func filterRule(_ node: Yams.Node, what: String, _ p: inout Problems) -> FilterRule? {
        let line = node.mark?.line ?? 1
        guard case .mapping(let map) = node else { p.add(line, "\(what): a filter rule must be a mapping"); return nil }
        let m = Map(map, context: "in a filter rule of \(what)", problems: &p, known: ["action", "proto", "to", "port"])
        guard let a = m.string("action", &p), let action = FilterRule.Action(rawValue: a) else {
            p.add(line, "\(what): a filter rule needs `action: allow` or `action: drop`"); return nil
        }
        let protoText = m.string("proto", &p) ?? "all"
        guard let proto = NATRule.Proto(rawValue: protoText) else { p.add(m.line("proto"), "\(what): `proto` must be tcp, udp or all, got \"\(protoText)\""); return nil }
        var to: IPv4Prefix?
        if let t = m.string("to", &p) {
            if let pfx = IPv4Prefix(t) ?? IPv4Address(t).map({ IPv4Prefix(network: $0, length: 32) }) { to = pfx } else {
                p.add(m.line("to"), "\(what): filter `to` must be an address or prefix, got \"\(t)\"")
            }
        }
        var port: Int?
        if let t = m.string("port", &p) {
            if let v = Int(t), (1...65535).contains(v), proto != .all { port = v } else {
                p.add(m.line("port"), "\(what): filter `port` needs `proto: tcp` or `udp` and a port 1-65535, got \"\(t)\"")
            }
        }
        return FilterRule(action: action, proto: proto, to: to, port: port, line: line)
    }

    static func hint(_ word: String, _ candidates: [String]) -> String {
        nearestWord(to: word, in: candidates).map { " (did you mean `\($0)`?)" } ?? ""
    }

    /// Problems collected while reading, reported together.
    struct Problems {
        let file: String
        var list: [SuiteError] = []
        mutating func add(_ line: Int, _ message: String) { list.append(SuiteError(file: file, line: line, message: message)) }
        func throwIfAny() throws(SuiteErrors) {
            guard !list.isEmpty else { return }
            throw SuiteErrors(list.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }.map(\.element))
        }
    }

    /// A YAML mapping read by key, reporting unknown keys (with the nearest known one) as it is made.
    struct Map {
        var entries: [(key: String, value: Yams.Node, line: Int)] = []
        init(_ map: Yams.Node.Mapping, context: String, problems p: inout Problems, known: [String]) {
            for (k, v) in map {
                let key = k.string ?? ""
                let line = k.mark?.line ?? 1
                if !known.contains(key) {
                    p.add(line, "unknown key `\(key)` \(context)\(TopologyLoader.hint(key, known)); expected one of: \(known.joined(separator: ", "))")
                    continue
                }
                entries.append((key, v, line))
            }
        }
        func node(_ key: String) -> Yams.Node? { entries.first { $0.key == key }?.value }
        func line(_ key: String) -> Int { entries.first { $0.key == key }?.line ?? 1 }
        func string(_ key: String, _ p: inout Problems) -> String? {
            guard let v = node(key) else { return nil }
            guard case .scalar(let s) = v, !s.string.isEmpty else {
                p.add(line(key), "`\(key)` must be a text value, got \(SuiteLoader.render(v))"); return nil
            }
            return s.string
        }
        func strings(_ key: String, _ p: inout Problems) -> [String]? {
            guard let v = node(key) else { return nil }
            guard case .sequence(let seq) = v else { p.add(line(key), "`\(key)` must be a list, got \(SuiteLoader.render(v))"); return nil }
            var out: [String] = []
            for item in seq {
                guard case .scalar(let s) = item else { p.add(item.mark?.line ?? line(key), "`\(key)` must be a list of text values"); return nil }
                out.append(s.string)
            }
            return out
        }
        func list(_ key: String, _ p: inout Problems) -> [Yams.Node] {
            guard let v = node(key) else { return [] }
            guard case .sequence(let seq) = v else { p.add(line(key), "`\(key)` must be a list, got \(SuiteLoader.render(v))"); return [] }
            return Array(seq)
        }
    }
}
