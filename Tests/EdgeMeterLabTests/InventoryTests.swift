import XCTest
import EdgeMeterLab
import EdgeMeterTestSupport

/// `HostInventory` parsing and diff on recorded command output (no root needed).
final class HostInventoryTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "testdata", withExtension: nil))
        return try String(contentsOf: dir.appendingPathComponent("inventory/\(name).txt"), encoding: .utf8)
    }

    func inventory(_ when: String) throws -> HostInventory {
        HostInventory(entries:
            HostInventory.namespaces(ipNetnsList: try fixture("netns-\(when)")).map { "netns \($0)" }
            + HostInventory.links(ipOLink: try fixture("link-\(when)")).map { "link \($0)" }
            + HostInventory.iptablesRules(try fixture("iptables-\(when)")).map { "iptables \($0)" }
            + HostInventory.nftRules(try fixture("nft-\(when)")).map { "nft \($0)" })
    }

    func testDiffNamesALeftoverNamespaceLinkAndIptablesRuleAndIgnoresCounters() throws {
        let before = try inventory("before"), after = try inventory("after")
        XCTAssertEqual(HostInventory.diff(before, after), [
            "left behind: iptables filter -A FORWARD -i em-9bf9-h0 -j ACCEPT",
            "left behind: link em-9bf9-h0",
            "left behind: netns edgemeter-two-subnet-rt1",
        ])
        XCTAssertEqual(HostInventory.diff(after, before), [
            "gone: iptables filter -A FORWARD -i em-9bf9-h0 -j ACCEPT",
            "gone: link em-9bf9-h0",
            "gone: netns edgemeter-two-subnet-rt1",
        ])
        XCTAssertEqual(HostInventory.diff(before, before), [])
    }

    func testIptablesAndNftLosePacketCountersCommentsAndHandles() throws {
        let rules = HostInventory.iptablesRules(try fixture("iptables-after"))
        XCTAssertTrue(rules.contains("filter :FORWARD DROP"), "\(rules)")
        XCTAssertTrue(rules.contains("nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"), "\(rules)")
        XCTAssertFalse(rules.contains { $0.contains("[") || $0.contains("Generated") || $0.contains("COMMIT") }, "\(rules)")
        XCTAssertEqual(HostInventory.nftRules(try fixture("nft-after")), [
            "table ip filter",
            "table ip filter chain FORWARD",
            "table ip filter chain FORWARD type filter hook forward priority filter; policy drop;",
            "table ip filter chain FORWARD oifname \"docker0\" counter jump DOCKER",
        ])
        // A rule whose target changed is a difference even when the counters are equal.
        var other = try fixture("nft-before")
        other = other.replacingOccurrences(of: "jump DOCKER", with: "accept")
        XCTAssertNotEqual(HostInventory.nftRules(other), HostInventory.nftRules(try fixture("nft-before")))
    }

    func testLinksDropPeerSuffixAndSkipContinuationLines() throws {
        XCTAssertEqual(HostInventory.links(ipOLink: try fixture("link-after")), ["lo", "docker0", "em-9bf9-h0"])
        XCTAssertEqual(HostInventory.namespaces(ipNetnsList: try fixture("netns-after")), ["edgemeter-two-subnet-rt1", "emt1234"])
    }

    func testSecondCopyOfAnObjectAndChangedNotesAreDifferences() {
        let a = HostInventory(entries: ["process edgemeter serve calculator --role sum"])
        let b = HostInventory(entries: ["process edgemeter serve calculator --role sum", "process edgemeter serve calculator --role sum"],
                              notes: ["docker: dockerd not answering"])
        XCTAssertEqual(HostInventory.diff(a, b), ["left behind: process edgemeter serve calculator --role sum",
                                                  "not checked: docker: dockerd not answering"])
    }

    /// A `lab up` killed while writing its state file leaves the temporary: cleanup removes it
    /// unless its topology is up.
    func testStaleStateTemporariesAreRemovedAndLiveOnesKept() throws {
        let dir = NSTemporaryDirectory() + "inv-state-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in [".dat.nosync1A2B.xyz", "killed.json.tmp", "up.json", "up.json.tmp"] {
            try "{}".write(toFile: "\(dir)/\(f)", atomically: false, encoding: .utf8)
        }
        let removed = LabExecutor(stateDirectory: dir).removeStaleTemporaries().sorted()
        XCTAssertEqual(removed, ["stale file \(dir)/.dat.nosync1A2B.xyz", "stale file \(dir)/killed.json.tmp"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["up.json", "up.json.tmp"])
    }

    func testProcessEntriesAreTheBinarysAndEdgemeterQemusOnly() {
        let bin = "/work/x/.build/debug/edgemeter"
        XCTAssertEqual(HostInventory.processEntry(argv: [bin, "serve", "calculator", "--role", "front"], exe: bin, binary: bin),
                       "process edgemeter serve calculator --role front")
        XCTAssertEqual(HostInventory.processEntry(argv: ["edgemeter", "serve"], exe: bin, binary: bin), "process edgemeter serve")
        XCTAssertNil(HostInventory.processEntry(argv: ["/other/edgemeter", "serve"], exe: "/other/edgemeter", binary: bin))
        XCTAssertEqual(HostInventory.processEntry(argv: ["/usr/bin/qemu-system-x86_64", "-name", "edgemeter-vm1"], exe: nil, binary: bin),
                       "qemu qemu-system-x86_64 -name edgemeter-vm1")
        XCTAssertNil(HostInventory.processEntry(argv: ["/usr/bin/qemu-system-x86_64", "-name", "other"], exe: nil, binary: bin))
        XCTAssertNil(HostInventory.processEntry(argv: [], exe: nil, binary: bin))
    }
}

/// Nothing left behind, for real: the host inventory before `lab up two-subnet` and after `lab down`,
/// after SIGINT during `lab up`, and after SIGKILL at random moments of `lab up` followed by
/// `edgemeter cleanup`, must match. Root, iproute2, iptables, busybox and the built binary, as the
/// other lab tests; traffic stays inside the lab (reach only probes routes into the lab).
///
/// The machine is shared with other test runs, so the comparison keeps the entries this run could
/// have made (names of the topology `two-subnet` and its tag, this binary's processes, rules naming
/// its links or subnets, its state files and their temporaries); the whole diff is printed.
final class InventoryIntegrationTests: XCTestCase {
    let topo = "two-subnet"
    let stateDir = "/run/edgemeter/lab"
    var bin = ""
    var tag = ""

    override func setUpWithError() throws {
        if let reason = rootAndIPUnavailableReason() { throw XCTSkip(reason) }
        guard which("iptables") != nil else { throw XCTSkip("needs iptables inside the routers' namespaces: apt-get install iptables") }
        guard which("busybox") != nil else { throw XCTSkip("needs busybox: apt-get install busybox") }
        guard let b = edgemeterBinary() else { throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test`") }
        bin = b
        var h: UInt32 = 0x811c_9dc5
        for b in topo.utf8 { h ^= UInt32(b); h = h &* 0x0100_0193 }
        let hex = String((h >> 16) ^ (h & 0xffff), radix: 16)
        tag = String(repeating: "0", count: 4 - hex.count) + hex
        if FileManager.default.fileExists(atPath: "\(stateDir)/\(topo).json") { _ = try runCommand(bin, ["lab", "down", topo], timeout: 30) }
    }

    func snapshot() async -> HostInventory { await HostInventory.collect(binary: bin) }

    /// Whether a diff line concerns what this run could have made.
    func ours(_ line: String) -> Bool {
        let entry = line.split(separator: " ", maxSplits: 2).dropFirst(2).first.map(String.init) ?? line
        let words = entry.split(separator: " ", maxSplits: 1).map(String.init)
        guard words.count == 2 else { return true }
        let (kind, rest) = (words[0], words[1])
        switch kind {
        case "netns", "link", "bridge": return rest.hasPrefix("edgemeter-\(topo)") || rest.hasPrefix("em-\(tag)")
        case "file": return rest.hasPrefix("\(stateDir)/\(topo).") || rest.hasPrefix("\(stateDir)/.")   // its state file's temporaries too
        case "process": return true
        case "iptables", "nft": return ["em-\(tag)", "edgemeter", "10.203.", "192.168.1.", "192.168.2."].contains { rest.contains($0) }
        default: return false
        }
    }

    func leftoversNow(_ before: HostInventory, _ when: String) async -> [String] {
        leftovers(before, await snapshot(), when)
    }

    func leftovers(_ before: HostInventory, _ after: HostInventory, _ when: String) -> [String] {
        let all = HostInventory.diff(before, after).filter { !$0.hasPrefix("not checked") }
        if !all.isEmpty { print("inventory diff \(when) (all, including other users of this host):\n  " + all.joined(separator: "\n  ")) }
        return all.filter(ours)
    }

    /// Starts `lab up two-subnet`, sends `sig` once the state file records `threshold` objects
    /// plus `extraMicroseconds`; returns the process and the count seen.
    func interruptUp(atObjects threshold: Int, extraMicroseconds: UInt32 = 0, signal sig: Int32) throws -> (Process, Int) {
        try interruptLabUp(bin: bin, name: topo, stateDir: stateDir, atObjects: threshold, extraMicroseconds: extraMicroseconds, signal: sig)
    }

    func testUpThenDownLeavesNothing() async throws {
        let before = await snapshot()
        let up = try runCommand(bin, ["lab", "up", topo], timeout: 60)
        XCTAssertEqual(up.status, 0, up.stderr)
        let during = await snapshot()
        let made = leftovers(before, during, "while up")
        // The inventory sees the lab: its namespaces, host link, state file and five workloads.
        XCTAssertTrue(made.contains("left behind: netns edgemeter-\(topo).fabric"), "\(made)")
        XCTAssertTrue(made.contains("left behind: link em-\(tag)-h0"), "\(made)")
        XCTAssertTrue(made.contains("left behind: file \(stateDir)/\(topo).json"), "\(made)")
        XCTAssertEqual(made.filter { $0.hasPrefix("left behind: process edgemeter serve calculator") }.count, 5, "\(made)")
        // `edgemeter lab inventory --json` prints the same inventory (its own process left out).
        let cli = try runCommand(bin, ["lab", "inventory", "--json"], timeout: 30)
        XCTAssertEqual(cli.status, 0, cli.stderr)
        let printed = try JSONDecoder().decode(HostInventory.self, from: Data(cli.stdout.utf8))
        XCTAssertEqual(leftovers(during, printed, "lab inventory --json vs in-process"), [])
        XCTAssertTrue(printed.entries.contains("netns edgemeter-\(topo)-front"), "\(printed.entries)")
        let down = try runCommand(bin, ["lab", "down", topo], timeout: 30)
        XCTAssertEqual(down.status, 0, down.stderr)
        let left = await leftoversNow(before, "after lab down")
        XCTAssertEqual(left, [])
    }

    func testSIGINTDuringUpLeavesNothing() async throws {
        let before = await snapshot()
        let (p, seen) = try interruptUp(atObjects: 5, signal: SIGINT)
        XCTAssertEqual(p.terminationStatus, 130, "lab up must stop at SIGINT and undo (saw \(seen) objects)")
        let left = await leftoversNow(before, "after SIGINT at \(seen) objects")
        XCTAssertEqual(left, [])
    }

    func testSIGKILLAtRandomMomentsThenCleanupLeavesNothing() async throws {
        let before = await snapshot()
        // two-subnet records 9 objects, then starts five workloads and waits for their ports: one
        // random moment among the first objects, one among the last, one after the workloads started.
        let moments: [(ClosedRange<Int>, ClosedRange<UInt32>)] = [(1...4, 0...20_000), (5...8, 0...20_000), (9...9, 20_000...150_000)]
        for (cycle, (objects, micros)) in moments.enumerated() {
            let threshold = Int.random(in: objects)
            var extra = UInt32.random(in: micros)
            var (p, seen) = try interruptUp(atObjects: threshold, extraMicroseconds: extra, signal: SIGKILL)
            // A quick machine can finish `lab up` inside the random delay: that moment was too late
            // to test a kill, so take the topology down and try again with half the delay.
            for _ in 0..<4 where p.terminationReason == .exit {
                print("cycle \(cycle + 1): lab up finished within \(extra) µs after \(seen) objects; again with half the delay")
                let down = try runCommand(bin, ["lab", "down", topo], timeout: 60)
                XCTAssertEqual(down.status, 0, down.stderr)
                extra /= 2
                (p, seen) = try interruptUp(atObjects: threshold, extraMicroseconds: extra, signal: SIGKILL)
            }
            let moment = "cycle \(cycle + 1): SIGKILL at \(seen) objects + \(extra) µs"
            print(moment)
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, "lab up finished before it could be killed (\(moment))")
            let left = await leftoversNow(before, "after \(moment)")
            XCTAssertFalse(left.isEmpty,
                           "the kill left nothing for cleanup to find (\(moment)): the inventory misses the lab's objects")
            let clean = try runCommand(bin, ["cleanup"], timeout: 60)
            XCTAssertEqual(clean.status, 0, clean.stderr)
            let cleaned = await leftoversNow(before, "after \(moment) and cleanup")
            XCTAssertEqual(cleaned, [], moment)
        }
    }

    func testUpWithExpectRunsReachAsTheLastStep() async throws {
        let expected = packageRoot().appendingPathComponent("benchmarks/topologies/expected").path
        let out = NSTemporaryDirectory() + "inv-reach-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        // A bad expectation file: refused before anything is built.
        let before = await snapshot()
        let bad = try runCommand(bin, ["lab", "up", topo, "--expect", "/nonexistent/matrix.csv"], timeout: 30)
        XCTAssertEqual(bad.status, 2, bad.stdout + bad.stderr)
        XCTAssertTrue(bad.stderr.contains("cannot read the expected matrix /nonexistent/matrix.csv"), bad.stderr)
        let left = await leftoversNow(before, "after a refused --expect")
        XCTAssertEqual(left, [])
        // The matching matrix: exit 0.
        let ok = try runCommand(bin, ["lab", "up", topo, "--expect", "\(expected)/two-subnet-before.csv", "--out", out + "/a"], timeout: 60)
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        XCTAssertTrue(ok.stdout.contains("matches \(expected)/two-subnet-before.csv: 105 probes as expected"), ok.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/a/reach.csv"))
        _ = try runCommand(bin, ["lab", "down", topo], timeout: 30)
        // The matrix after the route: front reaches Net2 there, not here: exit 1, still up.
        let diff = try runCommand(bin, ["lab", "up", topo, "--expect", "\(expected)/two-subnet-after.csv", "--out", out + "/b"], timeout: 60)
        XCTAssertEqual(diff.status, 1, diff.stdout + diff.stderr)
        XCTAssertTrue(diff.stdout.contains("difference(s) from \(expected)/two-subnet-after.csv"), diff.stdout)
        XCTAssertTrue(diff.stdout.contains("from front to sum tcp 192.168.2.1:50001: expected reachable, got "), diff.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(stateDir)/\(topo).json"), "the topology stays up after a difference")
        let down = try runCommand(bin, ["lab", "down", topo], timeout: 30)
        XCTAssertEqual(down.status, 0, down.stderr)
        let leftEnd = await leftoversNow(before, "after the --expect runs")
        XCTAssertEqual(leftEnd, [])
    }
}
