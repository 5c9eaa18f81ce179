import XCTest
import EdgeMeterTestSupport

/// `scripts/setup-engines.sh`: the cgroup decision on fixture trees (`--cgroup-plan`) and the
/// read-only `--check` report on this host.
final class HostSetupScriptTests: XCTestCase {
    var script: String { packageRoot(file: #filePath).appendingPathComponent("scripts/setup-engines.sh").path }
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-cgroup-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    /// A fixture cgroup root: `dirs` are created, `files` written (path -> content), `links` made
    /// (path -> target).
    func tree(_ name: String, dirs: [String] = [], files: [String: String] = [:], links: [String: String] = [:]) throws -> String {
        let root = tmp.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for d in dirs { try FileManager.default.createDirectory(at: root.appendingPathComponent(d), withIntermediateDirectories: true) }
        for (path, content) in files {
            let u = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
            try content.write(to: u, atomically: false, encoding: .utf8)
        }
        for (path, target) in links {
            let u = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: u.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: u.path, withDestinationPath: target)
        }
        return root.path
    }

    func plan(_ root: String, _ types: [String]) throws -> String {
        let r = try runCommand("/bin/bash", [script, "--cgroup-plan", root] + types, timeout: 30)
        XCTAssertEqual(r.status, 0, "--cgroup-plan exits 0: \(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A file that reports size 0 and still has content, as every file on cgroupfs does. Procfs files
    /// behave the same; /proc/sys/kernel/ostype holds "Linux".
    let sizeZeroWithContent = "/proc/sys/kernel/ostype"

    func testPseudoFileFixtureReallyReportsSizeZero() throws {
        let attrs = try FileManager.default.attributesOfItem(atPath: sizeZeroWithContent)
        XCTAssertEqual((attrs[.size] as? NSNumber)?.intValue, 0, "the fixture relies on a size-0 file with content")
        XCTAssertEqual(try String(contentsOfFile: sizeZeroWithContent, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "Linux")
    }

    func testHybridWithV2ControllersMountsThem() throws {
        let root = try tree("hybrid", dirs: ["cpu", "memory", "pids"],
                            files: ["unified/cgroup.controllers": "hugetlb misc\n", "unified/cgroup.subtree_control": ""])
        XCTAssertEqual(try plan(root, ["tmpfs", "cgroup2fs"]), "hugetlb misc")
    }

    /// cgroupfs files report size 0 whatever they hold: a `test -s` on cgroup.controllers never
    /// fires, which is the bug this guards against.
    func testHybridControllersAreReadFromASizeZeroFile() throws {
        let root = try tree("hybrid-cgroupfs-like", dirs: ["cpu", "unified"],
                            links: ["unified/cgroup.controllers": sizeZeroWithContent])
        XCTAssertEqual(try plan(root, ["tmpfs", "cgroup2fs"]), "Linux",
                       "the controller list must be read from the file's content, not judged by its size")
    }

    func testHybridWithoutV2ControllersNeedsNothing() throws {
        let root = try tree("hybrid-empty", dirs: ["cpu", "memory", "hugetlb"],
                            files: ["unified/cgroup.controllers": "", "unified/cgroup.subtree_control": ""])
        let out = try plan(root, ["tmpfs", "cgroup2fs"])
        XCTAssertTrue(out.hasPrefix("none: hybrid, and cgroup2 at \(root)/unified owns no controllers"), out)
    }

    func testHybridWithControllersInUseByV2IsBlocked() throws {
        let root = try tree("hybrid-used", dirs: ["cpu"], files: ["unified/cgroup.controllers": "hugetlb\n"],
                            links: ["unified/cgroup.subtree_control": sizeZeroWithContent])
        let out = try plan(root, ["tmpfs", "cgroup2fs"])
        XCTAssertTrue(out.hasPrefix("blocked: cgroup2 at \(root)/unified owns hugetlb and enables Linux"), out)
    }

    func testPureV2NeedsNothing() throws {
        let root = try tree("v2", files: ["cgroup.controllers": "cpuset cpu io memory hugetlb pids\n", "cgroup.subtree_control": "cpu memory\n"])
        let out = try plan(root, ["cgroup2fs"])
        XCTAssertEqual(out, "none: \(root) is cgroup v2 only (unified); crun accepts it as is")
    }

    func testPureV1NeedsNothing() throws {
        let root = try tree("v1", dirs: ["cpu", "cpuacct", "memory", "hugetlb", "pids", "systemd"])
        XCTAssertEqual(try plan(root, ["tmpfs"]), "none: cgroup v1 only (no \(root)/unified); crun accepts it as is")
        // A directory named unified that is not cgroup2 changes nothing.
        try FileManager.default.createDirectory(atPath: root + "/unified", withIntermediateDirectories: true)
        XCTAssertEqual(try plan(root, ["tmpfs", "tmpfs"]), "none: cgroup v1 only (\(root)/unified is tmpfs, not cgroup2); crun accepts it as is")
    }

    func testNotACgroupMountNeedsNothing() throws {
        let root = try tree("plain")
        XCTAssertEqual(try plan(root, ["ext2/ext3"]), "none: \(root) is not a cgroup mount (filesystem ext2/ext3)")
    }

    func orphans(mountinfo: String, cgroups: String) throws -> String {
        let mi = tmp.appendingPathComponent("mountinfo"), pc = tmp.appendingPathComponent("cgroups")
        try mountinfo.write(to: mi, atomically: false, encoding: .utf8)
        try cgroups.write(to: pc, atomically: false, encoding: .utf8)
        let r = try runCommand("/bin/bash", [script, "--cgroup-orphans", mi.path, pc.path], timeout: 30)
        XCTAssertEqual(r.status, 0, "--cgroup-orphans exits 0: \(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// This host's /proc/cgroups and mountinfo after scripts/reset-host.sh unmounted hugetlb (the
    /// hierarchy, ID 10, lives on with its child cgroups): hugetlb is the one to mount again, and
    /// cpu + cpuacct co-mounted in one hierarchy count as one mounted group.
    static let procCgroups = """
        #subsys_name\thierarchy\tnum_cgroups\tenabled
        cpuset\t3\t4\t1
        cpu\t1\t4\t1
        cpuacct\t1\t4\t1
        memory\t4\t84\t1
        net_cls\t0\t4\t1
        hugetlb\t10\t3\t1
        pids\t8\t4\t0

        """
    static let mountinfo = """
        31 26 0:27 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
        32 31 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
        34 31 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

        """

    func testUnmountedV1HierarchyIsFound() throws {
        XCTAssertEqual(try orphans(mountinfo: Self.mountinfo, cgroups: Self.procCgroups), "hugetlb")
    }

    func testEveryHierarchyMountedNeedsNothing() throws {
        let mi = Self.mountinfo + "42 31 0:39 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
        let out = try orphans(mountinfo: mi, cgroups: Self.procCgroups)
        XCTAssertTrue(out.hasPrefix("none: every v1 hierarchy"), out)
    }

    func testCoMountedHierarchyMissingIsOneGroup() throws {
        let mi = Self.mountinfo.split(separator: "\n").filter { !$0.contains("cpu,cpuacct") }.joined(separator: "\n")
            + "\n42 31 0:39 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
        XCTAssertEqual(try orphans(mountinfo: mi, cgroups: Self.procCgroups), "cpu,cpuacct")
    }

    func testPureV2HasNoV1Hierarchies() throws {
        let pc = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t50\t1\nmemory\t0\t50\t1\n"
        let out = try orphans(mountinfo: "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", cgroups: pc)
        XCTAssertTrue(out.hasPrefix("none: "), out)
    }

    /// `--check` changes nothing and reports one line per precondition; exit 0 exactly when all are ok.
    func testCheckReportsEveryPreconditionAndExitsByThem() throws {
        if getuid() != 0 { throw XCTSkip("--check asks dockerd and podman, which needs root: run the tests as root") }
        let r = try runCommand("/bin/bash", [script, "--check"], timeout: 120)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let whats = ["dockerd", "bridge lxcbr0", "cgroup layout crun accepts", "cgroup v1 hierarchies all mounted", "podman", "VM kernel cache", "image edgemeter-base:latest in dockerd",
                     "image edgemeter-base:latest in podman"]
        XCTAssertEqual(lines.count, whats.count, r.stdout + r.stderr)
        for (line, what) in zip(lines, whats) {
            XCTAssertTrue(line.hasPrefix("ok      ") || line.hasPrefix("missing "), line)
            XCTAssertTrue(line.dropFirst(8).hasPrefix(what), "expected \"\(what)\" in: \(line)")
            if line.hasPrefix("missing ") { XCTAssertTrue(line.contains(": "), "a missing item names its fix: \(line)") }
        }
        let anyMissing = lines.contains { $0.hasPrefix("missing ") }
        XCTAssertEqual(r.status, anyMissing ? 1 : 0, r.stdout)
        // The cgroup line agrees with the plan for the real /sys/fs/cgroup.
        let hostPlan = try plan("/sys/fs/cgroup", [])
        let cgroupLine = lines.first { $0.contains("cgroup layout") } ?? ""
        XCTAssertEqual(cgroupLine.hasPrefix("ok      "), hostPlan.hasPrefix("none:"), "\(cgroupLine) vs plan \(hostPlan)")
    }
}
