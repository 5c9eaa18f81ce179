import Foundation

/// A small typed API over iproute2's `ip`: network namespaces, veth pairs, bridges, addresses, links,
/// routes and per-namespace sysctls. Each call runs one `ip` command (an argument list, no shell) and
/// throws a `SystemError` naming that command, its exit status and its stderr when it fails. Names
/// are checked first (`Names.checkInterface`, `Names.checkNamespace`), so a name the kernel would
/// refuse fails before anything runs. Needs root (CAP_NET_ADMIN) for everything that changes state.
///
/// `netns:` runs the command inside that namespace (`ip -n NS ...`); nil is the caller's namespace.
public struct IPRoute: Sendable {
    /// The `ip` program: a name looked up with `which`, or a path.
    public let program: String

    public init(program: String = "ip") {
        self.program = program
    }

    /// Runs `ip [-n netns] args` and returns its result, whatever the exit status.
    public func result(_ args: [String], netns: String? = nil) async throws -> CommandResult {
        let argv = [program] + (netns.map { ["-n", $0] } ?? []) + args
        do {
            return try await Command.run(argv)
        } catch is SystemError where which(program) == nil {
            throw SystemError("iproute2's `\(program)` not found on PATH: apt-get install -y iproute2", command: argv)
        }
    }

    /// Runs `ip [-n netns] args`; throws when it exits nonzero (the error names the command and its
    /// stderr).
    @discardableResult
    public func run(_ args: [String], netns: String? = nil) async throws -> CommandResult {
        let r = try await result(args, netns: netns)
        guard r.ok else { throw Self.failure([program] + (netns.map { ["-n", $0] } ?? []) + args, r) }
        return r
    }

    static func failure(_ argv: [String], _ r: CommandResult) -> SystemError {
        let out = r.combined
        return SystemError("`\(argv.joined(separator: " "))` failed (exit status \(r.status)): \(out.isEmpty ? "no output" : out): "
            + "run as root (CAP_NET_ADMIN); `ip -br link` and `ip netns list` show what exists",
            command: argv, status: r.status, output: out)
    }

    // MARK: network namespaces

    /// `ip netns add NAME`.
    public func addNamespace(_ name: String) async throws {
        try Names.checkNamespace(name)
        try await run(["netns", "add", name])
    }

    /// `ip netns del NAME`: its interfaces go with it (a veth's peer in another namespace too).
    public func deleteNamespace(_ name: String) async throws {
        try Names.checkNamespace(name)
        try await run(["netns", "del", name])
    }

    /// The names `ip netns list` shows.
    public func namespaces() async throws -> [String] {
        try await run(["netns", "list"]).stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Runs `argv` inside the namespace (`ip netns exec NAME argv...`) and returns its result; a
    /// nonzero exit of the program does not throw (check `ok`). See `Command.runBlocking` for `timeout`.
    public func exec(in netns: String, _ argv: [String], timeout: Duration? = nil) async throws -> CommandResult {
        try Names.checkNamespace(netns)
        guard !argv.isEmpty else { throw SystemError("empty command: give the program and its arguments as a list") }
        let ip = try resolve()
        return try await Command.run([ip, "netns", "exec", netns] + argv, timeout: timeout)
    }

    // MARK: links

    /// Whether `ip link show NAME` finds the link.
    public func linkExists(_ name: String, netns: String? = nil) async throws -> Bool {
        try Names.checkInterface(name)
        return try await result(["link", "show", name], netns: netns).ok
    }

    /// The names of every link (`ip -o link show`), without the `@peer` suffix.
    public func links(netns: String? = nil) async throws -> [String] {
        try await run(["-o", "link", "show"], netns: netns).stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", maxSplits: 2)
            guard fields.count >= 2 else { return nil }
            let name = fields[1].trimmingCharacters(in: .whitespaces)
            return String(name.split(separator: "@").first ?? Substring(name))
        }
    }

    /// `ip link add NAME type bridge` (down, no address).
    public func addBridge(_ name: String, netns: String? = nil) async throws {
        try Names.checkInterface(name)
        try await run(["link", "add", name, "type", "bridge"], netns: netns)
    }

    /// A veth pair `name` <-> `peer`: `ip link add NAME type veth peer name PEER [netns PEERNS]`,
    /// the peer created directly inside `peerNetns` when given.
    public func addVeth(_ name: String, peer: String, peerNetns: String? = nil) async throws {
        try Names.checkInterface(name)
        try Names.checkInterface(peer)
        if let peerNetns { try Names.checkNamespace(peerNetns) }
        try await run(["link", "add", name, "type", "veth", "peer", "name", peer] + (peerNetns.map { ["netns", $0] } ?? []))
    }

    /// `ip link set NAME netns NS`: moves a link (e.g. one end of a veth pair) into a namespace.
    public func moveLink(_ name: String, toNamespace netns: String) async throws {
        try Names.checkInterface(name)
        try Names.checkNamespace(netns)
        try await run(["link", "set", name, "netns", netns])
    }

    /// `ip link set LINK master BRIDGE [up]`: enslaves a link to a bridge (and brings it up).
    public func enslave(_ link: String, to bridge: String, up: Bool = false, netns: String? = nil) async throws {
        try Names.checkInterface(link)
        try Names.checkInterface(bridge)
        try await run(["link", "set", link, "master", bridge] + (up ? ["up"] : []), netns: netns)
    }

    /// `ip link set NAME up|down`.
    public func setLink(_ name: String, up: Bool, netns: String? = nil) async throws {
        try Names.checkInterface(name)
        try await run(["link", "set", name, up ? "up" : "down"], netns: netns)
    }

    /// `ip link del NAME` (deleting one end of a veth pair deletes both).
    public func deleteLink(_ name: String, netns: String? = nil) async throws {
        try Names.checkInterface(name)
        try await run(["link", "del", name], netns: netns)
    }

    // MARK: addresses and routes

    /// `ip addr add CIDR dev DEV` (CIDR such as 10.213.77.1/24).
    public func addAddress(_ cidr: String, dev: String, netns: String? = nil) async throws {
        try Names.checkInterface(dev)
        try Self.checkCIDR(cidr)
        try await run(["addr", "add", cidr, "dev", dev], netns: netns)
    }

    /// `ip route add DEST [via GW] [dev DEV]` (DEST a CIDR or `default`).
    public func addRoute(_ destination: String, via gateway: String? = nil, dev: String? = nil, netns: String? = nil) async throws {
        try await run(["route", "add"] + (try routeSpec(destination, via: gateway, dev: dev)), netns: netns)
    }

    /// `ip route del DEST [via GW] [dev DEV]`.
    public func deleteRoute(_ destination: String, via gateway: String? = nil, dev: String? = nil, netns: String? = nil) async throws {
        try await run(["route", "del"] + (try routeSpec(destination, via: gateway, dev: dev)), netns: netns)
    }

    private func routeSpec(_ destination: String, via gateway: String?, dev: String?) throws -> [String] {
        if destination != "default" { try Self.checkCIDR(destination) }
        if let dev { try Names.checkInterface(dev) }
        guard gateway != nil || dev != nil else {
            throw SystemError("a route to \(destination) needs a gateway (via) or a device (dev)")
        }
        return [destination] + (gateway.map { ["via", $0] } ?? []) + (dev.map { ["dev", $0] } ?? [])
    }

    /// The device `ip -o route get ADDRESS` picks for `address` (nil when the answer names none).
    public func routeDevice(to address: String, netns: String? = nil) async throws -> String? {
        let words = try await run(["-o", "route", "get", address], netns: netns).stdout.split(whereSeparator: \.isWhitespace)
        guard let i = words.firstIndex(of: "dev"), i + 1 < words.count else { return nil }
        return String(words[i + 1])
    }

    // MARK: bridges and namespaces joined by veth pairs

    /// Bridge `name` with address `cidr` (e.g. 10.213.77.1/24), up, unless a link of that name
    /// already exists (then nothing changes). Returns true when this call created it, so the caller
    /// deletes only what it made. A bridge that fails half-way (address refused, say) is deleted
    /// again before the error is thrown.
    @discardableResult
    public func ensureBridge(_ name: String, address cidr: String) async throws -> Bool {
        try Self.checkCIDR(cidr)
        if try await linkExists(name) { return false }
        try await addBridge(name)
        do {
            try await addAddress(cidr, dev: name)
            try await setLink(name, up: true)
        } catch {
            try? await deleteLink(name)
            throw error
        }
        return true
    }

    /// A new network namespace `netns` joined to this one by a veth pair: `namespaceEnd` is created
    /// inside `netns` with `namespaceAddress` (a CIDR), `hostEnd` stays here and is either enslaved
    /// to `bridge` or given `hostAddress` (a CIDR), or both; both ends and the namespace's `lo` are
    /// up. On failure the namespace (and with it the pair) is deleted before the error is thrown.
    /// Six to eight `ip` commands; `deleteNamespace(netns)` undoes everything.
    public func addNamespace(_ netns: String, hostEnd: String, namespaceEnd: String, namespaceAddress: String,
                             hostAddress: String? = nil, bridge: String? = nil) async throws {
        try Self.checkCIDR(namespaceAddress)
        if let hostAddress { try Self.checkCIDR(hostAddress) }
        try await addNamespace(netns)
        do {
            try await addVeth(hostEnd, peer: namespaceEnd, peerNetns: netns)
            if let bridge { try await enslave(hostEnd, to: bridge) }
            if let hostAddress { try await addAddress(hostAddress, dev: hostEnd) }
            try await setLink(hostEnd, up: true)
            try await addAddress(namespaceAddress, dev: namespaceEnd, netns: netns)
            try await setLink(namespaceEnd, up: true, netns: netns)
            try await setLink("lo", up: true, netns: netns)
        } catch {
            try? await deleteNamespace(netns)
            if (try? await linkExists(hostEnd)) == true { try? await deleteLink(hostEnd) }
            throw error
        }
    }

    // MARK: sysctl

    /// Sets a sysctl inside a namespace (`ip netns exec NS sysctl -q -w KEY=VALUE`), e.g.
    /// `net.ipv4.ip_forward` = `1`: net.* keys are per namespace, so the host's stay as they were.
    public func setSysctl(_ key: String, _ value: String, netns: String) async throws {
        try Self.checkSysctlKey(key)
        let argv = [try Self.sysctlProgram(), "-q", "-w", "\(key)=\(value)"]
        let r = try await exec(in: netns, argv)
        guard r.ok else { throw Self.failure([program, "netns", "exec", netns] + argv, r) }
    }

    /// Reads a sysctl inside a namespace (`ip netns exec NS sysctl -n KEY`), trimmed.
    public func sysctl(_ key: String, netns: String) async throws -> String {
        try Self.checkSysctlKey(key)
        let argv = [try Self.sysctlProgram(), "-n", key]
        let r = try await exec(in: netns, argv)
        guard r.ok else { throw Self.failure([program, "netns", "exec", netns] + argv, r) }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: checks

    private func resolve() throws -> String {
        guard let path = which(program) else { throw SystemError("iproute2's `\(program)` not found on PATH: apt-get install -y iproute2") }
        return path
    }

    static func sysctlProgram() throws -> String {
        guard let path = which("sysctl") else { throw SystemError("sysctl not found on PATH: apt-get install -y procps") }
        return path
    }

    static func checkSysctlKey(_ key: String) throws {
        let ok = !key.isEmpty && !key.hasPrefix("-") && key.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "._-/".unicodeScalars.contains($0)
        }
        guard ok else { throw SystemError("sysctl key \"\(key)\" is not a key such as net.ipv4.ip_forward") }
    }

    /// An address with a prefix length: `10.213.77.1/24`, `fd00::1/64`.
    static func checkCIDR(_ cidr: String) throws {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        let addr = parts.first.map(String.init) ?? ""
        var v4 = in_addr(), v6 = in6_addr()
        let family: Int32? = inet_pton(AF_INET, addr, &v4) == 1 ? AF_INET : (inet_pton(AF_INET6, addr, &v6) == 1 ? AF_INET6 : nil)
        guard parts.count == 2, let family, let len = Int(parts[1]), len >= 0, len <= (family == AF_INET ? 32 : 128) else {
            throw SystemError("\"\(cidr)\" is not an address with a prefix length such as 10.213.77.1/24 or fd00::1/64")
        }
    }
}
