import EdgeMeterCore
import EdgeMeterSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An OCI runtime (`runc` or `crun`) driven directly, with no daemon: what is left of `docker run`
/// once dockerd, containerd and the shim are taken away. Compare it with the docker and podman
/// backends to see how much of a container start is the daemon and how much the runtime.
///
/// `prepare` builds one OCI bundle rootfs per run from the files `ImageBuilder` puts into
/// `edgemeter-base` (busybox-static with its applet links, plus optional binaries and their `ldd`
/// libraries), extracted with `tar` into `/tmp/edgemeter-oci-<tag>/rootfs` (read-only for the
/// containers, `/tmp` is a tmpfs). Each attempt gets its own bundle directory with a `config.json`
/// written here (the `runc spec` defaults: namespaces pid, ipc, uts, mount and network; capabilities
/// AUDIT_WRITE, KILL, NET_BIND_SERVICE; no new privileges). With ready exit or marker the network
/// namespace is new and empty (like `--network none`); with tcp, http or icmp it is a named one
/// (`ip netns add ID`) with a veth pair into the bridge `edgemeter-oci0` (10.213.78.1/24, created by
/// the run when missing and deleted at its end) and the address 10.213.78.(10 + n).
///
/// Phases, timed on the client with a monotonic clock; every command is an argument list:
/// - create: for tcp/http/icmp the network namespace and veth (6 `ip` commands, ≈ 10-20 ms), then
///   writing `config.json` + `RUNTIME create --bundle DIR --pid-file DIR/pid ID` until it exits 0
///   (namespaces and cgroups set up, the container process waiting for start);
/// - start: `RUNTIME start ID` until it exits 0;
/// - running: polling `RUNTIME state ID` (1 ms apart; each poll forks the runtime, ≈ 2-5 ms) until
///   `running` or already `stopped`;
/// - ready: the runner's check on what the instance exposes: the container process's exit status
///   (reaped by edgemeter, which is its child subreaper during the run), its stdout/stderr (which
///   the runtime passes through to a file) and the container's address on the bridge;
/// - stop: `RUNTIME kill ID TERM` until the process is gone (SIGKILL after 2 s, like `docker stop -t 2`);
/// - remove: `RUNTIME delete ID` until it exits 0, the network namespace (and with it the veth) and the
///   bundle directory removed.
public final class OCIRuntimeBackend: StartupBackend, @unchecked Sendable {
    /// Absolute path of the runtime binary.
    public let runtime: String
    /// `runc` or `crun` (the binary's name): the backend name on every sample.
    public let runtimeName: String
    public let runTag: String
    /// Workload command; nil = the built-in busybox workload for the ready check.
    public let command: [String]?
    /// Extra binaries in the rootfs (host path, path inside), with their shared libraries.
    public let binaries: [(source: String, destination: String)]
    /// Where this run's bundles live; removed by `cleanup`.
    public let bundleRoot: String
    public var name: String { runtimeName }
    public var labels: [String: String] {
        var l = ["runtime": version.isEmpty ? runtimeName : version, "rootfs": "edgemeter-base files (busybox-static)"]
        if let ms = bundleMilliseconds { l["bundle_ms"] = String(format: "%.1f", ms) }
        return l
    }
    /// Milliseconds `prepare` took to write and extract the rootfs (once per run, not in any attempt).
    public private(set) var bundleMilliseconds: Double?
    private var version = ""
    private let lock = NSLock()
    private var created: [String: OCIInstance] = [:]
    private var reaper: SubreaperScope?

    public static let bundlePrefix = "/tmp/edgemeter-oci-"
    /// The bridge networked containers join, and its address (containers get .10, .11, ... of its /24).
    public static let bridge = "edgemeter-oci0"
    public static let bridgeAddress = "10.213.78.1"
    private var createdBridge = false
    private var bridgeReady = false

    public init(runtime: String, runID: String, command: [String]? = nil, binaries: [(source: String, destination: String)] = []) {
        self.runtime = runtime
        self.runtimeName = URL(fileURLWithPath: runtime).lastPathComponent
        self.runTag = instanceTag(runID)
        self.command = command
        self.binaries = binaries
        self.bundleRoot = Self.bundlePrefix + instanceTag(runID)
    }

    /// The controllers of the cgroup v2 hierarchy at /sys/fs/cgroup/unified on a hybrid host (v1
    /// controllers plus v2), which crun refuses ("cgroups in hybrid mode not supported, drop all
    /// controllers from cgroupv2"); nil when there are none or the host is not hybrid.
    static func hybridV2Controllers() -> String? {
        guard let text = try? String(contentsOfFile: "/sys/fs/cgroup/unified/cgroup.controllers", encoding: .utf8) else { return nil }
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }

    /// Whether `check` needs the container to be reachable from the host (veth + bridge).
    static func needsNetwork(_ check: ReadyCheck) -> Bool {
        switch check {
        case .exit, .marker: return false
        case .tcp, .http, .icmp: return true
        }
    }

    /// Creates the bridge when missing (remembered, so `cleanup` deletes only what this run made).
    func ensureBridge() async throws {
        if lock.withLock({ bridgeReady }) { return }
        do {
            if try await IPRoute().ensureBridge(Self.bridge, address: "\(Self.bridgeAddress)/24") { lock.withLock { createdBridge = true } }
        } catch let e as SystemError {
            throw StartupError(bridgeFailure: Self.bridge, e)
        }
        lock.withLock { bridgeReady = true }
    }

    /// A network namespace named `id` with `eth0` at `address`/24, its veth peer `hostIf` in the bridge.
    func makeNetwork(id: String, hostIf: String, address: String) async throws {
        try await ensureBridge()
        do {
            try await IPRoute().addNamespace(id, hostEnd: hostIf, namespaceEnd: "eth0", namespaceAddress: "\(address)/24", bridge: Self.bridge)
        } catch let e as SystemError {
            if e.command.isEmpty || e.status == nil { throw StartupError("setting up the network of \(id) failed: \(e.message)") }
            throw StartupError("setting up the network of \(id) failed (\(e.commandLine): \(e.output))")
        }
    }

    public func prepare(stop: StopFlag) async throws {
        guard FileManager.default.isExecutableFile(atPath: runtime) else {
            throw StartupError("\(runtime) not found: apt-get install -y \(runtimeName)")
        }
        guard geteuid() == 0 else { throw StartupError("\(runtimeName) containers need root here: run edgemeter as root") }
        let v = try await runCommand([runtime, "--version"])
        guard v.ok else { throw StartupError("\(runtime) --version failed: \(v.combined)") }
        version = v.stdout.split(separator: "\n").first.map(String.init) ?? runtimeName
        if runtimeName == "crun", let controllers = Self.hybridV2Controllers() {
            // crun 1.8 refuses this layout even with --cgroup-manager=disabled.
            throw StartupError("crun refuses this host's cgroups (hybrid v1/v2 with controllers on cgroup v2: \(controllers)): "
                + "run scripts/setup-engines.sh, which mounts them as v1 hierarchies "
                + "(mkdir -p /sys/fs/cgroup/NAME && mount -t cgroup -o NAME cgroup /sys/fs/cgroup/NAME)")
        }
        guard which("tar") != nil else { throw StartupError("tar not found: apt-get install -y tar") }
        let t0 = ContinuousClock.now
        let rootfs = "\(bundleRoot)/rootfs"
        try? FileManager.default.removeItem(atPath: bundleRoot)
        try FileManager.default.createDirectory(atPath: rootfs, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let (tar, _) = try await ImageBuilder(binaries: binaries).makeTar()
        let tarPath = "\(bundleRoot)/rootfs.tar"
        guard FileManager.default.createFile(atPath: tarPath, contents: Data(tar)) else {
            throw StartupError("cannot write \(tarPath): check free space in /tmp")
        }
        let x = try await runCommand(["tar", "-x", "-f", tarPath, "-C", rootfs])
        try? FileManager.default.removeItem(atPath: tarPath)
        guard x.ok else { throw StartupError("extracting the rootfs into \(rootfs) failed: \(x.combined)") }
        bundleMilliseconds = Double((ContinuousClock.now - t0).nanoseconds) / 1e6
        // The container process is re-parented to us when `RUNTIME create` exits, so we can reap it
        // and read its exit status (no daemon, no shim keeps it for us).
        reaper = SubreaperScope()
    }

    public func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance {
        let id = "edgemeter-\(runTag)-\(index + 1)"
        let dir = "\(bundleRoot)/\(id)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let instance = OCIInstance(backend: self, id: id, dir: dir)
        lock.withLock { created[id] = instance }
        var netnsPath: String?
        if Self.needsNetwork(ready) {
            let address = Self.bridgeAddress.split(separator: ".").dropLast().joined(separator: ".") + ".\(10 + index % 240)"
            instance.netns = id
            instance.address = address
            try await makeNetwork(id: id, hostIf: "eo\(runTag.prefix(8))\(index % 100)", address: address)
            netnsPath = "/var/run/netns/\(id)"
            instance.setLabel("network", "veth into \(Self.bridge)")
        } else {
            instance.setLabel("network", "none")
        }
        let args = command ?? (ready == .exit ? ["/bin/true"] : ["/bin/sh", "-c", Workload.script(for: ready)])
        let config = Self.config(args: args, rootfs: "\(bundleRoot)/rootfs", hostname: id, netns: netnsPath)
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: "\(dir)/config.json"))
        let status = try await instance.runtimeTool(["create", "--bundle", dir, "--pid-file", "\(dir)/pid", id])
        guard status == 0 else {
            throw StartupError("\(runtimeName) create \(id) exited with status \(status): \(instance.output.suffix(400))")
        }
        guard let text = try? String(contentsOfFile: "\(dir)/pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw StartupError("\(runtimeName) create \(id) wrote no pid file")
        }
        instance.pid = pid
        return instance
    }

    /// The bundle's `config.json`: `runc spec` defaults, read-only rootfs, `/tmp` on tmpfs; the network
    /// namespace is `netns` (a path under /var/run/netns) or a new, empty one.
    static func config(args: [String], rootfs: String, hostname: String, netns: String? = nil) -> [String: Any] {
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        func mount(_ dest: String, _ type: String, _ source: String, _ options: [String]) -> [String: Any] {
            ["destination": dest, "type": type, "source": source, "options": options]
        }
        return [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": false,
                "user": ["uid": 0, "gid": 0],
                "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
                "cwd": "/",
                "capabilities": ["bounding": caps, "effective": caps, "permitted": caps],
                "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]],
                "noNewPrivileges": true,
            ] as [String: Any],
            "root": ["path": rootfs, "readonly": true],
            "hostname": String(hostname.prefix(63)),
            "mounts": [
                mount("/proc", "proc", "proc", []),
                mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
                mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
                mount("/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=1777", "size=65536k"]),
            ],
            "linux": [
                "resources": ["devices": [["allow": false, "access": "rwm"]]],
                "namespaces": ["pid", "network", "ipc", "uts", "mount"].map { t -> [String: String] in
                    if t == "network", let netns { return ["type": t, "path": netns] }
                    return ["type": t]
                },
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            ] as [String: Any],
        ]
    }

    func forget(_ id: String) {
        lock.withLock { _ = created.removeValue(forKey: id) }
    }

    public func cleanup() async {
        let left: [OCIInstance] = lock.withLock { let l = Array(created.values); created = [:]; return l }
        for inst in left {
            _ = try? await inst.runtimeTool(["delete", "--force", inst.id])
            inst.reap(block: false)
            if let ns = inst.netns { try? await IPRoute().deleteNamespace(ns) }
        }
        _ = await Self.removeLeftovers(runtimes: [runtime], prefix: "edgemeter-\(runTag)-")
        try? FileManager.default.removeItem(atPath: bundleRoot)
        if lock.withLock({ createdBridge }) {
            try? await IPRoute().deleteLink(Self.bridge)
        }
        lock.withLock { createdBridge = false; bridgeReady = false }
        reaper = nil
    }

    /// Force-deletes every container of `runtimes` (default: runc and crun where installed) whose ID
    /// starts with `prefix`, the network namespaces named so, and (with the default runtimes) the
    /// `/tmp/edgemeter-oci-*` bundles and the bridge `edgemeter-oci0`. Returns what was removed.
    public static func removeLeftovers(runtimes: [String]? = nil, prefix: String = "edgemeter-") async -> [String] {
        var removed: [String] = []
        for rt in runtimes ?? ["runc", "crun"].compactMap({ which($0) }) {
            guard let r = try? await runCommand([rt, "list", "-q"]), r.ok else { continue }
            let name = URL(fileURLWithPath: rt).lastPathComponent
            removed += await removeEach(r.stdout, prefix: prefix) { id in
                (try? await runCommand([rt, "delete", "--force", id]))?.ok == true ? "\(name) container \(id)" : nil
            }
        }
        let ip = IPRoute()
        if let names = try? await ip.namespaces() {
            for ns in names where ns.hasPrefix(prefix) {
                if (try? await ip.deleteNamespace(ns)) != nil { removed.append("network namespace \(ns)") }
            }
        }
        if runtimes == nil, FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)"),
           (try? await ip.deleteLink(bridge)) != nil {
            removed.append("bridge \(bridge)")
        }
        if runtimes == nil, let items = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") {
            for item in items where ("/tmp/" + item).hasPrefix(bundlePrefix) {
                try? FileManager.default.removeItem(atPath: "/tmp/" + item)
                removed.append("bundle /tmp/\(item)")
            }
        }
        return removed
    }
}

final class OCIInstance: StartupInstance, @unchecked Sendable {
    let backend: OCIRuntimeBackend
    let id: String
    let dir: String
    /// The container's init process (from the pid file); our child once `create` returned.
    var pid: Int32 = 0
    /// The named network namespace and address, for tcp/http/icmp ready checks.
    var netns: String?
    var address: String?
    private let lock = NSLock()
    private var exitStatus: Int32?
    private var extra: [String: String] = [:]
    func setLabel(_ key: String, _ value: String) { lock.withLock { extra[key] = value } }
    var name: String { id }
    var labels: [String: String] { lock.withLock { extra } }
    var logPath: String { "\(dir)/output.log" }

    init(backend: OCIRuntimeBackend, id: String, dir: String) {
        self.backend = backend
        self.id = id
        self.dir = dir
    }

    /// What the container and the runtime wrote to stdout/stderr so far.
    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Runs `RUNTIME args...` with stdout and stderr appended to the instance's log file (the
    /// container inherits them: a pipe would stay open as long as the container runs). Returns the
    /// exit status.
    func runtimeTool(_ args: [String]) async throws -> Int32 {
        let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StartupError("cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let child = try SpawnedProcess([backend.runtime] + args, outputFD: fd)
        return await withCheckedContinuation { cont in
            DispatchQueue.global().async { cont.resume(returning: child.waitBlocking()) }
        }
    }

    /// Reaps the container process if it exited; true once it is gone. Falls back to the runtime's
    /// state when the process is not our child (no subreaper): then the exit status is unknown.
    @discardableResult
    func reap(block: Bool) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if exitStatus != nil { return true }
        guard pid > 0 else { return true }
        var status: Int32 = 0
        let r = waitpid(pid, &status, block ? 0 : WNOHANG)
        if r == pid {
            exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            extra["exit_status"] = String(exitStatus!)
            return true
        }
        if r < 0 && errno == ECHILD {
            if kill(pid, 0) != 0 && errno == ESRCH {
                exitStatus = -1
                extra["exit_status"] = "unknown (not our child)"
                return true
            }
        }
        return false
    }

    func state() async throws -> String {
        let r = try await runCommand([backend.runtime] + ["state", id])
        guard r.ok, let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let status = obj["status"] as? String else {
            throw StartupError("\(backend.runtimeName) state \(id) failed: \(r.combined.prefix(300))")
        }
        return status
    }

    func start() async throws {
        let status = try await runtimeTool(["start", id])
        guard status == 0 else { throw StartupError("\(backend.runtimeName) start \(id) exited with status \(status): \(output.suffix(400))") }
    }

    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws {
        try await poll("\(id) running", until: deadline, stop: stop, interval: .milliseconds(1)) {
            let s = try await self.state()
            return s == "running" || s == "stopped"
        }
    }

    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress {
        let known: String? = self.address
        guard let host = known else { throw StartupError("\(id) has no network (created for ready exit or marker)") }
        return InstanceAddress(host: host)
    }

    /// The container process's exit status, reaped by edgemeter (its child subreaper). A process
    /// that is gone but was not our child leaves its status unknown.
    func workloadState() async throws -> WorkloadState {
        guard reap(block: false) else { return .running }
        let code = lock.withLock { exitStatus ?? -1 }
        guard code >= 0 else {
            return .unknown("\(id)'s process is gone but was not edgemeter's child, so its exit status is unknown "
                + "(the subreaper was not set: was prctl(PR_SET_CHILD_SUBREAPER) refused?)")
        }
        return .exited(status: Int(code))
    }

    /// What the container and the runtime wrote to stdout/stderr so far.
    func log() async throws -> String { output }

    func stop() async throws {
        if reap(block: false) { return }
        _ = try await runtimeTool(["kill", id, "TERM"])
        let deadline = ContinuousClock.now + .seconds(2)
        while !reap(block: false) {
            if ContinuousClock.now >= deadline {
                _ = try await runtimeTool(["kill", id, "KILL"])
                try await poll("\(id) to die after SIGKILL", until: .after(.seconds(10)), stop: StopFlag()) { self.reap(block: false) }
                lock.withLock { extra["stop"] = "SIGKILL after 2 s" }
                return
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    func remove() async throws {
        let status = try await runtimeTool(["delete", id])
        guard status == 0 else { throw StartupError("\(backend.runtimeName) delete \(id) exited with status \(status): \(output.suffix(300))") }
        if let ns = netns {
            do {
                try await IPRoute().deleteNamespace(ns)
            } catch let e as SystemError {
                throw StartupError(e.status == nil ? "ip netns del \(ns) failed: \(e.message)" : "ip netns del \(ns) failed: \(e.output)")
            }
        }
        backend.forget(id)
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Makes this process the child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`) while it lives, so a
/// container process whose parent (`runc create`) exited becomes our child and its exit status can be
/// read. Orphans of other tools are re-parented to us only during an OCI run.
final class SubreaperScope: @unchecked Sendable {
    private typealias Prctl = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    private let prctl: Prctl?
    private let previous: Bool
    private static let setSubreaper: Int32 = 36  // PR_SET_CHILD_SUBREAPER
    private static let getSubreaper: Int32 = 37  // PR_GET_CHILD_SUBREAPER

    init() {
        // prctl is variadic in C and not imported into Swift; call it through its symbol.
        if let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "prctl") {
            prctl = unsafeBitCast(sym, to: Prctl.self)
        } else {
            prctl = nil
        }
        var was: Int32 = 0
        if let prctl {
            withUnsafeMutablePointer(to: &was) { _ = prctl(Self.getSubreaper, UInt(bitPattern: $0), 0, 0, 0) }
            _ = prctl(Self.setSubreaper, 1, 0, 0, 0)
        }
        previous = was != 0
    }

    deinit {
        if let prctl, !previous { _ = prctl(Self.setSubreaper, 0, 0, 0, 0) }
    }
}
