import XCTest
@testable import EdgeMeterCore

/// The footprint's kernel-file parsers on texts captured from this host (cgroup v1, kernel 6.18)
/// and on cgroup v2 texts laid out as the kernel documents them (Documentation/admin-guide/cgroup-v2.rst).
final class ProcFSTests: XCTestCase {
    func golden(_ name: String) throws -> String {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "golden/footprint/\(name)", withExtension: nil), "golden/footprint/\(name) missing")
        return try String(contentsOf: url, encoding: .utf8)
    }

    func testSmapsRollupCapturedFromSleep() throws {
        let r = try ProcFS.smapsRollup(try golden("smaps_rollup.txt"))
        let text = try golden("smaps_rollup.txt")
        // The same figures read straight from the text: kB × 1024.
        let rssLine = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("Rss:") })
        let kb = try XCTUnwrap(UInt64(rssLine.split(separator: " ")[1]))
        XCTAssertEqual(r.rssBytes, kb * 1024)
        XCTAssertGreaterThan(r.rssBytes, r.pssBytes, "a sleep shares libc with every other process: PSS < RSS")
        XCTAssertGreaterThan(r.pssBytes, 0)
    }

    func testSmapsRollupArithmetic() throws {
        let r = try ProcFS.smapsRollup("00400000-7fff [rollup]\nRss:   1764 kB\nPss:    200 kB\nPss_Anon:  116 kB\nSwap: 8 kB\n")
        let kb: UInt64 = 1024
        let expected = ProcFS.SmapsRollup(rssBytes: 1764 * kb, pssBytes: 200 * kb, pssAnonBytes: 116 * kb, swapBytes: 8 * kb)
        XCTAssertEqual(r, expected)
        XCTAssertThrowsError(try ProcFS.smapsRollup("nothing here", file: "/proc/1/smaps_rollup")) { e in
            XCTAssertTrue("\(e)".contains("/proc/1/smaps_rollup has no Rss:/Pss:"), "\(e)")
        }
    }

    func testSmapsPssSumAddsEveryMapping() {
        let text = "55-56 r--p 0 08:01 1 /bin/x\nRss: 8 kB\nPss: 4 kB\nPss_Anon: 0 kB\n7f-80 rw-p 0 0 0\nRss: 12 kB\nPss: 12 kB\n"
        XCTAssertEqual(ProcFS.smapsPssSum(text), 16 * 1024, "Pss_Anon must not be counted, only Pss:")
    }

    func testProcessStatCaptured() throws {
        let s = try ProcFS.processStat(try golden("stat.txt"))
        XCTAssertEqual(s.comm, "sleep")
        XCTAssertEqual(s.state, "S")
        XCTAssertEqual(s.rssPages, 389)
        XCTAssertEqual(s.startTimeTicks, 2058045)
    }

    func testProcessStatCommWithParenthesesAndSpaces() throws {
        // 24 fields; utime=7, stime=3 (fields 14, 15).
        let text = "42 (a) b (c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 555 1000 77 0\n"
        let s = try ProcFS.processStat(text)
        XCTAssertEqual(s.pid, 42)
        XCTAssertEqual(s.comm, "a) b (c")
        XCTAssertEqual(s.ppid, 1)
        XCTAssertEqual(s.utimeTicks, 7)
        XCTAssertEqual(s.stimeTicks, 3)
        XCTAssertEqual(s.cpuSeconds(ticksPerSecond: 100), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.rssPages, 77)
        XCTAssertThrowsError(try ProcFS.processStat("42 (x) R 1 2\n", file: "/proc/42/stat")) { e in
            XCTAssertTrue("\(e)".contains("/proc/42/stat: 5 fields, expected at least 24"), "\(e)")
        }
    }

    func testCgroupPathsV1AndV2() throws {
        let v1 = try ProcFS.cgroupEntries(try golden("cgroup-v1.txt"))
        XCTAssertEqual(ProcFS.cgroupPath(v1, controller: "memory"), "/process_api/a58da57d7fbdd64e2ad0f3d605b2fa7f")
        XCTAssertEqual(ProcFS.cgroupPath(v1, controller: "cpuacct"), "/")
        XCTAssertEqual(ProcFS.cgroupPath(v1, controller: nil), "/")
        let v2 = try ProcFS.cgroupEntries(try golden("cgroup-v2.txt"))
        XCTAssertEqual(ProcFS.cgroupPath(v2, controller: nil), "/system.slice/docker-3f2a.scope")
        XCTAssertNil(ProcFS.cgroupPath(v2, controller: "memory"))
        // A path with a colon stays whole.
        XCTAssertEqual(try ProcFS.cgroupEntries("4:memory:/a:b\n")[0].path, "/a:b")
        XCTAssertThrowsError(try ProcFS.cgroupEntries("garbage\n"))
    }

    func testCgroupReadingV1Captured() throws {
        let stat = try golden("memory.stat-v1.txt")
        let r = try CgroupReading.parse(layout: .v1, memory: "104857600\n", memoryStat: stat, cpu: "2500000123\n")
        XCTAssertEqual(r.memoryBytes, 104_857_600)
        XCTAssertEqual(r.anonBytes, 1_544_384_512, "v1 anon is total_rss (hierarchical), not rss")
        XCTAssertEqual(r.cpuMicroseconds, 2_500_000, "cpuacct.usage is in ns")
    }

    func testCgroupReadingV2() throws {
        let r = try CgroupReading.parse(layout: .v2, memory: try golden("memory.current-v2.txt"),
                                        memoryStat: try golden("memory.stat-v2.txt"), cpu: try golden("cpu.stat-v2.txt"))
        XCTAssertEqual(r, CgroupReading(memoryBytes: 5_767_168, anonBytes: 1_462_272, fileBytes: 4_096_000, cpuMicroseconds: 123_456))
        XCTAssertThrowsError(try CgroupReading.parse(layout: .v2, memory: "max\n", memoryStat: "", cpu: "usage_usec 1\n")) { e in
            XCTAssertTrue("\(e)".contains("memory.current should hold one integer"), "\(e)")
        }
    }

    func testInterfaceCounterDeltas() {
        let a = InterfaceCounters(rxBytes: 100, txBytes: 50, rxPackets: 2, txPackets: 1)
        let b = InterfaceCounters(rxBytes: 1100, txBytes: 2050, rxPackets: 12, txPackets: 11)
        XCTAssertEqual(b.since(a), InterfaceCounters(rxBytes: 1000, txBytes: 2000, rxPackets: 10, txPackets: 10))
        XCTAssertEqual(b.since(a).bytes, 3000)
        XCTAssertEqual(a.since(b).rxBytes, 100, "a counter that went back counts from 0")
    }
}

final class ProcFSNetDevTests: XCTestCase {
    func testNetDevColumns() throws {
        let text = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo:    1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
          eth0: 5 1 0 0 0 0 0 0 7 3 0 0 0 0 0 0
        """
        let t = try ProcFS.netDev(text)
        XCTAssertEqual(t["lo"], InterfaceCounters(rxBytes: 1000, txBytes: 2000, rxPackets: 10, txPackets: 20))
        XCTAssertEqual(t["eth0"], InterfaceCounters(rxBytes: 5, txBytes: 7, rxPackets: 1, txPackets: 3))
        XCTAssertThrowsError(try ProcFS.netDev("  eth0: 1 2 3\n", file: "/proc/9/net/dev")) { e in
            XCTAssertTrue("\(e)".contains("/proc/9/net/dev: interface eth0 has 3 counters"), "\(e)")
        }
    }

    func testNetDevCaptured() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "golden/footprint/net-dev.txt", withExtension: nil))
        let t = try ProcFS.netDev(try String(contentsOf: url, encoding: .utf8))
        XCTAssertNotNil(t["lo"])
        XCTAssertGreaterThan(t["lo"]?.rxPackets ?? 0, 0)
    }
}

final class RuleCounterTests: XCTestCase {
    func testCountersOfTheCommentedRulesAreSummed() {
        let text = """
        Chain OUTPUT (policy ACCEPT 0 packets, 0 bytes)
            pkts      bytes target     prot opt in     out     source               destination
             300    21000            6    --  *      lo      0.0.0.0/0            0.0.0.0/0            tcp dpt:41255 /* edgemeter-footprint-ab */
             200    52000            6    --  *      lo      0.0.0.0/0            0.0.0.0/0            tcp spt:41255 /* edgemeter-footprint-ab */
               7      700            6    --  *      lo      0.0.0.0/0            0.0.0.0/0            tcp dpt:1 /* edgemeter-footprint-cd */
        """
        let c = ProcFS.ruleCounters(text, comment: "edgemeter-footprint-ab")
        XCTAssertEqual(c?.packets, 500)
        XCTAssertEqual(c?.bytes, 73000)
        XCTAssertNil(ProcFS.ruleCounters(text, comment: "edgemeter-footprint-zz"))
    }

    /// `iptables -S` as iptables 1.8.9 (nf_tables) prints it here: only the footprint rules with
    /// the prefix become deletions, in the order listed, and a quoted comment is never split.
    func testRuleDeletionsFromIptablesS() {
        let text = """
        -P INPUT ACCEPT
        -P OUTPUT ACCEPT
        -N DOCKER
        -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A OUTPUT -o lo -p tcp -m tcp --dport 41255 -m comment --comment edgemeter-footprint-ab12
        -A OUTPUT -o lo -p tcp -m tcp --sport 41255 -m comment --comment edgemeter-footprint-ab12
        -A OUTPUT -o lo -p tcp -m tcp --dport 1 -m comment --comment edgemeter-footprint-cd34
        -A OUTPUT -o lo -p tcp -m tcp --dport 2 -m comment --comment "edgemeter-footprint-x y"
        -A OUTPUT -o lo -p tcp -m tcp --dport 3 -m comment --comment other-footprint-ab12
        """
        XCTAssertEqual(ProcFS.ruleDeletions(text, commentPrefix: "edgemeter-footprint-ab12"), [
            ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "tcp", "--dport", "41255", "-m", "comment", "--comment", "edgemeter-footprint-ab12"],
            ["OUTPUT", "-o", "lo", "-p", "tcp", "-m", "tcp", "--sport", "41255", "-m", "comment", "--comment", "edgemeter-footprint-ab12"],
        ])
        XCTAssertEqual(ProcFS.ruleDeletions(text, commentPrefix: "edgemeter-footprint-").count, 3)
        XCTAssertEqual(ProcFS.ruleDeletions(text, commentPrefix: "edgemeter-footprint-zz"), [])
    }
}
