import Foundation
import EdgeMeterCore
import EdgeMeterSystem
import EdgeMeterHTTP

/// Where the footprint kind runs its one workload.
public enum FootprintDeploymentKind: String, CaseIterable, Sendable {
    /// A host process (the edgemeter binary, or `command` as given), on 127.0.0.1.
    case process
    /// A Docker container on the default bridge (docker0), through the Engine API.
    case docker
    /// A podman container on podman's default network, through its Docker-compatible API.
    case podman
    /// An LXC container from the busybox template, with the edgemeter binary and its `ldd`
    /// libraries copied into its rootfs, on the bridge `edgemeter-br0`.
    case lxc
    /// A QEMU VM (TCG) booted from the cached kernel and edgemeter's busybox initramfs, reached
    /// through a user-mode network forward 127.0.0.1:P → guest port. For the calculator the
    /// initramfs also carries a stripped copy of the edgemeter binary and every library `ldd`
    /// lists for it (as the LXC rootfs and the image get them).
    case qemu

    /// The deployments measured when none are named.
    public static let measurable: [FootprintDeploymentKind] = [.process, .docker, .podman, .lxc]
}

/// What the footprint kind deploys: the same service for every deployment.
public struct FootprintWorkload: Sendable, Equatable {
    /// docker/podman image (holds /usr/local/bin/edgemeter: `edgemeter image build`).
    public var image: String
    /// The service command inside a container; `{port}` is replaced by `port`. The process
    /// deployment runs the same command with `edgemeter` replaced by `binary` and the host
    /// `0.0.0.0` by `127.0.0.1`.
    public var command: [String]
    /// The host binary `edgemeter` stands for in the process deployment.
    public var binary: String
    /// The service's port inside a container (the process gets a free loopback port).
    public var port: Int
    /// The request path the load sends (`GET`).
    public var path: String

    public init(image: String, command: [String], binary: String, port: Int, path: String) {
        (self.image, self.command, self.binary, self.port, self.path) = (image, command, binary, port, path)
    }

    /// The calculator's `sum` operation service.
    public static let defaultCommand = ["edgemeter", "serve", "calculator", "--role", "sum", "--host", "0.0.0.0", "--port", "{port}"]
    public static let defaultPath = "/sum?a=1&b=2"
    /// The busybox httpd workload (every deployment, the VM included), serving /www/index.html.
    public static let httpdCommand = ["busybox", "httpd", "-f", "-p", "{port}", "-h", "/www"]
    public static let httpdPath = "/index.html"
    /// Whether the command needs the edgemeter binary (a Swift runtime) where it runs.
    public var needsEdgemeter: Bool { command.first == "edgemeter" }
    /// Shell lines that create the document root a busybox httpd command serves (/www).
    var wwwSetup: String { command.contains("/www") ? "mkdir -p /www; echo edgemeter > /www/index.html\n" : "" }

    func containerCommand() -> [String] { command.map { $0.replacingOccurrences(of: "{port}", with: String(port)) } }

    func processCommand(port: Int, www: String? = nil) -> [String] {
        command.map { a -> String in
            if a == "edgemeter" { return binary }
            if a == "/www", let www { return www }
            if a == "0.0.0.0" { return "127.0.0.1" }
            return a.replacingOccurrences(of: "{port}", with: String(port))
        }
    }
}

/// One reading of a deployment's counters, all taken within a few milliseconds.
///
/// - workload: the process deployment's process tree (PSS from smaps_rollup, utime+stime from
///   /proc/PID/stat of every live process in it); a container's cgroup (memory.current or
///   memory.usage_in_bytes, cpu.stat usage_usec or cpuacct.usage) plus the PSS/RSS of its processes.
/// - layer: what the engine runs beside this one container: containerd-shim (docker) or conmon
///   (podman), the parent of the container's first process. PSS and utime+stime.
/// - engine: the engine daemons every container shares (dockerd + containerd; podman's API
///   service): PSS and utime+stime, reported apart.
/// - net: the deployment's interface: `lo` of the host for a process, `eth0` inside a container.
public struct FootprintReading: Sendable, Equatable {
    /// CLOCK_MONOTONIC at the reading, seconds.
    public var monotonicSeconds: Double
    /// cgroup memory for a container, PSS of the tree for a process.
    public var workloadMemoryBytes: UInt64
    public var workloadPSSBytes: UInt64
    public var workloadRSSBytes: UInt64
    public var workloadCPUSeconds: Double
    public var layerPSSBytes: UInt64
    public var layerCPUSeconds: Double
    public var enginePSSBytes: UInt64
    public var engineCPUSeconds: Double
    public var net: InterfaceCounters
    /// Bytes the requests and answers put on the interface, both directions: on `lo` every packet
    /// appears once as tx and once as rx, so only tx counts; on a container's eth0, rx + tx.
    public var exchangeBytes: UInt64
    public var exchangePackets: UInt64

    public init(monotonicSeconds: Double, workloadMemoryBytes: UInt64, workloadPSSBytes: UInt64, workloadRSSBytes: UInt64,
                workloadCPUSeconds: Double, layerPSSBytes: UInt64, layerCPUSeconds: Double, enginePSSBytes: UInt64,
                engineCPUSeconds: Double, net: InterfaceCounters, loopback: Bool) {
        self.monotonicSeconds = monotonicSeconds
        self.workloadMemoryBytes = workloadMemoryBytes
        self.workloadPSSBytes = workloadPSSBytes
        self.workloadRSSBytes = workloadRSSBytes
        self.workloadCPUSeconds = workloadCPUSeconds
        self.layerPSSBytes = layerPSSBytes
        self.layerCPUSeconds = layerCPUSeconds
        self.enginePSSBytes = enginePSSBytes
        self.engineCPUSeconds = engineCPUSeconds
        self.net = net
        self.exchangeBytes = loopback ? net.txBytes : net.bytes
        self.exchangePackets = loopback ? net.txPackets : net.packets
    }
}

/// Disk a deployment occupies.
public struct FootprintDisk: Sendable, Equatable {
    /// docker/podman: `GET /images/NAME/json` Size; process: the binary's file size.
    public var imageBytes: UInt64?
    /// docker/podman: `GET /containers/ID/json?size=1` SizeRw after the run; process: nil.
    public var writableBytes: UInt64?
}

/// One deployment of the footprint workload: start, read its counters, restart in place, remove.
public final class FootprintDeployment: @unchecked Sendable {
    public let kind: FootprintDeploymentKind
    public let workload: FootprintWorkload
    let runTag: String
    private let lock = NSLock()
    private var child: ChildProcess?
    private var backend: DockerBackend?
    private var containerID: String?
    private var workloadPID: Int32 = 0
    private var layerPID: Int32?
    private var enginePIDs: [Int32] = []
    private var cgroup: ProcReader.CgroupFiles?
    /// The process deployment's two iptables rules (OUTPUT -o lo, to and from its port) are in place.
    private var countingRules = false
    var ruleComment: String { Self.ruleCommentPrefix + instanceTag(runTag) }
    func ruleSpecs() -> [[String]] {
        ["--dport", "--sport"].map { ["OUTPUT", "-o", "lo", "-p", "tcp", $0, String(port), "-m", "comment", "--comment", ruleComment] }
    }

    /// Counts the packets of the process deployment on lo with two rule counters: lo is shared
    /// with everything else on the host, its interface counters are not this service's.
    func addCountingRules() -> Bool {
        guard let ipt = which("iptables") else { return false }
        for spec in ruleSpecs() {
            guard let r = try? Command.runBlocking([ipt, "-w", "-I"] + spec, timeout: .seconds(10)), r.ok else { removeCountingRules(); return false }
        }
        return true
    }

    func removeCountingRules() {
        guard let ipt = which("iptables") else { return }
        for spec in ruleSpecs() { _ = try? Command.runBlocking([ipt, "-w", "-D"] + spec, timeout: .seconds(10)) }
    }

    /// The comment every footprint counting rule carries, followed by the run's instance tag: the
    /// rule's record in the host's filter table, which `edgemeter cleanup` looks for.
    public static let ruleCommentPrefix = "edgemeter-footprint-"

    /// Deletes the filter-table rules whose comment starts with `prefix` (a footprint run killed
    /// before its end leaves its two counting rules); returns what it removed. Nothing without
    /// iptables.
    public static func removeLeftoverRules(prefix: String = ruleCommentPrefix) -> [String] {
        guard let ipt = which("iptables"), let r = try? Command.runBlocking([ipt, "-w", "-S"], timeout: .seconds(10)), r.ok else { return [] }
        var removed: [String] = []
        for spec in ProcFS.ruleDeletions(r.stdout, commentPrefix: prefix) {
            if let d = try? Command.runBlocking([ipt, "-w", "-D"] + spec, timeout: .seconds(10)), d.ok {
                removed.append("iptables rule -A " + spec.joined(separator: " "))
            }
        }
        return removed
    }

    /// Whether the network figures can be measured (the process deployment needs its iptables rules).
    public var measuresNetwork: Bool { !countsOnLoopback || countingRules }
    /// The process and the VM (user-mode forward) are reached over lo: their packets are counted
    /// by the iptables rules on their port.
    var countsOnLoopback: Bool { kind == .process || kind == .qemu }

    /// Where the load goes: 127.0.0.1:free port, or the container's address and `workload.port`.
    public private(set) var host = "127.0.0.1"
    public private(set) var port = 0

    public init(kind: FootprintDeploymentKind, workload: FootprintWorkload, runID: String) {
        (self.kind, self.workload, self.runTag) = (kind, workload, runID)
    }

    /// Starts the workload and finds its processes, cgroup and interface. Does not wait for the
    /// service to answer (the caller does, with its HTTP client).
    public func start() async throws {
        switch kind {
        case .process:
            port = try Self.freeLoopbackPort()
            countingRules = addCountingRules()
            if workload.command.contains("/www") {
                let dir = NSTemporaryDirectory() + "edgemeter-footprint-www-\(instanceTag(runTag))"
                try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                FileManager.default.createFile(atPath: dir + "/index.html", contents: Data("edgemeter\n".utf8))
                wwwDirectory = dir
            }
            let argv = workload.processCommand(port: port, www: wwwDirectory)
            child = try ChildProcess(argv, newProcessGroup: true)
            workloadPID = child!.pid
        case .docker, .podman:
            let client: DockerAPIClient
            if kind == .docker {
                client = try DockerAPIClient()
            } else {
                guard which("podman") != nil else {
                    throw StartupError("podman is not installed here: run scripts/setup-engines.sh (apt-get install -y podman and its API service)")
                }
                client = DockerAPIClient.podman()
            }
            let b = DockerBackend(client: client, image: workload.image, runID: runTag, engine: kind.rawValue)
            backend = b
            try await b.prepare(stop: StopFlag())
            let id = try await b.createContainer(name: "edgemeter-\(instanceTag(runTag))-footprint-\(kind.rawValue)", image: workload.image,
                                                 cmd: workload.containerCommand(), network: "bridge")
            containerID = id
            try await client.startContainer(id)
            port = workload.port
            try await refreshContainer()
        case .lxc:
            try await startLXC()
        case .qemu:
            try await startQEMU()
        }
        enginePIDs = ProcReader.pids(named: kind == .docker ? ["dockerd", "containerd"] : kind == .podman ? ["podman"] : [])
    }

    private var wwwDirectory: String?
    private var qemuBackend: QEMUBackend?
    private var qemuInstance: QEMUInstance?
    private var vmBoots = 0
    /// The guest's memory reservation (`-m`), bytes; nil for every other deployment.
    public var reservedBytes: UInt64? { kind == .qemu ? UInt64(vmMemoryMiB) << 20 : nil }
    /// `-m` of the VM: 256 MiB for busybox workloads; 512 MiB when the initramfs carries the
    /// edgemeter binary and its libraries (≈ 100 MB of files that live in the guest's RAM: the
    /// archive and the unpacked root are both in memory while the kernel unpacks it).
    public var vmMemoryMiB: Int { workload.needsEdgemeter ? 512 : 256 }

    func startQEMU() async throws {
        port = try Self.freeLoopbackPort()
        countingRules = addCountingRules()
        let files = workload.needsEdgemeter ? try await GuestFile.edgemeter(binary: workload.binary) : []
        let b = QEMUBackend(runID: runTag, accel: .tcg, hostPort: port, memoryMiB: vmMemoryMiB, script: guestScript, files: files)
        qemuBackend = b
        try await b.prepare(stop: StopFlag())
        try await b.prepare(for: .tcp(port: workload.port), stop: StopFlag())
        try await bootVM()
    }

    func bootVM() async throws {
        guard let b = qemuBackend else { return }
        guard let vm = try await b.create(index: vmBoots, ready: .tcp(port: workload.port)) as? QEMUInstance else {
            throw StartupError("the QEMU backend returned an unexpected instance")
        }
        vmBoots += 1
        qemuInstance = vm
        try await vm.start()
        try await vm.waitRunning(until: .after(.seconds(30)), stop: StopFlag())
        guard let pid = vm.process?.pid else { throw StartupError("qemu \(vm.name) has no process; see \(vm.directory)/qemu.log") }
        lock.withLock { (workloadPID, layerPID, cgroup) = (pid, nil, nil) }
    }

    private var lxcBackend: LXCBackend?
    private var lxcInstance: LXCInstance?

    /// The command inside the LXC container or the VM (busybox sh): `edgemeter` is the copy at
    /// /usr/local/bin/edgemeter.
    var guestScript: String {
        let line = workload.containerCommand().map { a -> String in
            let v = a == "edgemeter" ? "/usr/local/bin/edgemeter" : a
            return "'" + v.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ") + "\n"
        return workload.wwwSetup + line
    }

    func startLXC() async throws {
        let b = LXCBackend(runID: runTag, script: guestScript)
        lxcBackend = b
        try await b.prepare(stop: StopFlag())
        guard let inst = try await b.create(index: 0, ready: .tcp(port: workload.port)) as? LXCInstance else {
            throw StartupError("the LXC backend returned an unexpected instance")
        }
        lxcInstance = inst
        if workload.needsEdgemeter { try await Self.install(binary: workload.binary, into: inst.root + "/rootfs") }
        try await inst.start()
        try await inst.waitRunning(until: .after(.seconds(30)), stop: StopFlag())
        (host, port) = (inst.address, workload.port)
        try await refreshLXC()
    }

    /// Copies `binary` to ROOT/usr/local/bin/edgemeter and every library `ldd` lists for it to the
    /// same path under ROOT (as `edgemeter image build` does for the image).
    static func install(binary: String, into root: String) async throws {
        let fm = FileManager.default
        var copies = [(binary, root + "/usr/local/bin/edgemeter")]
        for lib in try await ImageBuilder.sharedLibraries(of: binary) { copies.append((lib, root + lib)) }
        for (from, to) in copies {
            do {
                try fm.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
                try fm.copyItem(atPath: from, toPath: to)
            } catch {
                throw StartupError("copying \(from) into the LXC rootfs (\(to)) failed: \(error.localizedDescription); run as root")
            }
        }
    }

    /// The LXC container's init pid (`lxc-info -p -H`), its parent (the lxc monitor) and cgroup.
    func refreshLXC() async throws {
        guard let inst = lxcInstance else { return }
        let r = try await runCommand(["lxc-info", "-n", inst.name, "-p", "-H"])
        guard r.ok, let pid = Int32(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            throw StartupError("lxc-info \(inst.name) gives no init pid (\(r.combined)); see \(inst.root)/rootfs/edgemeter.log")
        }
        do {
            let parent = Int32(try ProcReader.stat(pid: pid).ppid)
            let files = try ProcReader.cgroupFiles(pid: pid)
            lock.withLock { (workloadPID, layerPID, cgroup) = (pid, parent, files) }
        } catch let e as SystemError {
            throw StartupError("reading LXC container \(inst.name)'s init \(pid): \(e.message)")
        }
    }

    /// Reads the container's first process, its parent (shim/conmon), cgroup and address again
    /// (after a start or a restart).
    func refreshContainer() async throws {
        guard let b = backend, let id = containerID else { return }
        let r = try await b.client.request(.GET, "/containers/\(id)/json")
        guard r.status == 200, let obj = r.json as? [String: Any], let st = obj["State"] as? [String: Any],
              let pid = st["Pid"] as? Int, pid > 0 else {
            throw StartupError("container \(id.prefix(12)) has no running process (HTTP \(r.status)): see `\(kind.rawValue) logs \(id.prefix(12))`")
        }
        let ip = ((obj["NetworkSettings"] as? [String: Any])?["IPAddress"] as? String) ?? ""
        guard !ip.isEmpty else { throw StartupError("container \(id.prefix(12)) has no address on the \(kind.rawValue) bridge") }
        host = ip
        do {
            let p = Int32(pid)
            let parent = Int32(try ProcReader.stat(pid: p).ppid)
            let files = try ProcReader.cgroupFiles(pid: p)
            lock.withLock { (workloadPID, layerPID, cgroup) = (p, parent, files) }
        } catch let e as SystemError {
            throw StartupError("reading container \(id.prefix(12))'s process \(pid): \(e.message)")
        }
    }

    /// The current counters (see `FootprintReading`).
    public func read() throws -> FootprintReading {
        let (pid, layer, files) = lock.withLock { (workloadPID, layerPID, cgroup) }
        do {
            let tree = ProcReader.tree(pid)
            var pss: UInt64 = 0, rss: UInt64 = 0, cpu = 0.0
            for p in tree {
                guard let s = try? ProcReader.smapsRollup(pid: p), let c = try? ProcReader.cpuSeconds(pid: p) else { continue }
                pss += s.pssBytes; rss += s.rssBytes; cpu += c
            }
            var memory = pss
            if let files {
                let g = try ProcReader.cgroup(files)
                memory = g.memoryBytes
                cpu = Double(g.cpuMicroseconds) / 1e6
            }
            func sum(_ pids: [Int32]) -> (UInt64, Double) {
                var m: UInt64 = 0, c = 0.0
                for p in pids {
                    m += (try? ProcReader.smapsRollup(pid: p).pssBytes) ?? 0
                    c += (try? ProcReader.cpuSeconds(pid: p)) ?? 0
                }
                return (m, c)
            }
            let (lm, lc) = sum(layer.map { [$0] } ?? [])
            let (em, ec) = sum(enginePIDs)
            let net: InterfaceCounters
            if countsOnLoopback {
                // Each loopback packet passes OUTPUT once; + 14 bytes of Ethernet header per packet,
                // as lo's and eth0's own counters include it.
                var c = InterfaceCounters(rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0)
                if countingRules, let ipt = which("iptables") {
                    let r = try Command.runBlocking([ipt, "-w", "-L", "OUTPUT", "-v", "-x", "-n"], timeout: .seconds(10))
                    if let rc = ProcFS.ruleCounters(r.stdout, comment: ruleComment) {
                        c = InterfaceCounters(rxBytes: 0, txBytes: rc.bytes + 14 * rc.packets, rxPackets: 0, txPackets: rc.packets)
                    }
                }
                net = c
            } else {
                net = try ProcReader.interface("eth0", inNamespaceOf: pid)
            }
            return FootprintReading(monotonicSeconds: Double(monotonicNanos()) / 1e9, workloadMemoryBytes: memory, workloadPSSBytes: pss,
                                    workloadRSSBytes: rss, workloadCPUSeconds: cpu, layerPSSBytes: lm, layerCPUSeconds: lc,
                                    enginePSSBytes: em, engineCPUSeconds: ec, net: net, loopback: countsOnLoopback)
        } catch let e as SystemError {
            throw StartupError("reading the \(kind.rawValue) deployment's counters: \(e.message)")
        }
    }

    /// The workload's first process (for cross-checks).
    public var pid: Int32 { lock.withLock { workloadPID } }
    public var id: String? { containerID }
    /// The engine's container name (`docker stats NAME`).
    public var containerName: String { "edgemeter-\(instanceTag(runTag))-footprint-\(kind.rawValue)" }

    public func disk() async -> FootprintDisk {
        switch kind {
        case .process:
            let size = (try? FileManager.default.attributesOfItem(atPath: workload.binary)[.size] as? NSNumber)?.uint64Value
            return FootprintDisk(imageBytes: size, writableBytes: nil)
        case .lxc:
            guard let inst = lxcInstance else { return FootprintDisk() }
            return FootprintDisk(imageBytes: Self.treeSize(inst.root + "/rootfs"), writableBytes: nil)
        case .qemu:
            guard let b = qemuBackend, let kernel = try? b.kernelCache.kernel(),
                  let initrd = b.preparedInitramfs(for: .tcp(port: workload.port)) else { return FootprintDisk() }
            func size(_ p: String) -> UInt64 { (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? NSNumber)?.uint64Value ?? 0 }
            return FootprintDisk(imageBytes: size(kernel) + size(initrd), writableBytes: nil)
        default:
            guard let b = backend, let id = containerID else { return FootprintDisk() }
            let img = try? await b.client.request(.GET, "/images/\(queryEscape(workload.image))/json")
            let c = try? await b.client.request(.GET, "/containers/\(id)/json?size=1")
            let imageSize = ((img?.json as? [String: Any])?["Size"] as? NSNumber)?.uint64Value
            let rw = ((c?.json as? [String: Any])?["SizeRw"] as? NSNumber)?.uint64Value
            return FootprintDisk(imageBytes: imageSize, writableBytes: rw ?? (c?.status == 200 ? 0 : nil))
        }
    }

    /// How the service is restarted in place, for the report.
    public var restartMethod: String {
        switch kind {
        case .process: return "SIGTERM, wait for exit, spawn again (same port)"
        case .docker, .podman: return "POST /containers/ID/restart?t=1 (\(kind.rawValue) restart)"
        case .lxc: return "lxc-stop -t 2, lxc-start -d"
        case .qemu: return "VM quit (QMP) and a new boot of the same kernel and initramfs"
        }
    }

    /// How long after the restart call the restart client waits for the service's first good
    /// answer: 60 s; 240 s for the VM, whose restart is a whole TCG boot (≈ 45 s for the
    /// calculator's 135 MB initramfs on this busy 2-core host, more under the restart client).
    public var restartWindow: Duration { kind == .qemu ? .seconds(240) : .seconds(60) }

    /// Requests the restart client keeps in flight at most: 1000, but 2 for the VM. The calculator in
    /// a TCG guest answers ≈ 25 requests/s here; a new connection every 5 ms through user-mode
    /// networking queues up in the guest until no answer comes within the client's 1 s, before and
    /// after the restart alike (measured: 0 good answers of 48 406). With 2 in flight the client
    /// never outruns the guest, and the resolution is about half the guest's answer time.
    public var restartMaxInFlight: Int { kind == .qemu ? 2 : 1000 }

    /// Restarts the service in place; returns when the engine says it runs again (not when it answers).
    public func restart() async throws {
        switch kind {
        case .process:
            guard let c = child else { return }
            c.signalGroup(SIGTERM)
            let status = await Task.detached { c.waitBlocking() }.value
            _ = status
            let next = try ChildProcess(workload.processCommand(port: port, www: wwwDirectory), newProcessGroup: true)
            lock.withLock { child = next; workloadPID = next.pid }
        case .docker, .podman:
            guard let b = backend, let id = containerID else { return }
            let r = try await b.client.request(.POST, "/containers/\(id)/restart?t=1", timeout: .seconds(60))
            guard r.status == 204 else { throw StartupError("\(kind.rawValue) restart of \(id.prefix(12)): HTTP \(r.status): \(r.errorMessage)") }
            try await refreshContainer()
        case .lxc:
            guard let inst = lxcInstance else { return }
            try await inst.stop()
            try await inst.start()
            try await inst.waitRunning(until: .after(.seconds(30)), stop: StopFlag())
            try await refreshLXC()
        case .qemu:
            if let vm = qemuInstance {
                try await vm.stop()
                try? await vm.remove()
            }
            try await bootVM()
        }
    }

    /// Stops and removes what `start` made (also after a failed start).
    public func remove() async {
        if let c = child {
            c.signalGroup(SIGTERM)
            let waited = await Task.detached { () -> Bool in
                for _ in 0..<100 { if !c.isRunning { return true }; usleep(20_000) }
                return false
            }.value
            if !waited { c.signalGroup(SIGKILL); _ = await Task.detached { c.waitBlocking() }.value }
        }
        if let b = backend { await b.cleanup() }
        if let b = lxcBackend { await b.cleanup() }
        if let b = qemuBackend { await b.cleanup() }
        if let w = wwwDirectory { try? FileManager.default.removeItem(atPath: w) }
        if countingRules { removeCountingRules(); countingRules = false }
    }

    /// Bytes of the regular files under `path` (symlinks not followed).
    static func treeSize(_ path: String) -> UInt64? {
        guard let e = FileManager.default.enumerator(atPath: path) else { return nil }
        var total: UInt64 = 0
        while let rel = e.nextObject() as? String {
            if let a = e.fileAttributes, a[.type] as? FileAttributeType == .typeRegular, let n = a[.size] as? NSNumber { total += n.uint64Value }
            _ = rel
        }
        return total
    }

    /// A loopback port nobody listens on now (bound to port 0, then released).
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartupError("socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw StartupError("cannot pick a free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}
