import Foundation
import EdgeMeterSystem
import EdgeMeterStartup

// lxc nodes: LXC's busybox template (offline), network type `empty` (a namespace with only lo,
// wired by the plan once attached), the init a busybox sh script that waits for the go file and
// then execs the workload, its output in /edgemeter.log of the container.

extension LabExecutor {
    /// Where the edgemeter binary appears inside an lxc node (bind-mounted read-only from the host).
    public static let lxcBinaryPath = "/usr/local/bin/edgemeter"

    /// The init script of an lxc node: output to /edgemeter.log, the workload as its arguments
    /// (`edgemeter` replaced by `lxcBinaryPath`), then `NodeLaunch.waitScript`.
    public static func lxcInitScript(workload: [String]) -> String {
        let argv = workload.map { $0 == "edgemeter" ? lxcBinaryPath : $0 }
        return "#!/bin/sh\nexec >/edgemeter.log 2>&1\n"
            + (argv.isEmpty ? "set --\n" : "set -- " + argv.map(shellQuote).joined(separator: " ") + "\n")
            + TopologyPlan.NodeLaunch.waitScript + "\n"
    }

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The template's configuration with its network replaced by `empty`, the init by
    /// `/edgemeter-node`, and bind mounts for the edgemeter binary and the library directories it
    /// needs that the template does not mount already (/lib, /usr/lib, /lib64 are).
    public static func lxcConfig(template: String, binary: String?, libraryDirectories: [String]) -> String {
        var lines = template.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("lxc.net.") && !$0.hasPrefix("lxc.init.cmd") }
        while lines.last?.isEmpty == true { lines.removeLast() }
        lines += ["", "# edgemeter lab node", "lxc.net.0.type = empty", "lxc.init.cmd = /edgemeter-node", "lxc.signal.halt = SIGTERM"]
        if let binary {
            lines.append("lxc.mount.entry = \(binary) \(lxcBinaryPath.dropFirst()) none ro,bind,create=file 0 0")
            for dir in libraryDirectories {
                lines.append("lxc.mount.entry = \(dir) \(dir.dropFirst()) none ro,bind,create=dir,optional 0 0")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Directories of the shared libraries `ldd BINARY` resolves outside the ones LXC's busybox
    /// template mounts (the Swift runtime under /opt/swift, for instance).
    static func libraryDirectories(of binary: String) async -> [String] {
        guard let r = try? await Command.run([which("ldd") ?? "/usr/bin/ldd", binary], timeout: .seconds(10)), r.ok else { return [] }
        var dirs: [String] = []
        for line in r.stdout.split(separator: "\n") {
            guard let arrow = line.range(of: "=> ") else { continue }
            let path = line[arrow.upperBound...].split(separator: " ").first.map(String.init) ?? ""
            guard path.hasPrefix("/") else { continue }
            let dir = (path as NSString).deletingLastPathComponent
            let covered = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"].contains { dir == $0 || dir.hasPrefix($0 + "/") }
            if !covered && !dirs.contains(dir) { dirs.append(dir) }
        }
        return dirs
    }

    func startLXC(_ l: TopologyPlan.NodeLaunch, binary: String?) async throws {
        let create = try await tool(["lxc-create", "-n", l.name, "-t", "busybox"], timeout: .seconds(120))
        guard create.ok else {
            throw LabError(.stepFailed, "node \(l.node): `lxc-create -n \(l.name) -t busybox` failed: \(create.combined)", command: ["lxc-create", "-n", l.name, "-t", "busybox"], output: create.combined)
        }
        let root = "\(LXCBackend.lxcPath)/\(l.name)"
        let usesBinary = l.workload.contains("edgemeter")
        let bin = usesBinary ? binary : nil
        let libs = bin == nil ? [] : await Self.libraryDirectories(of: bin!)
        do {
            let template = try String(contentsOfFile: "\(root)/config", encoding: .utf8)
            try Self.lxcConfig(template: template, binary: bin, libraryDirectories: libs).write(toFile: "\(root)/config", atomically: true, encoding: .utf8)
            let initPath = "\(root)/rootfs/edgemeter-node"
            guard FileManager.default.createFile(atPath: initPath, contents: Data(Self.lxcInitScript(workload: l.workload).utf8),
                                                 attributes: [.posixPermissions: 0o755]) else {
                throw LabError(.stepFailed, "node \(l.node): cannot write \(initPath); is \(LXCBackend.lxcPath) writable (run as root)?")
            }
        } catch let e as LabError { throw e } catch {
            throw LabError(.stepFailed, "node \(l.node): cannot configure lxc container \(l.name): \(error)")
        }
        let start = try await tool(["lxc-start", "-n", l.name, "-d"])
        guard start.ok else {
            throw LabError(.stepFailed, "node \(l.node): `lxc-start -n \(l.name) -d` failed: \(start.combined); see `lxc-start -n \(l.name) -F -l DEBUG`",
                           command: ["lxc-start", "-n", l.name, "-d"], output: start.combined)
        }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        var last = ""
        while clock.now < deadline {
            let r = try await tool(["lxc-info", "-n", l.name, "-s", "-H"])
            last = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if last == "RUNNING" { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw LabError(.stepFailed, "node \(l.node): lxc container \(l.name) is \(last.isEmpty ? "not" : last) RUNNING 10 s after lxc-start; its output: \(await nodeLog(.lxc, l.name))")
    }
}
