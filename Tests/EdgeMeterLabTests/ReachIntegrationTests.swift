import XCTest
import EdgeMeterTestSupport

/// `edgemeter reach` on real topologies, compared with the expected matrices shipped under
/// benchmarks/topologies/expected/. Same set-up and safety checks as the other lab tests (root,
/// iproute2, iptables, busybox, the built binary); every probe runs inside lab namespaces or from the
/// host to addresses whose route leads into the lab's own host link.
extension LabIntegrationTests {
    var expectedDir: String { root.appendingPathComponent("benchmarks/topologies/expected").path }

    func reach(_ name: String, expect: String?, out: String) throws -> (CommandResult, TimeInterval) {
        let start = Date()
        var args = ["reach", name, "--out", out]
        if let expect { args += ["--expect", "\(expectedDir)/\(expect)"] }
        let r = try edgemeter(args, timeout: 60)
        return (r, Date().timeIntervalSince(start))
    }

    func testReachNATMatchesItsExpectedMatrix() throws {
        let name = "nat", t = try tag(name)
        try downIfUp(name)
        let before = try inventory(name, tag: t)
        let out = NSTemporaryDirectory() + "reach-nat-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let up = try edgemeter(["lab", "up", name], timeout: 120)
        XCTAssertEqual(up.status, 0, up.stderr)
        if up.status == 0 {
            let (r, seconds) = try reach(name, expect: "nat.csv", out: out)
            XCTAssertEqual(r.status, 0, "nat must match its expected matrix:\n\(r.stdout)\(r.stderr)")
            print(String(format: "nat: reach wall time %.3f s", seconds))
            let csv = (try? String(contentsOfFile: "\(out)/reach.csv", encoding: .utf8)) ?? ""
            // The lab's findings, read from the CSV itself: guest reaches peer, peer does not reach
            // the guest, peer reaches the guest's port 22 through host:1234.
            XCTAssertTrue(csv.contains("guest,peer,icmp 10.201.0.20,yes,"), csv)
            XCTAssertTrue(csv.contains("guest,peer,tcp 10.201.0.20:8080,yes,"), csv)
            XCTAssertTrue(csv.contains("peer,guest,tcp 10.0.2.15:22,no,"), csv)
            XCTAssertTrue(csv.contains("peer,host,tcp 10.201.0.1:1234,yes,"), csv)
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/reach.md"))
            // The nat topology gives the host no address in the lab: nothing may be sent from the host.
            for line in csv.split(separator: "\n") where line.hasPrefix("(host),") {
                XCTAssertTrue(line.contains(",no,not probed: the route leaves the lab,") || line.contains(",no,no route,"), String(line))
            }
        }
        let down = try edgemeter(["lab", "down", name])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(try inventory(name, tag: t), before)
    }

    func testReachTwoSubnetBeforeAndAfterTheRouteAndAMismatch() throws {
        let name = "two-subnet", t = try tag(name)
        try downIfUp(name)
        let before = try inventory(name, tag: t)
        let out = NSTemporaryDirectory() + "reach-two-subnet-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let up = try edgemeter(["lab", "up", name], timeout: 120)
        XCTAssertEqual(up.status, 0, up.stderr)
        if up.status == 0 {
            let (r1, s1) = try reach(name, expect: "two-subnet-before.csv", out: out + "/before")
            XCTAssertEqual(r1.status, 0, "before the route:\n\(r1.stdout)\(r1.stderr)")
            print(String(format: "two-subnet (7 nodes): reach wall time %.3f s before the route", s1))
            XCTAssertLessThan(s1, 5, "reach on 7 nodes must take under 5 s")

            let add = try edgemeter(["lab", "route", "add", name, "front", "192.168.2.0/24", "via", "rt2"])
            XCTAssertEqual(add.status, 0, add.stderr)
            let (r2, s2) = try reach(name, expect: "two-subnet-after.csv", out: out + "/after")
            XCTAssertEqual(r2.status, 0, "after the route:\n\(r2.stdout)\(r2.stderr)")
            print(String(format: "two-subnet (7 nodes): reach wall time %.3f s after the route", s2))
            XCTAssertLessThan(s2, 5, "reach on 7 nodes must take under 5 s")

            // A deliberate mismatch: the "before" expectation while the route is there.
            let (r3, _) = try reach(name, expect: "two-subnet-before.csv", out: out + "/mismatch")
            XCTAssertEqual(r3.status, 1, "a matrix that differs from --expect must exit 1:\n\(r3.stdout)\(r3.stderr)")
            XCTAssertTrue(r3.stdout.contains("from front to sum tcp 192.168.2.1:50001: expected not reachable, got reachable"), r3.stdout)
            XCTAssertTrue(r3.stdout.contains("from front to sum icmp 192.168.2.1: expected not reachable, got reachable"), r3.stdout)
            XCTAssertTrue(r3.stdout.contains("difference(s) from"), r3.stdout)

            // Not up: exit 2 with the next step.
            let missing = try edgemeter(["reach", "no-such-topology"])
            XCTAssertEqual(missing.status, 2)
            XCTAssertTrue(missing.stderr.contains("no-such-topology"), missing.stderr)
        }
        let down = try edgemeter(["lab", "down", name])
        XCTAssertEqual(down.status, 0, down.stderr)
        XCTAssertEqual(try inventory(name, tag: t), before)
    }
}
