import Foundation
import EdgeMeterCore
import EdgeMeterSystem

/// Finding topology files by name, and what suites need of a topology that is up: the address a
/// node name stands for, seen from a source (a node or the host), and whether the route to it
/// stays in the lab.
public enum TopologyFiles {
    /// A topology file for `reference`: a path (containing `/` or ending in .yaml/.yml; relative to
    /// `relativeTo` first, then the current directory), or a built-in name looked up as
    /// `benchmarks/topologies/NAME.yaml` (or `NAME.yml`, a compose file) under `relativeTo`/.. (a suite in benchmarks/suites/), the
    /// current directory and the running binary's directory upwards. Throws a message listing the
    /// built-ins found.
    public static func find(_ reference: String, relativeTo directory: String? = nil) throws -> String {
        let fm = FileManager.default
        if reference.contains("/") || reference.hasSuffix(".yaml") || reference.hasSuffix(".yml") {
            var candidates: [String] = []
            if reference.hasPrefix("/") { candidates = [reference] } else {
                if let directory { candidates.append(URL(fileURLWithPath: directory).appendingPathComponent(reference).standardized.path) }
                candidates.append(reference)
            }
            if let hit = candidates.first(where: { fm.fileExists(atPath: $0) }) { return hit }
            throw LabError(.refused, "topology file \(reference) does not exist (looked in \(candidates.joined(separator: ", "))); give a file or a built-in name (\(builtIns(relativeTo: directory).joined(separator: ", ")))")
        }
        for dir in searchDirectories(relativeTo: directory) {
            // A topology (.yaml) or a compose file (.yml, e.g. calculator-compose).
            for ext in ["yaml", "yml"] where fm.fileExists(atPath: "\(dir)/\(reference).\(ext)") {
                return "\(dir)/\(reference).\(ext)"
            }
        }
        let names = builtIns(relativeTo: directory)
        let hint = nearestWord(to: reference, in: names).map { " (did you mean `\($0)`?)" } ?? ""
        throw LabError(.refused, "no built-in topology named \(reference)\(hint)"
            + (names.isEmpty ? "; run from the repository, or give the path of a topology file" : "; built-ins: \(names.joined(separator: ", ")); or give a topology file"))
    }

    /// The directories built-ins are looked up in, in order.
    static func searchDirectories(relativeTo directory: String?) -> [String] {
        var dirs: [String] = []
        if let directory {
            let d = URL(fileURLWithPath: directory)
            dirs.append(d.deletingLastPathComponent().appendingPathComponent("topologies").standardized.path)
            dirs.append(d.appendingPathComponent("benchmarks/topologies").standardized.path)
        }
        dirs.append(FileManager.default.currentDirectoryPath + "/benchmarks/topologies")
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 {
            var d = URL(fileURLWithPath: String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)).deletingLastPathComponent()
            while d.path != "/" {
                dirs.append(d.path + "/benchmarks/topologies")
                d.deleteLastPathComponent()
            }
        }
        return dirs
    }

    /// The built-in names (files in the first search directory that has any).
    public static func builtIns(relativeTo directory: String?) -> [String] {
        for dir in searchDirectories(relativeTo: directory) {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            if !names.isEmpty { return names.map { ComposeFile.projectName(path: $0) }.sorted() }
        }
        return []
    }

    /// Finds and loads a topology (validated by `TopologyLoader`).
    public static func load(_ reference: String, relativeTo directory: String? = nil) throws -> Topology {
        let path = try find(reference, relativeTo: directory)
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw LabError(.refused, "cannot read the topology file \(path): \(error)")
        }
        do { return try TopologyLoader.load(yaml: text, file: path) } catch let e as SuiteErrors {
            throw LabError(.refused, "the topology file \(path) is not valid: \(e.problems.map(\.description).joined(separator: "; "))")
        }
    }
}

extension TopologyFiles {
    /// Finds and loads what `lab up` accepts: a topology file, or a compose file (a top-level
    /// `services:` key, e.g. the built-in calculator-compose.yml), validated by `ComposeFile`. For a
    /// compose file the topology is a stand-in with its project name and path and no nodes of its
    /// own: the services are the nodes, and the state after `ComposeDeployer.up` holds their
    /// addresses (the deployment's bridge is the host's link into it).
    public static func loadDeployment(_ reference: String, relativeTo directory: String? = nil) throws -> (topology: Topology, compose: ComposeFile?) {
        let path = try find(reference, relativeTo: directory)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw LabError(.refused, "cannot read the topology file \(path): check its permissions")
        }
        guard ComposeFile.isCompose(yaml: text) else { return (try load(reference, relativeTo: directory), nil) }
        let file: ComposeFile
        do { file = try ComposeFile.load(yaml: text, file: path) } catch let e as SuiteErrors {
            throw LabError(.refused, "the compose file \(path) is not valid: \(e.problems.map(\.description).joined(separator: "; "))")
        }
        let stand = Topology(name: file.project, description: "compose deployment \(path)", networks: [], nodes: [], path: path)
        return (stand, file)
    }
}

/// The address a node name stands for, seen from a source.
///
/// The rule, in order (`from` nil is the host, whose networks are those with a `host:` link):
/// 1. the target's address on a network it shares with the source;
/// 2. with a TCP port: a router's port forward or floating address (`nat: forward`) that leads to
///    one of the target's addresses on that port, if its listen address is on one of the source's
///    networks (the host reaches the two-subnet front end through 10.203.0.10:50000);
/// 3. the target's only address (reached through routers, if the routes allow).
/// More than one candidate at the first step that has any is an error naming them: write the
/// address instead.
///
/// A compose deployment's services are nodes with one address each, on the deployment's bridge
/// network, which is the host's link into it: from the host (or another service) a service name
/// is its container address (rule 1), so `http://front:50000/calculate` reaches the front end's
/// container over the bridge, not through the published port. The published port is reached by
/// writing it: `http://127.0.0.1:50000/calculate` (loopback counts as the lab for a compose
/// deployment, as it does for `reach`). Whether the route to the answer stays in the lab is `LabRoutes.check`'s job.
public struct NodeAddress: Sendable, Equatable {
    public var node: String
    public var address: String
    /// The port to use, when a port forward changes it (else the one asked for).
    public var port: Int?
    /// The router whose port forward or floating address is used, if any.
    public var via: String?
    public var network: String?

    public init(node: String, address: String, port: Int?, via: String?, network: String?) {
        (self.node, self.address, self.port, self.via, self.network) = (node, address, port, via, network)
    }

    /// `address` or `address:port`.
    public var hostPort: String { port.map { "\(address):\($0)" } ?? address }

    public static func resolve(_ node: String, port: Int?, from: String?, state: LabState, topology: Topology) throws -> NodeAddress {
        guard let target = state.node(node) else {
            throw LabError(.refused, "topology \(state.topology) has no node \(node); its nodes: \(state.nodes.map(\.name).joined(separator: ", "))")
        }
        let sourceNetworks: Set<String>
        let sourceName = from ?? "the host"
        if let from {
            guard let n = state.node(from) else {
                throw LabError(.refused, "topology \(state.topology) has no node \(from); its nodes: \(state.nodes.map(\.name).joined(separator: ", "))")
            }
            sourceNetworks = Set(n.interfaces.map(\.network))
        } else {
            sourceNetworks = Set(state.networks.filter { $0.hostLink != nil }.map(\.name))
        }
        func ambiguous(_ candidates: [String], _ why: String) -> LabError {
            LabError(.refused, "node \(node) is ambiguous from \(sourceName): \(why) \(candidates.joined(separator: ", ")); write the address instead of the name")
        }
        // 1. a shared network
        let shared = target.interfaces.filter { sourceNetworks.contains($0.network) }
        if shared.count == 1 { return NodeAddress(node: node, address: shared[0].address, port: port, via: nil, network: shared[0].network) }
        if shared.count > 1 { throw ambiguous(shared.map { "\($0.address) (\($0.network))" }, "it has several addresses on networks \(sourceName) is on:") }
        // 2. a port forward / floating address on a source network
        if let port {
            let targetAddresses = Set(target.interfaces.map(\.address))
            let sourcePrefixes = state.networks.filter { sourceNetworks.contains($0.name) }.compactMap { IPv4Prefix($0.subnet) }
            var forwards: [NodeAddress] = []
            for router in topology.nodes {
                for rule in router.nat {
                    guard case .forward(let proto, let listen, let fPort, let to, let toPort) = rule, proto != .udp,
                          targetAddresses.contains(to.description) else { continue }
                    let reaches = toPort ?? fPort
                    guard reaches == nil || reaches == port else { continue }
                    guard sourcePrefixes.contains(where: { $0.contains(listen) }) else { continue }
                    let net = state.networks.first { IPv4Prefix($0.subnet)?.contains(listen) ?? false }?.name
                    forwards.append(NodeAddress(node: node, address: listen.description, port: fPort ?? port, via: router.name, network: net))
                }
            }
            if forwards.count == 1 { return forwards[0] }
            if forwards.count > 1 { throw ambiguous(forwards.map { "\($0.hostPort) (via \($0.via ?? "?"))" }, "several port forwards lead to it:") }
        }
        // 3. its only address
        if target.interfaces.count == 1 {
            let i = target.interfaces[0]
            return NodeAddress(node: node, address: i.address, port: port, via: nil, network: i.network)
        }
        throw ambiguous(target.interfaces.map { "\($0.address) (\($0.network))" }, "it shares no network with \(sourceName) and has several addresses:")
    }
}

/// Whether traffic from a source to an address would stay in the lab (`ip route get` in the source,
/// as `reach` checks before sending).
public enum LabRoutes {
    public enum Verdict: Sendable, Equatable {
        /// The route leads into one of the lab's links (a node's eth<k>, the host's lab links).
        case intoLab(device: String)
        /// The route leads elsewhere: nothing may be sent.
        case leavesLab(device: String)
        /// No route at all (`ip route get` failed or says unreachable).
        case noRoute(String)
    }

    /// `ip -o route get ADDRESS`, in `from`'s namespace (the host's for nil).
    public static func check(state: LabState, from: String?, address: String) -> Verdict {
        guard let ip = which("ip") else { return .noRoute("iproute2's `ip` is not on PATH: apt-get install -y iproute2") }
        var argv = [ip, "-o", "route", "get", address]
        let lab: Set<String>
        if let from {
            guard let n = state.node(from) else { return .noRoute("no node \(from) in \(state.topology)") }
            argv = [ip, "-n", n.namespace, "-o", "route", "get", address]
            lab = Set(n.interfaces.map(\.device))
        } else {
            // A compose deployment publishes ports on loopback: 127.0.0.1:PORT goes through `lo`
            // (as `reach` counts it); its bridge is already among the host links.
            lab = Set(state.hostLinks).union(state.compose == nil ? [] : ["lo"])
        }
        do {
            let r = try Command.runBlocking(argv, timeout: .seconds(5))
            switch ReachRunner.classifyRoute(status: r.status, output: r.ok ? r.stdout : r.combined, labDevices: lab) {
            case .intoLab(let d): return .intoLab(device: d)
            case .leavesLab(let d): return .leavesLab(device: d)
            case .noRoute(let why): return .noRoute(why)
            }
        } catch {
            return .noRoute("\(error)")
        }
    }
}
