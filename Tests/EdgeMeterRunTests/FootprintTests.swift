import XCTest
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterHTTP
import EdgeMeterStartup
import EdgeMeterSystem
import EdgeMeterTestSupport
@testable import EdgeMeterRun

/// The footprint kind on real deployments, cross-checked against other tools over the same
/// process or window: PSS against the sum over /proc/PID/smaps (smem's arithmetic), CPU against
/// `pidstat`, container memory against `docker stats --no-stream`.
final class FootprintTests: XCTestCase {
    static let image = "edgemeter-footprint-test:latest"
    nonisolated(unsafe) static var built = false

    func binary() throws -> String {
        guard let bin = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` first (scripts/test does)") }
        return bin
    }

    func workload(_ bin: String) -> FootprintWorkload {
        FootprintWorkload(image: Self.image, command: FootprintWorkload.defaultCommand, binary: bin, port: 50001, path: FootprintWorkload.defaultPath)
    }

    /// dockerd with an image holding this build's edgemeter binary.
    func requireDockerImage(_ bin: String) async throws {
        guard which("dockerd") != nil, let client = try? DockerAPIClient(), (try? await client.ping()) != nil else {
            throw XCTSkip("dockerd is not running: run scripts/setup-engines.sh")
        }
        if !Self.built {
            _ = try await ImageBuilder(reference: Self.image, binaries: [(source: bin, destination: "/usr/local/bin/edgemeter")]).build(client: client)
            Self.built = true
        }
    }

    func context(_ sink: MemorySink, stop: StopFlag = StopFlag()) -> (ScenarioContext, SectionList) {
        let sections = SectionList()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("footprint-\(UUID().uuidString)")
        return (ScenarioContext(runID: "t\(UInt32.random(in: 0..<UInt32.max))", sink: sink, stop: stop, directory: dir, suiteDirectory: nil,
                                progress: { print($0) }, addSection: { sections.add($0) }), sections)
    }

    func testProcessPSSAgreesWithTheSmapsSumAndCPUWithPidstat() async throws {
        let bin = try binary()
        guard let pidstat = which("pidstat") else { throw XCTSkip("pidstat is missing: apt-get install -y sysstat (scripts/setup.sh does)") }
        let d = FootprintDeployment(kind: .process, workload: workload(bin), runID: "t-pss")
        try await d.start()
        defer { Task { await d.remove() } }
        let target = HTTPTarget(host: d.host, port: d.port, path: FootprintWorkload.defaultPath)
        try await FootprintScenario.waitForAnswer(target, deadline: .seconds(20), stop: StopFlag(), what: "the process")

        // PSS: smaps_rollup's total against the sum of every mapping's Pss: line, read back to back.
        let rollup = try ProcReader.smapsRollup(pid: d.pid).pssBytes
        let sum = try ProcReader.smapsPssSum(pid: d.pid)
        XCTAssertGreaterThan(rollup, 1 << 20, "a Swift service maps more than 1 MiB")
        XCTAssertEqual(Double(rollup), Double(sum), accuracy: Double(sum) * 0.02 + 65536, "smaps_rollup Pss vs Σ smaps Pss")

        // CPU: the deployment's utime+stime over pidstat's two one-second intervals, under load.
        var options = LoadOptions(request: HTTPRequestSpec(path: target.path), connections: 4, rate: 3000, duration: .seconds(5))
        options.timeout = .seconds(2)
        let load = Task { try await LoadGenerator.run(target: target, options: options, stop: StopFlag()) }
        try await Task.sleep(for: .milliseconds(700))
        let a = try d.read()
        let ps = try await Command.run([pidstat, "-h", "-u", "-p", String(d.pid), "1", "2"], timeout: .seconds(10))
        let b = try d.read()
        let result = try await load.value
        XCTAssertGreaterThan(result.responses, 1000, "the load ran")
        XCTAssertTrue(ps.ok, ps.combined)
        let pidstatCPU = try XCTUnwrap(Self.pidstatCPUSeconds(ps.stdout), ps.stdout)
        let ours = (b.workloadCPUSeconds - a.workloadCPUSeconds) / (b.monotonicSeconds - a.monotonicSeconds) * 2
        print("footprint cross-check: CPU over 2 s: ours \(ours) s, pidstat \(pidstatCPU) s; PSS rollup \(rollup), Σ smaps \(sum)")
        XCTAssertGreaterThan(ours, 0.1, "3000 requests/s must cost the service CPU")
        XCTAssertEqual(ours, pidstatCPU, accuracy: pidstatCPU * 0.2 + 0.05, "CPU seconds vs pidstat over the same 2 s")
        await d.remove()
    }

    /// pidstat -h: the %CPU column of each data row, summed, / 100 × 1 s interval.
    static func pidstatCPUSeconds(_ text: String) -> Double? {
        let lines = text.split(separator: "\n")
        guard let header = lines.first(where: { $0.hasPrefix("#") && $0.contains("%CPU") }) else { return nil }
        let cols = header.dropFirst().split(separator: " ")
        guard let i = cols.firstIndex(of: "%CPU") else { return nil }
        var total = 0.0
        var rows = 0
        for l in lines where !l.hasPrefix("#") {
            let f = l.split(separator: " ")
            if f.count == cols.count, let v = Double(f[i]) { total += v; rows += 1 }
        }
        return rows > 0 ? total / 100 : nil
    }

    func testPidstatParsing() {
        let text = """
        Linux 6.1 (host) \t12/01/2026 \t_x86_64_\t(2 CPU)

        # Time        UID       PID    %usr %system  %guest   %wait    %CPU   CPU  Command
         1764625000     0      4242   30.00   20.00    0.00    0.00   50.00     1  edgemeter
         1764625001     0      4242   10.00   15.00    0.00    0.00   25.00     0  edgemeter
        """
        XCTAssertEqual(Self.pidstatCPUSeconds(text) ?? -1, 0.75, accuracy: 1e-9)
    }

    func testDockerMemoryAgreesWithDockerStats() async throws {
        let bin = try binary()
        try await requireDockerImage(bin)
        let d = FootprintDeployment(kind: .docker, workload: workload(bin), runID: "t-docker-\(UInt32.random(in: 0..<UInt32.max))")
        do {
            try await d.start()
            let target = HTTPTarget(host: d.host, port: d.port, path: FootprintWorkload.defaultPath)
            try await FootprintScenario.waitForAnswer(target, deadline: .seconds(20), stop: StopFlag(), what: "the container")
            try await Task.sleep(for: .milliseconds(500))
            let stats = try await Command.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", d.containerName], timeout: .seconds(20))
            let r = try d.read()
            XCTAssertTrue(stats.ok, stats.combined)
            let dockerBytes = try XCTUnwrap(Self.dockerSize(stats.stdout), stats.stdout)
            XCTAssertGreaterThan(r.layerPSSBytes, 0, "containerd-shim is the container's parent")
            let disk = await d.disk()
            XCTAssertGreaterThan(disk.imageBytes ?? 0, 1_000_000)
            XCTAssertNotNil(disk.writableBytes)
            // 0B: containerd's shim could not load the container's cgroup (a cgroup v1 hierarchy the
            // kernel has is not mounted, as scripts/reset-host.sh leaves hugetlb), so dockerd answers
            // GET /containers/ID/stats with empty memory_stats. A host set-up fault, not a missing capability.
            XCTAssertGreaterThan(dockerBytes, 1_000_000, "docker stats shows \(stats.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) "
                                 + "for a running Swift service: run scripts/setup-engines.sh --check (cgroup v1 hierarchies all mounted), "
                                 + "then scripts/setup-engines.sh, which mounts them")
            // docker 20.10 on cgroup v1 shows usage − total_inactive_file (v2: − inactive_file).
            let files = try ProcReader.cgroupFiles(pid: d.pid)
            let stat = ProcFS.keyValues(try String(contentsOfFile: files.memoryStat, encoding: .utf8))
            let inactive = Double(stat["total_inactive_file"] ?? stat["inactive_file"] ?? 0)
            let ours = Double(r.workloadMemoryBytes) - inactive
            print("footprint cross-check: container memory ours \(ours) B (cgroup \(r.workloadMemoryBytes) − inactive file \(inactive)), docker stats \(dockerBytes) B")
            XCTAssertGreaterThan(r.workloadMemoryBytes, 1 << 20)
            XCTAssertEqual(ours, dockerBytes, accuracy: dockerBytes * 0.05 + 524_288, "cgroup memory vs docker stats --no-stream")
        } catch {
            await d.remove()
            throw error
        }
        await d.remove()
    }

    func testPodmanMemoryAgreesWithPodmanStats() async throws {
        let bin = try binary()
        guard let podman = which("podman") else { throw XCTSkip("podman is not installed: run scripts/setup-engines.sh") }
        guard (try? await DockerAPIClient.podman().ping()) != nil else {
            return XCTFail("podman is installed but its API does not answer: run scripts/setup-engines.sh")
        }
        try await requireDockerImage(bin)
        _ = try? await DockerAPIClient.podman().request(.DELETE, "/images/\(Self.image)?force=1")
        let d = FootprintDeployment(kind: .podman, workload: workload(bin), runID: "t-podman-\(UInt32.random(in: 0..<UInt32.max))")
        do {
            try await d.start()
            let target = HTTPTarget(host: d.host, port: d.port, path: FootprintWorkload.defaultPath)
            try await FootprintScenario.waitForAnswer(target, deadline: .seconds(20), stop: StopFlag(), what: "the container")
            try await Task.sleep(for: .milliseconds(500))
            let a = try d.read()
            let stats = try await Command.run([podman, "stats", "--no-stream", "--format", "{{.MemUsage}}", d.containerName], timeout: .seconds(20))
            let b = try d.read()
            XCTAssertTrue(stats.ok, stats.combined)
            let podmanBytes = try XCTUnwrap(Self.dockerSize(stats.stdout), stats.stdout)
            let ours = Double(a.workloadMemoryBytes + b.workloadMemoryBytes) / 2
            print("footprint cross-check: podman container memory ours \(ours) B (before \(a.workloadMemoryBytes), after \(b.workloadMemoryBytes)), podman stats \(podmanBytes) B")
            XCTAssertGreaterThan(podmanBytes, 1_000_000, "podman stats reads the container's cgroup")
            // podman stats prints 4 significant digits in decimal units (2.232MB).
            XCTAssertEqual(ours, podmanBytes, accuracy: podmanBytes * 0.05 + 262_144, "cgroup memory vs podman stats --no-stream")
            XCTAssertGreaterThan(b.layerPSSBytes, 0, "conmon is the container's parent")
            XCTAssertGreaterThan(b.enginePSSBytes, 0, "podman's API service")
        } catch {
            await d.remove()
            throw error
        }
        await d.remove()
    }

    func testLXCDeploymentRunsTheServiceAndIsMeasured() async throws {
        let bin = try binary()
        guard which("lxc-create") != nil, FileManager.default.fileExists(atPath: "/usr/share/lxc/templates/lxc-busybox") else {
            throw XCTSkip("LXC is not installed: apt-get install -y lxc busybox-static (scripts/setup.sh)")
        }
        let d = FootprintDeployment(kind: .lxc, workload: workload(bin), runID: "t-lxc-\(UInt32.random(in: 0..<UInt32.max))")
        do {
            try await d.start()
            let target = HTTPTarget(host: d.host, port: d.port, path: FootprintWorkload.defaultPath)
            try await FootprintScenario.waitForAnswer(target, deadline: .seconds(20), stop: StopFlag(), what: "the LXC container")
            let r = try d.read()
            XCTAssertGreaterThan(r.workloadPSSBytes, 2 << 20, "init shell + the Swift service")
            XCTAssertGreaterThan(r.workloadMemoryBytes, 1 << 20, "the container's cgroup")
            XCTAssertGreaterThan(r.layerPSSBytes, 0, "the lxc monitor")
            let monitor = try ProcReader.stat(pid: try ProcReader.stat(pid: d.pid).ppid == 0 ? d.pid : Int32(ProcReader.stat(pid: d.pid).ppid))
            XCTAssertTrue(monitor.comm.hasPrefix("lxc"), "the init's parent is the lxc monitor, got \(monitor.comm)")
            XCTAssertGreaterThan(r.exchangePackets, 0, "eth0 inside the container saw the warm-up requests")
            let disk = await d.disk()
            XCTAssertGreaterThan(disk.imageBytes ?? 0, 10_000_000, "rootfs with the edgemeter binary")
        } catch {
            await d.remove()
            throw error
        }
        await d.remove()
    }

    func testQEMUDeploymentPSSAgreesWithTheSmapsSum() async throws {
        let bin = try binary()
        guard which("qemu-system-x86_64") != nil, (try? KernelCache().kernel()) != nil else {
            throw XCTSkip("qemu or the guest kernel cache is missing: run scripts/setup-engines.sh")
        }
        let w = FootprintWorkload(image: Self.image, command: FootprintWorkload.httpdCommand, binary: bin, port: 50001, path: FootprintWorkload.httpdPath)
        let d = FootprintDeployment(kind: .qemu, workload: w, runID: "t-qemu-\(UInt32.random(in: 0..<UInt32.max))")
        do {
            try await d.start()
            let target = HTTPTarget(host: d.host, port: d.port, path: w.path)
            try await FootprintScenario.waitForAnswer(target, deadline: .seconds(120), stop: StopFlag(), what: "the VM")
            let rollup = try ProcReader.smapsRollup(pid: d.pid).pssBytes
            let sum = try ProcReader.smapsPssSum(pid: d.pid)
            print("footprint cross-check: QEMU PSS rollup \(rollup), Σ smaps \(sum), reserved \(d.reservedBytes ?? 0)")
            // The guest runs between the two reads and touches pages: allow 3 % + 1 MiB.
            XCTAssertEqual(Double(rollup), Double(sum), accuracy: Double(sum) * 0.03 + 1_048_576, "QEMU smaps_rollup Pss vs Σ smaps Pss")
            XCTAssertEqual(d.reservedBytes, 256 << 20)
            XCTAssertGreaterThan(rollup, 16 << 20, "a booted guest and QEMU itself")
            let r = try d.read()
            XCTAssertGreaterThan(r.exchangePackets, 0, "the forwarded port's packets are counted on lo")
            XCTAssertEqual(r.layerPSSBytes, 0, "no layer around a VM is visible from the host")
        } catch {
            await d.remove()
            throw error
        }
        await d.remove()
    }

    /// The calculator's sum service in the VM: the initramfs carries a stripped copy of this
    /// build's binary and every library `ldd` lists; the guest answers /sum through the forwarded
    /// port, the QEMU process's PSS agrees with smem's arithmetic, and a restart (QMP quit, a new
    /// boot of the same initramfs) brings the service back on the same host port.
    func testQEMUDeploymentRunsTheCalculatorAndRestarts() async throws {
        let bin = try binary()
        guard which("qemu-system-x86_64") != nil, (try? KernelCache().kernel()) != nil else {
            throw XCTSkip("qemu or the guest kernel cache is missing: run scripts/setup-engines.sh")
        }
        let d = FootprintDeployment(kind: .qemu, workload: workload(bin), runID: "t-qemu-calc-\(UInt32.random(in: 0..<UInt32.max))")
        do {
            let t0 = ContinuousClock.now
            try await d.start()
            let target = HTTPTarget(host: d.host, port: d.port, path: FootprintWorkload.defaultPath)
            XCTAssertEqual(d.host, "127.0.0.1")
            try await FootprintScenario.waitForAnswer(target, deadline: .seconds(180), stop: StopFlag(), what: "the calculator in the VM")
            let boot = ContinuousClock.now - t0
            let disk = await d.disk()
            let rollup = try ProcReader.smapsRollup(pid: d.pid).pssBytes
            let sum = try ProcReader.smapsPssSum(pid: d.pid)
            print("footprint cross-check: QEMU (calculator) PSS rollup \(rollup), Σ smaps \(sum), reserved \(d.reservedBytes ?? 0), "
                  + "kernel+initramfs \(disk.imageBytes ?? 0) B, start → first answer \(boot)")
            XCTAssertEqual(d.reservedBytes, 512 << 20)
            XCTAssertGreaterThan(disk.imageBytes ?? 0, 30_000_000, "kernel + initramfs with the Swift runtime")
            XCTAssertEqual(Double(rollup), Double(sum), accuracy: Double(sum) * 0.03 + 1_048_576, "QEMU smaps_rollup Pss vs Σ smaps Pss")
            let r = try d.read()
            XCTAssertGreaterThan(r.exchangePackets, 0, "the forwarded port's packets are counted on lo")
            let before = d.pid
            try await d.restart()
            XCTAssertNotEqual(d.pid, before, "a new QEMU process")
            try await FootprintScenario.waitForAnswer(target, deadline: .seconds(180), stop: StopFlag(), what: "the calculator in the rebooted VM")
        } catch {
            await d.remove()
            throw error
        }
        await d.remove()
    }

    /// The suite path: `kind: footprint` runs, writes both tables to summary.md and the restart
    /// records, and the run exits 0 (the summary rows are not mistaken for a load aggregate).
    func testSuiteScenarioWritesTheTablesAndExitsZero() throws {
        let bin = try binary()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fp-suite-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let suite = dir.appendingPathComponent("s.yaml").path
        try """
        name: fp
        scenarios:
          - name: fp
            kind: footprint
            deployments: [process]
            rate: 100
            idle: 1s
            duration: 2s
            restart: true
        """.write(toFile: suite, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("run").path
        let r = try runCommand(bin, ["run", suite, "--out", out])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let md = try String(contentsOfFile: out + "/summary.md", encoding: .utf8)
        XCTAssertTrue(md.contains("### Footprint: process"), md)
        XCTAssertTrue(md.contains("### Restart downtime"), md)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/restart-fp-process.csv"))
        let csv = try String(contentsOfFile: out + "/samples.csv", encoding: .utf8)
        XCTAssertTrue(csv.contains(",footprint,process,answered_requests,summary,"), "summary rows in samples.csv")
    }

    /// The comments of the footprint counting rules now in the filter table (`iptables -S`).
    static func footprintRuleComments(_ ipt: String) throws -> [String] {
        let r = try Command.runBlocking([ipt, "-w", "-S"], timeout: .seconds(10))
        guard r.ok else { throw XCTSkip("iptables -S failed (\(r.combined)): run as root with iptables installed") }
        return ProcFS.ruleDeletions(r.stdout, commentPrefix: FootprintDeployment.ruleCommentPrefix).compactMap { spec in
            spec.firstIndex(of: "--comment").map { spec[$0 + 1] }
        }
    }

    /// A footprint run SIGKILLed while it measures leaves its two counting rules on OUTPUT (its
    /// `remove` never ran); the cleanup path (`edgemeter cleanup` calls
    /// `FootprintDeployment.removeLeftoverRules()`, here scoped to this run's comment so other
    /// runs on the host keep theirs) finds them by their comment and deletes both.
    func testRulesOfAKilledRunAreRemovedByCleanup() async throws {
        let bin = try binary()
        guard getuid() == 0, let ipt = which("iptables") else {
            throw XCTSkip("the counting rules need root and iptables: run the tests as root (apt-get install -y iptables)")
        }
        let before = Set(try Self.footprintRuleComments(ipt))
        let run = try ChildProcess([bin, "footprint", "process", "--idle", "30s", "-d", "5s"], newProcessGroup: true)
        // Wait until the run has added both rules (it adds them one after the other: killing it
        // between the two would leave one, which is not the case this test is about).
        var comment: String?
        for _ in 0..<200 {
            try await Task.sleep(for: .milliseconds(100))
            let added = try Self.footprintRuleComments(ipt).filter { !before.contains($0) }
            if let c = added.first, added.filter({ $0 == c }).count == 2 { comment = c; break }
        }
        // The service the run started (its own process group) outlives the kill: end it too.
        let service = ProcReader.children(of: run.pid)
        run.signalGroup(SIGKILL)
        _ = run.waitBlocking()
        for p in service { kill(p, SIGKILL) }
        let c = try XCTUnwrap(comment, "the footprint run did not add its two counting rules within 20 s")
        XCTAssertEqual(try Self.footprintRuleComments(ipt).filter { $0 == c }.count, 2, "the killed run left its two rules")
        let removed = FootprintDeployment.removeLeftoverRules(prefix: c)
        XCTAssertEqual(removed.count, 2, "\(removed)")
        XCTAssertTrue(removed.allSatisfy { $0.contains("--comment \(c)") }, "\(removed)")
        XCTAssertFalse(try Self.footprintRuleComments(ipt).contains(c), "no rule with \(c) is left")
        XCTAssertEqual(FootprintDeployment.removeLeftoverRules(prefix: c), [], "a second cleanup finds nothing")
    }

    /// The summary rows carry the table's figures: the image size, the writable layer and the VM's
    /// reservation were written as 0 (samples.csv of a lab run) while the table showed them.
    func testSummaryRowsCarryDiskAndReservation() {
        let f = FootprintFigures(deployment: "qemu", idleWorkloadBytes: 1, idleLayerBytes: 0, loadedWorkloadBytes: 2, loadedLayerBytes: 0,
                                 idleWorkloadPSSBytes: 3, loadedWorkloadPSSBytes: 4, engineBytes: 0, reservedBytes: 512 << 20,
                                 workloadCPUPer1000: 1.5, layerCPUPer1000: nil, engineCPUPer1000: nil, imageBytes: 143_418_304,
                                 writableBytes: 4096, bytesPerRequest: 416, packetsPerRequest: 3.2, p50Milliseconds: 1, p99Milliseconds: 2,
                                 answers: 131, errors: 869)
        let rows = Dictionary(FootprintScenario.summaryMetrics(f).map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(rows["reserved_memory"] ?? nil, 536_870_912)
        XCTAssertEqual(rows["image_size"] ?? nil, 143_418_304)
        XCTAssertEqual(rows["writable_layer"] ?? nil, 4096)
        XCTAssertEqual(rows["answered_requests"] ?? nil, 131)
    }

    /// `12.5MiB / 23.4GiB` → bytes of the first part.
    static func dockerSize(_ text: String) -> Double? {
        let first = text.split(separator: "/").first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let units: [(String, Double)] = [("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024), ("kB", 1000), ("MB", 1e6), ("GB", 1e9), ("B", 1)]
        for (u, m) in units where first.hasSuffix(u) {
            return Double(first.dropLast(u.count)).map { $0 * m }
        }
        return nil
    }

    func testScenarioMeasuresProcessAndDockerAndARestart() async throws {
        let bin = try binary()
        try await requireDockerImage(bin)
        var c = FootprintConfig(workload: workload(bin))
        c.deployments = [.process, .docker]
        c.rate = 200
        c.duration = .seconds(3)
        c.idle = .seconds(2)
        c.restart = true
        let sink = MemorySink()
        let (ctx, sections) = context(sink)
        let out = try await FootprintScenario.run(c, scenario: "fp", ctx: ctx)
        XCTAssertEqual(out.notRun.count, 0, "\(out.notRun)")
        XCTAssertEqual(out.figures.map(\.deployment), ["process", "docker"])
        for f in out.figures {
            XCTAssertGreaterThanOrEqual(f.answers, 550, "200/s for 3 s: \(f)")
            XCTAssertLessThanOrEqual(f.answers, 601)
            XCTAssertGreaterThan(f.loadedWorkloadBytes, 1_048_576, f.deployment)
            XCTAssertGreaterThan(f.idleWorkloadBytes, 1_048_576, f.deployment)
            XCTAssertGreaterThan(f.loadedWorkloadPSSBytes, 2_097_152, "a Swift service: \(f.deployment)")
            XCTAssertGreaterThan(f.workloadCPUPer1000 ?? 0, 0, f.deployment)
            // A GET and its answer: at least a request and a response segment plus ACKs; a new
            // connection per request is not used (keep-alive), so well under 10 packets.
            XCTAssertGreaterThanOrEqual(f.packetsPerRequest ?? 0, 1.5, f.deployment)
            XCTAssertLessThan(f.packetsPerRequest ?? 99, 10, f.deployment)
            XCTAssertGreaterThan(f.bytesPerRequest ?? 0, 150, f.deployment)
            XCTAssertNotNil(f.p50Milliseconds)
        }
        let docker = try XCTUnwrap(out.figures.last)
        XCTAssertGreaterThan(docker.loadedLayerBytes, 0, "containerd-shim PSS")
        XCTAssertGreaterThan(docker.engineBytes, 0, "dockerd + containerd PSS")
        XCTAssertEqual(out.restarts.count, 2)
        for r in out.restarts {
            XCTAssertTrue(r.downtime.problem == nil || r.downtime.problem!.contains("new address"), "\(r.deployment): \(r.downtime.problem ?? "")")
            XCTAssertGreaterThan(r.downtime.gapMilliseconds ?? 0, 0, r.deployment)
            XCTAssertGreaterThan(r.downtime.sent, 200, r.deployment)
        }
        let samples = sink.samples
        XCTAssertTrue(samples.contains { $0.probe == "footprint" && $0.metric == "workload_memory" && $0.phase == "idle" })
        XCTAssertGreaterThanOrEqual(samples.filter { $0.target == "docker" && $0.metric == "workload_memory" && $0.phase == "load" }.count, 3,
                                    "one reading a second during the load, plus the last")
        let text = sections.all.joined(separator: "\n")
        XCTAssertTrue(text.contains("| process |"), text)
        XCTAssertTrue(text.contains("### Restart downtime"), text)
        print(text)
    }
}

final class SectionList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}
