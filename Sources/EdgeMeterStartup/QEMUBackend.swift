import EdgeMeterCore
import EdgeMeterSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// QEMU machine accelerator choice. `auto` boots a probe guest with KVM and falls back to TCG when
/// it does not reach its marker in time (on this machine KVM guests hang after the decompressor).
public enum QEMUAccel: String, Sendable, CaseIterable {
    case auto, kvm, tcg
}

/// VMs booted from the cached Debian kernel and an initramfs edgemeter builds, controlled through
/// QMP. Phases, timed on the client with a monotonic clock:
/// - create: spawning `qemu-system-x86_64 -S` (paused) until QMP answers `qmp_capabilities`;
/// - start: QMP `cont` returns (for a restore: the incoming migration completed, then `cont`);
/// - running: QMP `query-status` says running;
/// - ready: the runner's check on what the instance exposes: its log is the serial console (a
///   file); its workload's state is known once the guest powered off, QEMU exited 0 and the guest's
///   init printed `edgemeter-exit-status=N` on the console (the workload's own status); its
///   address is the user-mode NAT host forward (127.0.0.1:hostPort → guest port), behind which a
///   tcp check also needs the guest's banner line and icmp is refused;
/// - stop: QMP `quit` until the process exited; remove: deleting the instance's files.
/// The initramfs for the ready check is built in `prepare(for:stop:)`, outside every timed phase.
/// The accelerator used is in every sample's `accel` label.
public final class QEMUBackend: StartupBackend, @unchecked Sendable {
    public let runTag: String
    public let requestedAccel: QEMUAccel
    public let hostPort: Int
    public let memoryMiB: Int
    public let kvmProbeTimeout: Duration
    public let kernelCache: KernelCache
    /// Restore every instance from a state saved (migrated to a file) from a running guest.
    public let fromSnapshot: Bool
    public private(set) var accel: String = "tcg"
    public private(set) var accelNote: String?
    /// In snapshot mode: milliseconds from `stop` to the migration to file completing.
    public private(set) var saveMilliseconds: Double?
    public var name: String { fromSnapshot ? "qemu-snapshot" : "qemu" }
    public var snapshotStep: SnapshotStep? {
        saveMilliseconds.map { SnapshotStep(phase: "save", what: "VM stop + migrate state to a file", milliseconds: $0) }
    }
    public var labels: [String: String] {
        var l = ["accel": accel, "kernel": (try? kernelCache.kernel()).map { ($0 as NSString).lastPathComponent } ?? "?",
                 "host_port": String(hostPort)]
        if let accelNote { l["accel_note"] = accelNote }
        if fromSnapshot { l["source"] = "snapshot" }
        return l
    }
    let workDirectory: String
    private var kernel = ""
    private var e1000: String?
    /// Built initramfs paths by ready check (`ReadyCheck.description`: a custom marker or port
    /// changes the workload script, so it gets its own archive).
    private var initramfs: [String: String] = [:]
    /// How many initramfs archives this backend has built (the KVM probe's and the snapshot
    /// source's included); tests use it to prove `create` builds none.
    private(set) var initramfsBuilds = 0
    /// Workload script (busybox sh) replacing the built-in one for the ready check; the guest's
    /// init runs it with `sh /workload` and prints its exit status on the console.
    public let script: String?
    /// Host files the workload's initramfs carries besides busybox (the edgemeter binary and its
    /// libraries for the calculator); not in the KVM probe's.
    public let files: [GuestFile]
    private var statePath: String?
    private let lock = NSLock()
    private var live: [QEMUInstance] = []

    public init(runID: String, accel: QEMUAccel = .auto, hostPort: Int = 1234, memoryMiB: Int = 256,
                kvmProbeTimeout: Duration = .seconds(8), kernelCache: KernelCache = KernelCache(),
                fromSnapshot: Bool = false, snapshotReady: ReadyCheck? = nil, workDirectory: String? = nil, script: String? = nil,
                files: [GuestFile] = []) {
        self.snapshotReady = snapshotReady
        self.script = script
        self.files = files
        self.runTag = instanceTag(runID)
        self.requestedAccel = accel
        self.hostPort = hostPort
        self.memoryMiB = memoryMiB
        self.kvmProbeTimeout = kvmProbeTimeout
        self.kernelCache = kernelCache
        self.fromSnapshot = fromSnapshot
        self.workDirectory = workDirectory ?? NSTemporaryDirectory() + "edgemeter-qemu-\(instanceTag(runID))"
    }

    public static let binary = "qemu-system-x86_64"

    /// With `fromSnapshot`, the ready check the source guest is booted to before its state is saved.
    /// Given here, the state is saved in `prepare`, outside every timed phase (as docker's commit
    /// is); without it, the first `create` saves it and its figure includes the source's boot.
    public let snapshotReady: ReadyCheck?

    public func prepare(stop: StopFlag) async throws {
        guard which(Self.binary) != nil else {
            throw StartupError("\(Self.binary) not found: apt-get install -y qemu-system-x86")
        }
        kernel = try kernelCache.kernel()
        e1000 = try? kernelCache.e1000Module()
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        switch requestedAccel {
        case .tcg: accel = "tcg"
        case .kvm:
            guard Self.kvmOpens() else { throw StartupError("--accel kvm: /dev/kvm cannot be opened: load kvm_intel/kvm_amd or use --accel tcg") }
            accel = "kvm"
        case .auto:
            let (ok, note) = await probeKVM(stop: stop)
            accel = ok ? "kvm" : "tcg"
            accelNote = note
        }
        if fromSnapshot, let r = snapshotReady, statePath == nil {
            guard guestPort(r) != nil else {
                throw StartupError("a restored VM does not re-run its boot, so ready=\(r.kind) cannot be seen: use ready tcp or http with snapshots")
            }
            try await saveState(ready: r)
        }
    }

    /// `prepare(stop:)`, then builds the initramfs for `ready` so that no attempt's `create`
    /// includes building it (the first attempt's create used to).
    public func prepare(for ready: ReadyCheck, stop: StopFlag) async throws {
        try await prepare(stop: stop)
        if case .icmp = ready {
            throw StartupError("ready=icmp is not available for qemu: user-mode NAT has no route from the host into the guest; use tcp, http or marker")
        }
        if Self.needsNetwork(ready) { _ = try kernelCache.e1000Module() }
        _ = try await initramfsPath(for: ready, workload: script, files: files)
    }

    static func kvmOpens() -> Bool {
        let fd = open("/dev/kvm", O_RDWR)
        if fd >= 0 { close(fd); return true }
        return false
    }

    /// Proves KVM boots a guest: the probe guest must print its marker within `kvmProbeTimeout`.
    /// Returns (usable, note for the `accel_note` label).
    func probeKVM(stop: StopFlag) async -> (Bool, String) {
        guard Self.kvmOpens() else { return (false, "kvm unavailable (/dev/kvm does not open); tcg used") }
        do {
            let probe = ReadyCheck.marker(ReadyCheck.defaultMarker)
            let vm = try await spawn(index: 0, ready: probe, accel: "kvm", role: "kvmprobe", paused: false,
                                     initrd: try await initramfsPath(for: probe, workload: nil))
            defer { vm.kill(); vm.deleteFiles() }
            _ = try await ReadyProbes.wait(for: probe, on: vm, until: .after(kvmProbeTimeout), stop: stop)
            return (true, "kvm probe guest booted")
        } catch let e as StartupError where e.status == .timeout {
            let secs = String(format: "%.1f", kvmProbeTimeout.seconds)
            return (false, "kvm probe guest did not boot within the \(secs) s probe timeout (no marker on its console); tcg used")
        } catch {
            return (false, "kvm probe guest failed (\(error)); tcg used")
        }
    }

    /// The initramfs for `ready` running `workload` (nil: the built-in one) with `files`, built on first use.
    func initramfsPath(for ready: ReadyCheck, workload: String?, files: [GuestFile] = []) async throws -> String {
        let network = Self.needsNetwork(ready)
        let key = Self.initramfsKey(ready, workload, files)
        if let p = lock.withLock({ initramfs[key] }) { return p }
        let n = lock.withLock { initramfs.count }
        let path = "\(workDirectory)/initramfs-\(ready.kind)-\(n + 1).cpio"
        try await Initramfs().build(to: path, ready: ready, network: network, e1000: e1000, workload: workload, files: files)
        lock.withLock { initramfs[key] = path; initramfsBuilds += 1 }
        return path
    }

    /// The initramfs already built for the attempts' ready check (nil before `prepare(for:stop:)`).
    func preparedInitramfs(for ready: ReadyCheck) -> String? {
        lock.withLock { initramfs[Self.initramfsKey(ready, script, files)] }
    }

    static func initramfsKey(_ ready: ReadyCheck, _ workload: String?, _ files: [GuestFile] = []) -> String {
        ready.description + (workload.map { "\u{0}" + $0 } ?? "") + files.map { "\u{0}\($0.source)>\($0.destination)" }.joined()
    }

    static func needsNetwork(_ ready: ReadyCheck) -> Bool {
        switch ready {
        case .tcp, .http: return true
        default: return false
        }
    }

    func guestPort(_ ready: ReadyCheck) -> Int? {
        switch ready {
        case .tcp(let p): return p
        case .http(let p, _): return p
        default: return nil
        }
    }

    /// Launches QEMU and waits for QMP. `paused` adds `-S`; `incoming` restores from a state file.
    /// `initrd` nil uses the initramfs for `ready` and this backend's workload, building it on first
    /// use; `create` never builds one for a cold boot (`prepare(for:stop:)` did).
    func spawn(index: Int, ready: ReadyCheck, accel: String, role: String, paused: Bool = true, incoming: String? = nil,
               initrd given: String? = nil) async throws -> QEMUInstance {
        if case .icmp = ready {
            throw StartupError("ready=icmp is not available for qemu: user-mode NAT has no route from the host into the guest; use tcp, http or marker")
        }
        if Self.needsNetwork(ready), e1000 == nil {
            _ = try kernelCache.e1000Module()
        }
        let name = "edgemeter-\(runTag)-\(role)\(index + 1)"
        let dir = "\(workDirectory)/\(name)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let initrd: String
        if let given { initrd = given } else { initrd = try await initramfsPath(for: ready, workload: script, files: files) }
        var args = ["-name", name, "-accel", accel, "-m", String(memoryMiB), "-nodefaults", "-no-user-config",
                    "-display", "none", "-no-reboot",
                    "-serial", "file:\(dir)/serial.log",
                    "-kernel", kernel, "-initrd", initrd,
                    "-append", "console=ttyS0 quiet panic=-1",
                    "-qmp", "unix:\(dir)/qmp.sock,server=on,wait=off",
                    "-pidfile", "\(dir)/qemu.pid"]
        if let port = guestPort(ready) {
            args += ["-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:\(hostPort)-:\(port)", "-device", "e1000,netdev=n0,romfile="]
        }
        if paused { args.append("-S") }
        if let incoming { args += ["-incoming", "exec:cat \(incoming)"] }
        let vm = QEMUInstance(name: name, directory: dir, arguments: args, hostPort: hostPort, accel: accel, restored: incoming != nil)
        lock.withLock { live.append(vm) }
        try await vm.launch()
        return vm
    }

    public func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance {
        if fromSnapshot {
            guard guestPort(ready) != nil else {
                throw StartupError("a restored VM does not re-run its boot, so ready=\(ready.kind) cannot be seen: use ready tcp or http with snapshots")
            }
            if statePath == nil { try await saveState(ready: ready) }
            return try await spawn(index: index, ready: ready, accel: accel, role: "restore", incoming: statePath)
        }
        guard let initrd = preparedInitramfs(for: ready) else {
            throw StartupError("qemu create for ready=\(ready) before prepare(for: \(ready)): the initramfs is built in prepare so that "
                + "no attempt's create includes it; run attempts through StartupRunner (or call prepare(for:stop:) first)")
        }
        return try await spawn(index: index, ready: ready, accel: accel, role: "vm", initrd: initrd)
    }

    /// Boots a source guest, waits until it is ready, pauses it and migrates its state to a file.
    func saveState(ready: ReadyCheck) async throws {
        let stop = StopFlag()
        let src = try await spawn(index: 0, ready: ready, accel: accel, role: "source")
        defer { src.kill(); src.deleteFiles() }
        try await src.start()
        _ = try await ReadyProbes.wait(for: ready, on: src, until: .after(.seconds(120)), stop: stop)
        let path = "\(workDirectory)/state.bin"
        let t0 = ContinuousClock.now
        _ = try await src.qmp.execute("stop")
        _ = try await src.qmp.execute("migrate", ["uri": "exec:cat > \(path)"])
        try await poll("migration to \(path) completed", until: .after(.seconds(120)), stop: stop, interval: .milliseconds(2)) {
            let r = try await src.qmp.execute("query-migrate")
            let status = (r as? [String: Any])?["status"] as? String ?? ""
            if status == "failed" { throw StartupError("saving VM state failed: \(r)") }
            return status == "completed"
        }
        saveMilliseconds = Double((ContinuousClock.now - t0).nanoseconds) / 1e6
        statePath = path
        _ = try? await src.qmp.execute("quit")
    }

    public func cleanup() async {
        let vms: [QEMUInstance] = lock.withLock { let v = live; live = []; return v }
        for vm in vms { vm.kill(); vm.deleteFiles() }
        try? FileManager.default.removeItem(atPath: workDirectory)
    }

    /// Kills QEMU processes whose `-name` starts with `edgemeter-` (found through /proc cmdlines)
    /// and removes the work directories; returns what it removed.
    public static func removeLeftovers(prefix: String = "edgemeter-") -> [String] {
        var removed: [String] = []
        let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in procs.compactMap({ Int32($0) }) {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let exe = argv.first, exe.hasSuffix(binary), let i = argv.firstIndex(of: "-name"), i + 1 < argv.count,
                  argv[i + 1].hasPrefix(prefix) else { continue }
            kill(pid, SIGKILL)
            removed.append("qemu process \(pid) (\(argv[i + 1]))")
        }
        let tmp = NSTemporaryDirectory()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] where entry.hasPrefix("edgemeter-qemu-") {
            try? FileManager.default.removeItem(atPath: tmp + entry)
            removed.append("directory \(tmp + entry)")
        }
        return removed
    }
}

final class QEMUInstance: StartupInstance, @unchecked Sendable {
    let name: String
    let directory: String
    let arguments: [String]
    let hostPort: Int
    let accel: String
    let restored: Bool
    /// The QEMU process, once `launch` started it (posix_spawn: default signal dispositions, no
    /// inherited descriptors).
    private(set) var process: SpawnedProcess?
    private(set) var qmp: QMPClient!
    var labels: [String: String] { ["accel": accel, "pid": String(process?.pid ?? 0)] }
    /// False before `launch` and once QEMU exited.
    var isRunning: Bool { process?.isRunning ?? false }
    /// QEMU's exit code (128 + signal when killed); -1 before it exited.
    var exitStatus: Int32 { process?.terminationStatus ?? -1 }

    init(name: String, directory: String, arguments: [String], hostPort: Int, accel: String, restored: Bool) {
        self.name = name
        self.directory = directory
        self.arguments = arguments
        self.hostPort = hostPort
        self.accel = accel
        self.restored = restored
    }

    func launch() async throws {
        let exe = try resolveExecutable(QEMUBackend.binary)
        let log = open("\(directory)/qemu.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw StartupError("cannot write \(directory)/qemu.log") }
        defer { close(log) }
        process = try SpawnedProcess([exe] + arguments, outputFD: log)
        let socket = "\(directory)/qmp.sock"
        let stop = StopFlag()
        var client: QMPClient?
        try await poll("QMP socket of \(name)", until: .after(.seconds(30)), stop: stop, interval: .milliseconds(2)) {
            guard self.isRunning else {
                let text = (try? String(contentsOfFile: "\(self.directory)/qemu.log", encoding: .utf8)) ?? ""
                throw StartupError("qemu exited at launch (status \(self.exitStatus)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            client = try? await QMPClient.connect(path: socket)
            return client != nil
        }
        qmp = client
    }

    func status() async throws -> String {
        let r = try await qmp.execute("query-status")
        return (r as? [String: Any])?["status"] as? String ?? ""
    }

    func start() async throws {
        if restored {
            try await poll("incoming migration of \(name) completed", until: .after(.seconds(120)), stop: StopFlag(), interval: .milliseconds(1)) {
                let s = try await self.status()
                return s != "inmigrate"
            }
        }
        _ = try await qmp.execute("cont")
    }

    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws {
        try await poll("\(name) running", until: deadline, stop: stop, interval: .milliseconds(1)) {
            try await self.status() == "running"
        }
    }

    /// The host end of the user-mode NAT forward to the guest's port.
    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress {
        InstanceAddress(host: "127.0.0.1", forwardedPort: hostPort)
    }

    /// QEMU exits 0 on any guest power-off; the workload's own status is the line the guest's init
    /// prints after it (`Initramfs.exitStatusPrefix`).
    func workloadState() async throws -> WorkloadState {
        if isRunning { return .running }
        guard exitStatus == 0 else { return .unknown("qemu exited with status \(exitStatus); see \(directory)/qemu.log") }
        let console = serialText()
        guard let status = Initramfs.workloadExitStatus(console: console) else {
            let tail = console.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
            return .unknown("the guest powered off without printing \(Initramfs.exitStatusPrefix)N, so the workload's exit status "
                + "is unknown (kernel panic, or the workload powered off itself?); last console lines: \(tail.isEmpty ? "none" : tail)")
        }
        return .exited(status: status)
    }

    /// The serial console so far.
    func log() async throws -> String { serialText() }

    /// What the guest wrote on its serial console so far (`-serial file:`).
    func serialText() -> String {
        guard let data = FileManager.default.contents(atPath: "\(directory)/serial.log") else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    func stop() async throws {
        if isRunning {
            _ = try? await qmp.execute("quit")
            try await poll("qemu \(name) exit", until: .after(.seconds(10)), stop: StopFlag(), interval: .milliseconds(1)) { !self.isRunning }
        }
        qmp?.close()
    }

    func remove() async throws {
        try FileManager.default.removeItem(atPath: directory)
    }

    func kill() {
        if let process, process.isRunning {
            process.signal(SIGKILL)
            process.waitBlocking()
        }
        qmp?.close()
    }

    func deleteFiles() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
