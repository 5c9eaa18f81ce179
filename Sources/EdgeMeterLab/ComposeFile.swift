import Foundation
import Yams
import EdgeMeterCore

/// A docker-compose file of the shape the lab uses (pure: parsing and validation only, no I/O).
///
/// Read: `services` (each with `image`, `command` as a string or a list, `environment` as a map or
/// a `KEY=VALUE` list, `ports` `[HOST_IP:]HOST:CONTAINER[/tcp]`, `expose`, `depends_on` as a list
/// or a map, `networks` with `ipv4_address`, `labels`), `networks` (driver `bridge`, `driver_opts`
/// such as `com.docker.network.bridge.name`, `ipam.config[].subnet`/`gateway`, `labels`),
/// `version`, and `x-*` extension keys (ignored). `build` is refused (name an `image` instead).
/// Every problem is reported at once as `file:line: what is wrong, what is expected`
/// (`SuiteErrors`, as `TopologyLoader` does); unknown keys are named with the nearest known one.
/// Services come out ordered by `depends_on` (dependencies first, file order otherwise); a cycle
/// is an error naming it.
public struct ComposeFile: Sendable, Equatable {
    public struct PortMapping: Sendable, Equatable, Codable {
        /// The host address the port is published on; nil when the file does not say (the deployer
        /// then binds 127.0.0.1, so nothing outside this host can reach the lab).
        public var hostIP: String?
        public var hostPort: Int
        public var containerPort: Int
        /// `tcp` or `udp`.
        public var proto: String
    }

    public struct Service: Sendable, Equatable {
        public var name: String
        public var image: String
        /// nil: the image's own command.
        public var command: [String]?
        /// `KEY=VALUE`, in file order.
        public var environment: [String]
        public var ports: [PortMapping]
        /// Container ports declared by `expose` (TCP).
        public var expose: [Int]
        public var dependsOn: [String]
        /// The one network the service joins and its fixed address (nil: the engine picks one).
        public var network: String
        public var ipv4Address: IPv4Address?
        public var labels: [String: String]
        public var line: Int

        /// Every TCP port the service is expected to listen on inside its container: `expose` and
        /// the container side of `ports`, without repeats, in that order.
        public var listeningPorts: [Int] {
            var seen = Set<Int>()
            return (expose + ports.filter { $0.proto == "tcp" }.map(\.containerPort)).filter { seen.insert($0).inserted }
        }
    }

    public struct Network: Sendable, Equatable {
        public var name: String
        public var driver: String
        public var subnet: IPv4Prefix?
        public var gateway: IPv4Address?
        public var driverOptions: [String: String]
        public var labels: [String: String]
        public var line: Int

        /// The Linux bridge's name (`com.docker.network.bridge.name`), if the file sets it.
        public var bridgeName: String? { driverOptions[ComposeFile.bridgeNameOption] }
    }

    public static let bridgeNameOption = "com.docker.network.bridge.name"

    /// The project: the file's name without `.yml`/`.yaml` (what `lab status` and `lab down` call it).
    public var project: String
    /// In start order: each service after everything it depends on.
    public var services: [Service]
    public var networks: [Network]
    public var path: String

    public func service(_ name: String) -> Service? { services.first { $0.name == name } }
    public func network(_ name: String) -> Network? { networks.first { $0.name == name } }

    /// Whether `yaml` is a compose file: a mapping with a top-level `services` key (a topology file
    /// has `nodes`). Text that is not YAML is not compose (the topology loader then reports it).
    public static func isCompose(yaml: String) -> Bool {
        guard let root = try? Yams.compose(yaml: yaml), case .mapping(let m) = root else { return false }
        return m.contains { $0.key.string == "services" }
    }

    /// The project name for a file path: its last component without `.yml`/`.yaml`.
    public static func projectName(path: String) -> String {
        var base = URL(fileURLWithPath: path).lastPathComponent
        for ext in [".yml", ".yaml"] where base.hasSuffix(ext) { base = String(base.dropLast(ext.count)) }
        return base
    }

    typealias Problems = TopologyLoader.Problems
    typealias Map = TopologyLoader.Map

    public static func load(yaml: String, file: String, project: String? = nil) throws -> ComposeFile {
        var p = Problems(file: file)
        let top = try TopologyLoader.topMapping(yaml: yaml, file: file, expected: "a compose file must be a mapping with `services` and `networks`")
        let extensions = top.compactMap { $0.key.string }.filter { $0.hasPrefix("x-") }
        let m = Map(top, context: "at the top level", problems: &p, known: ["version", "services", "networks"] + extensions)
        let projectName = project ?? projectName(path: file)
        if !validProject(projectName) {
            p.add(1, "the project name \"\(projectName)\" (from the file name) must be 1-30 lowercase letters, digits, '-' or '_', starting with a letter or digit: rename the file")
        }
        if let v = m.string("version", &p), !(v.hasPrefix("2") || v.hasPrefix("3")) {
            p.add(m.line("version"), "`version` must be a 2.x or 3.x compose file version (e.g. \"3.8\"), got \"\(v)\"")
        }

        // networks
        var networks: [Network] = []
        if let v = m.node("networks") {
            if case .mapping(let nmap) = v {
                for (k, item) in nmap {
                    if let n = network(k, item, &p) { networks.append(n) }
                }
            } else {
                p.add(m.line("networks"), "`networks` must be a mapping of network names to their settings, got \(SuiteLoader.render(v))")
            }
        } else {
            p.add(1, "missing top-level `networks`: declare the bridge network the services join (with `ipam: {config: [{subnet: ...}]}`)")
        }
        for (i, n) in networks.enumerated() {
            guard let s = n.subnet else { continue }
            if let other = networks[..<i].first(where: { $0.subnet.map { $0.overlaps(s) } ?? false }) {
                p.add(n.line, "network \"\(n.name)\": subnet \(s) overlaps network \"\(other.name)\"; give each network its own subnet")
            }
        }

        // services
        var services: [Service] = []
        if let v = m.node("services") {
            if case .mapping(let smap) = v {
                for (k, item) in smap {
                    if let s = service(k, item, networks: networks, &p) { services.append(s) }
                }
                if smap.isEmpty { p.add(m.line("services"), "`services` is empty: list at least one service") }
            } else {
                p.add(m.line("services"), "`services` must be a mapping of service names to their settings, got \(SuiteLoader.render(v))")
            }
        }

        // cross-checks: dependencies exist, fixed addresses are unique and inside the subnet, host ports unique.
        let names = services.map(\.name)
        for s in services {
            for d in s.dependsOn where !names.contains(d) {
                p.add(s.line, "service \"\(s.name)\": depends_on names unknown service `\(d)`\(TopologyLoader.hint(d, names)); expected one of: \(names.joined(separator: ", "))")
            }
            if s.dependsOn.contains(s.name) { p.add(s.line, "service \"\(s.name)\" depends on itself; remove it from its depends_on") }
        }
        var taken: [String: String] = [:]
        var published: [String: String] = [:]
        for s in services {
            if let a = s.ipv4Address {
                let key = "\(s.network) \(a)"
                if let owner = taken[key] {
                    p.add(s.line, "service \"\(s.name)\": ipv4_address \(a) on network \"\(s.network)\" is already taken by service \"\(owner)\"")
                } else { taken[key] = s.name }
                if let net = networks.first(where: { $0.name == s.network }) {
                    if let sub = net.subnet, !sub.isUsableHost(a) {
                        p.add(s.line, "service \"\(s.name)\": ipv4_address \(a) is not a usable address in network \"\(net.name)\"'s subnet \(sub)")
                    }
                    if let gw = net.gateway ?? net.subnet.map({ IPv4Address($0.network.value + 1) }), gw == a {
                        p.add(s.line, "service \"\(s.name)\": ipv4_address \(a) is the network's gateway (the host's address on the bridge); pick another address")
                    }
                }
            }
            for port in s.ports {
                let key = "\(port.proto) \(port.hostIP ?? "") \(port.hostPort)"
                if let owner = published[key] {
                    p.add(s.line, "service \"\(s.name)\": host port \(port.hostPort)/\(port.proto) is already published by service \"\(owner)\"")
                } else { published[key] = s.name }
            }
        }
        let ordered = orderByDependencies(services, &p)
        try p.throwIfAny()
        return ComposeFile(project: projectName, services: ordered, networks: networks, path: file)
    }

    static func validProject(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 30 && s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "_" }
            && (s.first!.isLetter || s.first!.isNumber)
    }

    static func validServiceName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 30 && s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
            && (s.first!.isLetter || s.first!.isNumber)
    }

    // MARK: networks

    static func network(_ key: Yams.Node, _ item: Yams.Node, _ p: inout Problems) -> Network? {
        let line = key.mark?.line ?? 1
        guard let name = key.string, validServiceName(name) else {
            p.add(line, "network name must be 1-30 letters, digits, '-' or '_', got \(SuiteLoader.render(key))"); return nil
        }
        let what = "network \"\(name)\""
        if case .scalar(let s) = item, isNull(s) {
            p.add(line, "\(what): give it `ipam: {config: [{subnet: ...}]}` so its services can have fixed addresses")
            return Network(name: name, driver: "bridge", subnet: nil, gateway: nil, driverOptions: [:], labels: [:], line: line)
        }
        guard case .mapping(let map) = item else { p.add(line, "\(what) must be a mapping (driver, driver_opts, ipam, labels)"); return nil }
        let m = Map(map, context: "in \(what)", problems: &p, known: ["driver", "driver_opts", "ipam", "labels"])
        let driver = m.string("driver", &p) ?? "bridge"
        if driver != "bridge" { p.add(m.line("driver"), "\(what): `driver` must be bridge (the only driver the lab deploys), got \"\(driver)\"") }
        let opts = stringMap(m, "driver_opts", what: what, &p)
        if let b = opts[bridgeNameOption] {
            if !b.hasPrefix("em-") || b.utf8.count > 15 || b.contains(where: { $0.isWhitespace || $0 == "/" || $0 == ":" }) {
                p.add(m.line("driver_opts"), "\(what): \(bridgeNameOption) must start with `em-` and have at most 15 bytes (so `lab inventory` and `edgemeter cleanup` recognise the bridge), got \"\(b)\"")
            }
        }
        var subnet: IPv4Prefix?
        var gateway: IPv4Address?
        if let ipam = m.node("ipam") {
            if case .mapping(let imap) = ipam {
                let im = Map(imap, context: "in the ipam of \(what)", problems: &p, known: ["driver", "config"])
                if let d = im.string("driver", &p), d != "default" {
                    p.add(im.line("driver"), "\(what): ipam `driver` must be default, got \"\(d)\"")
                }
                let configs = im.list("config", &p)
                if configs.count > 1 { p.add(im.line("config"), "\(what): give one ipam config entry (one IPv4 subnet), got \(configs.count)") }
                if configs.isEmpty && im.node("config") != nil { p.add(im.line("config"), "\(what): ipam `config` is empty: add `- subnet: 192.168.1.0/24`") }
                if let c = configs.first {
                    let cl = c.mark?.line ?? im.line("config")
                    if case .mapping(let cmap) = c {
                        let cm = Map(cmap, context: "in the ipam config of \(what)", problems: &p, known: ["subnet", "gateway"])
                        if let t = cm.string("subnet", &p) {
                            if let s = IPv4Prefix(t) {
                                subnet = s
                                if !s.isLabRange {
                                    p.add(cm.line("subnet"), "\(what): subnet \(s) is outside the ranges a lab may use (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 198.18.0.0/15)")
                                }
                                if s.length > 30 || s.length < 8 { p.add(cm.line("subnet"), "\(what): a /\(s.length) subnet is not supported; use /8 to /30") }
                            } else {
                                p.add(cm.line("subnet"), "\(what): `subnet` must be an IPv4 prefix with no host bits set, such as 192.168.1.0/24, got \"\(t)\"")
                            }
                        } else {
                            p.add(cl, "\(what): the ipam config needs `subnet` (an IPv4 prefix such as 192.168.1.0/24)")
                        }
                        if let g = cm.string("gateway", &p) {
                            if let a = IPv4Address(g), subnet?.isUsableHost(a) ?? true { gateway = a } else {
                                p.add(cm.line("gateway"), "\(what): `gateway` must be a usable address in the subnet, got \"\(g)\"")
                            }
                        }
                    } else {
                        p.add(cl, "\(what): an ipam config entry must be a mapping such as `{subnet: 192.168.1.0/24}`")
                    }
                }
            } else {
                p.add(m.line("ipam"), "\(what): `ipam` must be a mapping with `config: [{subnet: ...}]`")
            }
        } else {
            p.add(line, "\(what): missing `ipam`: give `ipam: {config: [{subnet: 192.168.1.0/24}]}` so services can have fixed addresses")
        }
        return Network(name: name, driver: driver, subnet: subnet, gateway: gateway, driverOptions: opts,
                       labels: labels(m, what: what, &p), line: line)
    }

    // MARK: services

    static let serviceKeys = ["image", "build", "command", "environment", "ports", "expose", "depends_on", "networks", "labels"]

    static func service(_ key: Yams.Node, _ item: Yams.Node, networks: [Network], _ p: inout Problems) -> Service? {
        let line = key.mark?.line ?? 1
        guard let name = key.string, validServiceName(name) else {
            p.add(line, "service name must be 1-30 letters, digits, '-' or '_', got \(SuiteLoader.render(key))"); return nil
        }
        let what = "service \"\(name)\""
        guard case .mapping(let map) = item else { p.add(line, "\(what) must be a mapping (image, command, networks, ...)"); return nil }
        let m = Map(map, context: "in \(what)", problems: &p, known: serviceKeys)
        if m.node("build") != nil {
            p.add(m.line("build"), "\(what): `build` is not supported: build the image first (e.g. `edgemeter image build`) and name it with `image:`")
        }
        let image = m.string("image", &p)
        if image == nil && m.node("image") == nil && m.node("build") == nil {
            p.add(line, "\(what): missing `image` (e.g. image: edgemeter-base:latest, built by `edgemeter image build`)")
        }

        // command: a string (split as a shell would, without expansion) or a list.
        var command: [String]?
        if let c = m.node("command") {
            switch c {
            case .scalar(let s):
                if let words = shellWords(s.string), !words.isEmpty { command = words } else {
                    p.add(m.line("command"), "\(what): `command` has an unterminated quote or is empty: \"\(s.string)\"")
                }
            case .sequence:
                if let words = m.strings("command", &p) {
                    if words.isEmpty { p.add(m.line("command"), "\(what): `command` is an empty list; give the program and its arguments") } else { command = words }
                }
            default:
                p.add(m.line("command"), "\(what): `command` must be a string or a list of strings, got \(SuiteLoader.render(c))")
            }
        }

        // environment: a map (scalar values) or a list of KEY=VALUE.
        var environment: [String] = []
        if let e = m.node("environment") {
            switch e {
            case .mapping(let emap):
                for (k, v) in emap {
                    let kl = k.mark?.line ?? m.line("environment")
                    guard let ks = k.string, validEnvName(ks) else { p.add(kl, "\(what): environment variable name \(SuiteLoader.render(k)) must be letters, digits and '_'"); continue }
                    guard case .scalar(let s) = v, !isNull(s) else {
                        p.add(kl, "\(what): environment `\(ks)` needs a value (`\(ks): VALUE`); taking it from the host's environment is not supported"); continue
                    }
                    environment.append("\(ks)=\(s.string)")
                }
            case .sequence(let seq):
                for item in seq {
                    let il = item.mark?.line ?? m.line("environment")
                    guard case .scalar(let s) = item, let eq = s.string.firstIndex(of: "="), validEnvName(String(s.string[..<eq])) else {
                        p.add(il, "\(what): each environment entry must be KEY=VALUE, got \(SuiteLoader.render(item))"); continue
                    }
                    environment.append(s.string)
                }
            default:
                p.add(m.line("environment"), "\(what): `environment` must be a map (KEY: VALUE) or a list of KEY=VALUE, got \(SuiteLoader.render(e))")
            }
        }

        // ports: "[HOST_IP:]HOST:CONTAINER[/tcp|/udp]".
        var ports: [PortMapping] = []
        for item in m.list("ports", &p) {
            let il = item.mark?.line ?? m.line("ports")
            guard case .scalar(let s) = item else {
                p.add(il, "\(what): each port must be \"HOST:CONTAINER\" or \"HOST_IP:HOST:CONTAINER\" (the long form is not supported), got \(SuiteLoader.render(item))"); continue
            }
            if let pm = portMapping(s.string) { ports.append(pm) } else {
                p.add(il, "\(what): port \"\(s.string)\" must be \"HOST:CONTAINER\" or \"HOST_IP:HOST:CONTAINER\" with ports 1-65535 and an IPv4 host address, optionally /tcp or /udp (a port without a host side is not supported: give the host port)")
            }
        }

        var expose: [Int] = []
        for item in m.list("expose", &p) {
            let il = item.mark?.line ?? m.line("expose")
            var text = item.string ?? ""
            if text.hasSuffix("/tcp") { text = String(text.dropLast(4)) }
            if let v = Int(text), (1...65535).contains(v) { expose.append(v) } else {
                p.add(il, "\(what): each `expose` entry must be a TCP port 1-65535 (e.g. \"50001\"), got \(SuiteLoader.render(item))")
            }
        }

        // depends_on: a list of names, or a map name → {condition: ...}.
        var dependsOn: [String] = []
        if let d = m.node("depends_on") {
            switch d {
            case .sequence:
                dependsOn = m.strings("depends_on", &p) ?? []
            case .mapping(let dmap):
                for (k, v) in dmap {
                    guard let ks = k.string else { continue }
                    dependsOn.append(ks)
                    if case .mapping(let cmap) = v {
                        let cm = Map(cmap, context: "in depends_on `\(ks)` of \(what)", problems: &p, known: ["condition"])
                        if let c = cm.string("condition", &p), c != "service_started" {
                            p.add(cm.line("condition"), "\(what): depends_on condition `\(c)` is not supported; use service_started (`lab up` then waits for each service's exposed ports before starting the next)")
                        }
                    }
                }
            default:
                p.add(m.line("depends_on"), "\(what): `depends_on` must be a list of service names or a map, got \(SuiteLoader.render(d))")
            }
        }

        // networks: exactly one, as a list of names or a map name → {ipv4_address}.
        var joined: [(name: String, address: IPv4Address?, line: Int)] = []
        if let n = m.node("networks") {
            switch n {
            case .sequence(let seq):
                for item in seq {
                    if let s = item.string { joined.append((s, nil, item.mark?.line ?? m.line("networks"))) }
                }
            case .mapping(let nmap):
                for (k, v) in nmap {
                    guard let ks = k.string else { continue }
                    let kl = k.mark?.line ?? m.line("networks")
                    var address: IPv4Address?
                    if case .mapping(let amap) = v {
                        let am = Map(amap, context: "in network `\(ks)` of \(what)", problems: &p, known: ["ipv4_address", "aliases"])
                        if let a = am.string("ipv4_address", &p) {
                            if let ip = IPv4Address(a) { address = ip } else {
                                p.add(am.line("ipv4_address"), "\(what): `ipv4_address` must be an IPv4 address such as 192.168.1.2, got \"\(a)\"")
                            }
                        }
                    } else if case .scalar(let vs) = v, isNull(vs) {
                        // `net:` alone: joined without a fixed address.
                    } else {
                        p.add(kl, "\(what): network `\(ks)` must map to `{ipv4_address: ADDRESS}` or nothing, got \(SuiteLoader.render(v))")
                    }
                    joined.append((ks, address, kl))
                }
            default:
                p.add(m.line("networks"), "\(what): `networks` must be a list of network names or a map name → {ipv4_address: ...}")
            }
        }
        let netNames = networks.map(\.name)
        for j in joined where !netNames.contains(j.name) {
            p.add(j.line, "\(what): unknown network `\(j.name)`\(TopologyLoader.hint(j.name, netNames)); expected one of the top-level networks: \(netNames.joined(separator: ", "))")
        }
        if joined.count > 1 {
            p.add(m.line("networks"), "\(what): joins \(joined.count) networks; `lab up` deploys services on exactly one network each")
        }
        if joined.isEmpty && m.node("networks") == nil {
            p.add(line, "\(what): missing `networks`: join one of the top-level networks (\(netNames.joined(separator: ", "))), e.g. `networks: {\(netNames.first ?? "net"): {ipv4_address: ...}}`")
        }
        let first = joined.first
        return Service(name: name, image: image ?? "", command: command, environment: environment, ports: ports, expose: expose,
                       dependsOn: dependsOn, network: first?.name ?? "", ipv4Address: first?.address,
                       labels: labels(m, what: what, &p), line: line)
    }

    /// An empty or `null`/`~` plain scalar (YAML's null).
    static func isNull(_ s: Yams.Node.Scalar) -> Bool {
        s.style == .plain && ["", "null", "Null", "NULL", "~"].contains(s.string)
    }

    static func validEnvName(_ s: String) -> Bool {
        !s.isEmpty && s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" } && !s.first!.isNumber
    }

    /// `[HOST_IP:]HOST:CONTAINER[/tcp|/udp]`; nil when it is not that.
    static func portMapping(_ text: String) -> PortMapping? {
        var body = text
        var proto = "tcp"
        if let slash = text.lastIndex(of: "/") {
            proto = String(text[text.index(after: slash)...])
            body = String(text[..<slash])
            guard proto == "tcp" || proto == "udp" else { return nil }
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func port(_ s: String) -> Int? { Int(s).flatMap { (1...65535).contains($0) ? $0 : nil } }
        switch parts.count {
        case 2:
            guard let h = port(parts[0]), let c = port(parts[1]) else { return nil }
            return PortMapping(hostIP: nil, hostPort: h, containerPort: c, proto: proto)
        case 3:
            guard IPv4Address(parts[0]) != nil, let h = port(parts[1]), let c = port(parts[2]) else { return nil }
            return PortMapping(hostIP: parts[0], hostPort: h, containerPort: c, proto: proto)
        default:
            return nil
        }
    }

    /// A map or `key=value` list of labels under `labels`.
    static func labels(_ m: Map, what: String, _ p: inout Problems) -> [String: String] {
        guard let v = m.node("labels") else { return [:] }
        if case .sequence(let seq) = v {
            var out: [String: String] = [:]
            for item in seq {
                guard let s = item.string, let eq = s.firstIndex(of: "=") else {
                    p.add(item.mark?.line ?? m.line("labels"), "\(what): each label must be key=value, got \(SuiteLoader.render(item))"); continue
                }
                out[String(s[..<eq])] = String(s[s.index(after: eq)...])
            }
            return out
        }
        return stringMap(m, "labels", what: what, &p)
    }

    /// A mapping of text keys to scalar values.
    static func stringMap(_ m: Map, _ key: String, what: String, _ p: inout Problems) -> [String: String] {
        guard let v = m.node(key) else { return [:] }
        guard case .mapping(let map) = v else { p.add(m.line(key), "\(what): `\(key)` must be a mapping of names to values, got \(SuiteLoader.render(v))"); return [:] }
        var out: [String: String] = [:]
        for (k, val) in map {
            guard let ks = k.string, case .scalar(let s) = val else {
                p.add(k.mark?.line ?? m.line(key), "\(what): `\(key)` entries must be `name: value` with a text value"); continue
            }
            out[ks] = s.string
        }
        return out
    }

    /// Splits a command string into words as a POSIX shell would (quotes and backslashes), without
    /// any expansion, as docker-compose does; nil on an unterminated quote.
    public static func shellWords(_ s: String) -> [String]? {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escape = false
        for c in s {
            if escape { current.append(c); escape = false; inWord = true; continue }
            if let q = quote {
                if c == q { quote = nil } else if c == "\\" && q == "\"" { escape = true } else { current.append(c) }
                continue
            }
            if c == "\\" { escape = true; inWord = true } else if c == "'" || c == "\"" { quote = c; inWord = true } else if c.isWhitespace {
                if inWord { words.append(current); current = ""; inWord = false }
            } else { current.append(c); inWord = true }
        }
        if quote != nil || escape { return nil }
        if inWord { words.append(current) }
        return words
    }

    /// Services ordered so that each comes after those it depends on (Kahn's algorithm, taking the
    /// earliest service in the file among those ready). A cycle is reported once, named
    /// `a → b → a`, and the services are returned in file order.
    static func orderByDependencies(_ services: [Service], _ p: inout Problems) -> [Service] {
        let names = Set(services.map(\.name))
        var remaining = services
        var done = Set<String>()
        var ordered: [Service] = []
        while !remaining.isEmpty {
            guard let i = remaining.firstIndex(where: { s in s.dependsOn.allSatisfy { done.contains($0) || !names.contains($0) || $0 == s.name } }) else {
                let cycle = findCycle(remaining)
                p.add(services.first { $0.name == cycle.first }?.line ?? 1,
                      "depends_on has a cycle: \(cycle.joined(separator: " → ")); remove one of these dependencies")
                return services
            }
            let s = remaining.remove(at: i)
            done.insert(s.name)
            ordered.append(s)
        }
        return ordered
    }

    /// A cycle among `services` (each of which waits on another of them): follows the first
    /// unfinished dependency until a service repeats.
    static func findCycle(_ services: [Service]) -> [String] {
        let byName = Dictionary(services.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var path: [String] = []
        var current = services[0].name
        while !path.contains(current) {
            path.append(current)
            guard let next = byName[current]?.dependsOn.first(where: { byName[$0] != nil && $0 != current }) else { break }
            current = next
        }
        if let start = path.firstIndex(of: current) { return Array(path[start...]) + [current] }
        return path
    }
}
