import Foundation
import EdgeMeterSystem

/// A snapshot of what edgemeter could leave behind on this host, taken to prove that nothing was:
/// network namespaces, links and bridges of the host's namespace, the host's iptables and nft rules
/// (counters removed), docker containers and networks labelled `edgemeter` or named `edgemeter-*`, LXC containers
/// named `edgemeter-*`, QEMU processes whose command line names an `edgemeter-` object, processes
/// running the edgemeter binary (workloads such as `serve calculator`), and the files under
/// /run/edgemeter/lab.
///
/// Each object is one entry `"<kind> <identity>"` (`netns edgemeter-two-subnet-rt1`,
/// `iptables filter -A FORWARD -s 10.203.0.0/24 -j ACCEPT`, `process edgemeter serve calculator
/// --role front`); identities leave out what changes without anything being created or removed
/// (link indexes and states, packet counters, PIDs). Entries are sorted; an object that exists
/// twice is listed twice. Collecting only reads the host: it runs `ip`, `iptables-save`, `nft`,
/// `docker ps`, `lxc-ls` and reads /proc, and never changes anything.
public struct HostInventory: Codable, Equatable, Sendable {
    /// One line per object, sorted.
    public var entries: [String]
    /// What could not be looked at, and why (a tool not installed, dockerd not answering): absent
    /// from `entries`, so two inventories with the same notes compare like for like.
    public var notes: [String]

    public init(entries: [String], notes: [String] = []) {
        self.entries = entries.sorted()
        self.notes = notes
    }

    /// The differences from `before` to `after`, one line each: `left behind: <entry>` for an entry
    /// of `after` that `before` does not have, `gone: <entry>` for the reverse (counted as a
    /// multiset: a second copy of an object is a difference too), then `not checked: <note>` for a
    /// note present in only one of them (the comparison is incomplete). Empty when they match.
    public static func diff(_ before: HostInventory, _ after: HostInventory) -> [String] {
        var count: [String: Int] = [:]
        for e in before.entries { count[e, default: 0] -= 1 }
        for e in after.entries { count[e, default: 0] += 1 }
        var lines: [String] = []
        for (entry, n) in count.sorted(by: { $0.key < $1.key }) where n != 0 {
            lines += Array(repeating: (n > 0 ? "left behind: " : "gone: ") + entry, count: abs(n))
        }
        let notes = Set(before.notes).symmetricDifference(after.notes).sorted()
        lines += notes.map { "not checked: \($0)" }
        return lines
    }

    /// The inventory as text, one entry per line, then the notes as `# not checked: ...` lines.
    public var text: String {
        (entries + notes.map { "# not checked: \($0)" }).map { $0 + "\n" }.joined()
    }

    // MARK: parsing (pure)

    /// Namespace names from `ip netns list` (`name (id: 3)` lines).
    public static func namespaces(ipNetnsList out: String) -> [String] {
        out.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    /// Link names from `ip -o link` (`7: em-9bf9-h0@if6: <...> mtu ...`), the `@peer` suffix removed.
    public static func links(ipOLink out: String) -> [String] {
        out.split(separator: "\n").compactMap { line in
            let f = line.split(separator: ":", maxSplits: 2)
            guard f.count >= 2, Int(f[0].trimmingCharacters(in: .whitespaces)) != nil else { return nil }
            let name = f[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? ""
            return name.isEmpty ? nil : name
        }
    }

    /// Rules from `iptables-save`: `<table> <rule>` per `-A` line and `<table> :CHAIN POLICY` per
    /// chain, packet and byte counters (`[4:336]`) and `#` comments (which carry the date) removed.
    public static func iptablesRules(_ save: String) -> [String] {
        var table = "?"
        var out: [String] = []
        for raw in save.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line == "COMMIT" { continue }
            if line.hasPrefix("*") { table = String(line.dropFirst()); continue }
            // Counters: a trailing `[p:b]` on chain lines, a leading one with `iptables-save -c`.
            line = line.replacingOccurrences(of: #"\s*\[\d+:\d+\]"#, with: "", options: .regularExpression)
                .trimmingCharacters(in: .whitespaces)
            out.append("\(table) \(line)")
        }
        return out
    }

    /// Rules from `nft list ruleset`: each statement prefixed with its `table FAMILY NAME` and
    /// `chain NAME`, counters (`counter packets N bytes M`) reduced to `counter`, rule handles removed.
    public static func nftRules(_ ruleset: String) -> [String] {
        var table = "", chain = ""
        var out: [String] = []
        for raw in ruleset.split(separator: "\n") {
            var line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line == "}" || line.hasPrefix("#") { continue }
            line = line.replacingOccurrences(of: #"counter packets \d+ bytes \d+"#, with: "counter", options: .regularExpression)
                .replacingOccurrences(of: #"\s*# handle \d+"#, with: "", options: .regularExpression)
            if line.hasPrefix("table ") { table = String(line.dropLast(line.hasSuffix("{") ? 1 : 0)).trimmingCharacters(in: .whitespaces); chain = ""; out.append(table); continue }
            if line.hasPrefix("chain ") { chain = String(line.dropLast(line.hasSuffix("{") ? 1 : 0)).trimmingCharacters(in: .whitespaces); out.append("\(table) \(chain)"); continue }
            out.append([table, chain, line].filter { !$0.isEmpty }.joined(separator: " "))
        }
        return out
    }

    /// A process's entry, or nil when it is not one of edgemeter's: `process edgemeter ARGS...` when
    /// it runs `binary` (its /proc exe link `exe`, or else its argv[0], equals it), `qemu ARGV...` when
    /// argv[0]'s name starts with `qemu` and an argument names an `edgemeter-` object.
    public static func processEntry(argv: [String], exe: String?, binary: String) -> String? {
        guard let first = argv.first else { return nil }
        if exe == binary || first == binary {
            return (["process edgemeter"] + argv.dropFirst()).joined(separator: " ")
        }
        let name = first.split(separator: "/").last.map(String.init) ?? first
        if name.hasPrefix("qemu"), argv.dropFirst().contains(where: { $0.contains(Names.prefix) }) {
            return (["qemu", name] + argv.dropFirst()).joined(separator: " ")
        }
        return nil
    }

    /// The names of edgemeter's Docker objects in `docker ... --format '{{.Name}}\t{{.Label "edgemeter"}}'`
    /// output (containers, networks): those carrying the `edgemeter` label, or named with the prefix.
    public static func edgemeterObjects(nameAndLabel output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard let name = f.first, !name.isEmpty else { return nil }
            let labelled = f.count > 1 && !f[1].isEmpty
            return labelled || name.hasPrefix(Names.prefix) ? name : nil
        }
    }

    // MARK: collecting (reads the host only)

    /// Takes the inventory. `binary` is the edgemeter executable whose processes count (resolved to
    /// its real path); processes in `excludingPIDs` (and this process) are left out, so the process
    /// taking the inventory is not in it. `stateDirectory` is the lab's state directory.
    public static func collect(binary: String, excludingPIDs: Set<Int32> = [], stateDirectory: String = "/run/edgemeter/lab",
                               ip: IPRoute = IPRoute()) async -> HostInventory {
        var entries: [String] = []
        var notes: [String] = []
        let realBinary = URL(fileURLWithPath: binary).resolvingSymlinksInPath().path

        async let netns = ip.result(["netns", "list"])
        async let links = ip.result(["-o", "link"])
        async let bridges = ip.result(["-o", "link", "show", "type", "bridge"])
        async let iptables = optionalTool("iptables-save", [])
        async let nft = optionalTool("nft", ["list", "ruleset"])
        async let docker = optionalTool("docker", ["ps", "-a", "--no-trunc", "--format", "{{.Names}}\t{{.Label \"edgemeter\"}}"], timeout: .seconds(5))
        async let dockerNetworks = optionalTool("docker", ["network", "ls", "--no-trunc", "--format", "{{.Name}}\t{{.Label \"edgemeter\"}}"], timeout: .seconds(5))
        async let lxc = optionalTool("lxc-ls", ["-1"])

        func add(_ kind: String, _ items: [String]) { entries += items.map { "\(kind) \($0)" } }
        if let r = try? await netns, r.ok { add("netns", namespaces(ipNetnsList: r.stdout)) } else { notes.append("network namespaces: `ip netns list` failed (install iproute2, run as root)") }
        if let r = try? await links, r.ok { add("link", Self.links(ipOLink: r.stdout)) } else { notes.append("links: `ip -o link` failed (install iproute2)") }
        if let r = try? await bridges, r.ok { add("bridge", Self.links(ipOLink: r.stdout)) } else { notes.append("bridges: `ip -o link show type bridge` failed") }
        switch await iptables {
        case .ran(let r) where r.ok: add("iptables", iptablesRules(r.stdout))
        case .ran(let r): notes.append("iptables: `iptables-save` exited \(r.status): \(r.combined.prefix(200)) (run as root)")
        case .missing: notes.append("iptables: iptables-save not installed")
        }
        switch await nft {
        case .ran(let r) where r.ok: add("nft", nftRules(r.stdout))
        case .ran(let r): notes.append("nft: `nft list ruleset` exited \(r.status): \(r.combined.prefix(200)) (run as root)")
        case .missing: notes.append("nft: nft not installed")
        }
        switch await docker {
        case .ran(let r) where r.ok: add("docker", edgemeterObjects(nameAndLabel: r.stdout))
        case .ran(let r): notes.append("docker: dockerd not answering (`docker ps` exited \(r.status)\(r.timedOut ? ", timed out after 5 s" : ""))")
        case .missing: notes.append("docker: docker CLI not installed")
        }
        switch await dockerNetworks {
        case .ran(let r) where r.ok: add("docker-network", edgemeterObjects(nameAndLabel: r.stdout))
        case .ran(let r): notes.append("docker networks: `docker network ls` exited \(r.status)\(r.timedOut ? ", timed out after 5 s" : "")")
        case .missing: notes.append("docker networks: docker CLI not installed")
        }
        switch await lxc {
        case .ran(let r) where r.ok:
            add("lxc", r.stdout.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0.hasPrefix(Names.prefix) })
        case .ran(let r): notes.append("lxc: `lxc-ls -1` exited \(r.status)")
        case .missing: notes.append("lxc: lxc-ls not installed")
        }

        let skip = excludingPIDs.union([getpid()])
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
        for pid in pids where !skip.contains(pid) {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { continue }
            let argv = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            let args = argv.last == "" ? Array(argv.dropLast()) : argv
            let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
            if let e = processEntry(argv: args, exe: exe, binary: realBinary) ?? processEntry(argv: args, exe: exe, binary: binary) {
                entries.append(e)
            }
        }

        if let walker = FileManager.default.enumerator(atPath: stateDirectory) {
            for case let rel as String in walker { entries.append("file \(stateDirectory)/\(rel)") }
        }
        return HostInventory(entries: entries, notes: notes)
    }

    enum ToolResult: Sendable { case ran(CommandResult), missing }

    static func optionalTool(_ name: String, _ args: [String], timeout: Duration = .seconds(10)) async -> ToolResult {
        guard let path = which(name) else { return .missing }
        guard let r = try? await Command.run([path] + args, timeout: timeout) else { return .missing }
        return .ran(r)
    }
}
