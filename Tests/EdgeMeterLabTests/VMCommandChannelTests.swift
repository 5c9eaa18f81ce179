import XCTest
import EdgeMeterSystem
@testable import EdgeMeterLab

/// The vm command channel against the guest's own loop (`LabExecutor.vmCommandLoop`, run by the
/// host's busybox sh on an accepted unix socket, as QEMU's ttyS1 socket would carry it), and the
/// vm probes' parsing of real busybox output. Traffic goes to 127.0.0.1 only.
final class VMCommandChannelTests: XCTestCase {
    var path = ""
    var listener: Int32 = -1
    var shell: ChildProcess?
    /// A PATH of busybox applets only, as in the guest's /bin.
    var applets = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/busybox") else { throw XCTSkip("needs /bin/busybox: apt-get install busybox-static") }
        applets = NSTemporaryDirectory() + "vmchan-bin-\(getpid())"
        try? FileManager.default.removeItem(atPath: applets)
        try FileManager.default.createDirectory(atPath: applets, withIntermediateDirectories: true)
        for a in ["sh", "ping", "nc", "ip", "sleep", "echo", "true"] {
            try FileManager.default.createSymbolicLink(atPath: "\(applets)/\(a)", withDestinationPath: "/bin/busybox")
        }
        path = NSTemporaryDirectory() + "vmchan-\(getpid()).sock"
        unlink(path)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        listener = socket(AF_UNIX, 1 /* SOCK_STREAM */, 0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(listen(listener, 1), 0)
    }

    override func tearDown() {
        shell?.signal(SIGKILL)
        _ = shell?.waitBlocking()
        if listener >= 0 { close(listener) }
        unlink(path)
        try? FileManager.default.removeItem(atPath: applets)
    }

    /// Connects a channel and serves it with the guest's loop in busybox sh.
    func connectChannel() throws -> VMCommandChannel {
        let channel = try VMCommandChannel(path: path)
        let conn = accept(listener, nil, nil)
        XCTAssertGreaterThanOrEqual(conn, 0)
        shell = try ChildProcess(["/bin/busybox", "sh", "-c", LabExecutor.vmCommandLoop], stdinFD: conn, stdoutFD: conn, stderrFD: conn,
                                   environment: ["PATH": applets])
        close(conn)
        return channel
    }

    func testCommandsComeBackWithTheirOutputAndExitStatusInOrder() throws {
        let c = try connectChannel()
        let a = c.run("echo one; echo two >&2; (exit 3)", timeout: .seconds(10))
        XCTAssertEqual(a.status, 3)
        XCTAssertEqual(a.output, "one\ntwo")
        let b = c.run("echo three", timeout: .seconds(10))
        XCTAssertEqual(b.status, 0)
        XCTAssertEqual(b.output, "three")
    }

    func testATimedOutCommandDoesNotLeakIntoTheNextAnswer() throws {
        let c = try connectChannel()
        let slow = c.run("sleep 1; echo late", timeout: .milliseconds(200))
        XCTAssertNil(slow.status)
        let next = c.run("echo next", timeout: .seconds(10))
        XCTAssertEqual(next.status, 0)
        XCTAssertEqual(next.output, "next", "the late answer of the previous command is skipped")
    }

    /// The guest's /init serves the loop on ttyS1, raw and without echo, before the ready marker.
    func testInitScriptServesTheLoopOnTtyS1BeforeTheReadyMarker() {
        let script = LabExecutor.vmInitScript(address: "10.237.0.12", prefixLength: 24, routes: [], workload: [])
        let loop = "stty -F /dev/ttyS1 raw -echo\n(\(LabExecutor.vmCommandLoop)) </dev/ttyS1 >/dev/ttyS1 2>&1 &\necho \(LabExecutor.vmReadyMarker)\n"
        XCTAssertTrue(script.contains(loop), script)
    }

    func testMissingSocketIsAClearError() {
        XCTAssertThrowsError(try VMCommandChannel(path: path + ".nope")) { e in
            XCTAssertTrue("\(e)".contains("cannot connect to the vm command channel"), "\(e)")
        }
    }

    /// busybox ping and nc through the channel on loopback: the guest-side parsers on real output.
    func testBusyboxPingAndNCThroughTheChannel() throws {
        let c = try connectChannel()
        let runner = ReachRunner()
        let icmp = runner.vmICMP(c, probe: ReachProbe(from: "v", to: "lo", kind: .icmp, address: "127.0.0.1"))
        XCTAssertTrue(icmp.reachable, "\(icmp)")
        XCTAssertGreaterThan(icmp.rttP50Milliseconds ?? 0, 0)
        // A port nothing listens on (bound then closed, so it was free a moment ago).
        let s = socket(AF_INET, 1 /* SOCK_STREAM */, 0)
        var sin = sockaddr_in(); sin.sin_family = sa_family_t(AF_INET); sin.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        let freePort = Int(UInt16(bigEndian: sin.sin_port))
        close(s)
        let refused = runner.vmTCP(c, probe: ReachProbe(from: "v", to: "lo", kind: .tcp, address: "127.0.0.1", port: freePort))
        XCTAssertEqual(refused.outcome, "refused", "\(refused)")
        // A listener that accepts nothing and never talks: connected all the same, and nc does not hang.
        let l = socket(AF_INET, 1 /* SOCK_STREAM */, 0)
        defer { close(l) }
        var lin = sockaddr_in(); lin.sin_family = sa_family_t(AF_INET); lin.sin_addr.s_addr = inet_addr("127.0.0.1")
        var llen = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &lin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, llen) } }
        XCTAssertEqual(listen(l, 8), 0)
        _ = withUnsafeMutablePointer(to: &lin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(l, $0, &llen) } }
        let open = runner.vmTCP(c, probe: ReachProbe(from: "v", to: "lo", kind: .tcp, address: "127.0.0.1", port: Int(UInt16(bigEndian: lin.sin_port))))
        XCTAssertTrue(open.reachable, "\(open)")
    }

    /// The route check runs in the "guest" (here the host's shell): 127.0.0.1 goes through `lo`,
    /// not the guest's lab link `eth0`, so nothing is probed.
    func testRouteThroughAnotherDeviceThanEth0LeavesTheLab() throws {
        guard which("ip") != nil else { throw XCTSkip("needs iproute2's ip") }
        // probeFromVM opens its own channel: serve it from a thread.
        let listenerFD = listener
        let env = ["PATH": applets]
        let served = DispatchSemaphore(value: 0)
        let box = ShellBox()
        Thread {
            let conn = accept(listenerFD, nil, nil)
            box.shell = try? ChildProcess(["/bin/busybox", "sh", "-c", LabExecutor.vmCommandLoop], stdinFD: conn, stdoutFD: conn, stderrFD: conn,
                                        environment: env)
            close(conn)
            served.signal()
        }.start()
        let p = ReachProbe(from: "v", to: "lo", kind: .icmp, address: "127.0.0.1")
        let r = ReachRunner().probeFromVM(socket: path, pairs: [(address: "127.0.0.1", probes: [p]),
                                                                (address: "1.2.3.4; reboot", probes: [ReachProbe(from: "v", to: "x", kind: .icmp, address: "1.2.3.4; reboot")])])
        served.wait()
        shell = box.shell
        XCTAssertEqual(r.first { $0.probe == p }?.outcome, "not probed: the route leaves the lab", "\(r)")
        XCTAssertEqual(r.first { $0.probe != p }?.outcome, "no route", "a non-numeric address is never sent: \(r)")
    }
}

private final class ShellBox: @unchecked Sendable { var shell: ChildProcess? }
