@testable import EdgeMeterSystem
import Foundation
import XCTest

/// The iproute2 API for real: a namespace, a veth pair and a bridge this test creates, traffic across
/// them (only to addresses inside those links), and nothing left afterwards.
final class IPRouteTests: XCTestCase {
    func requireRootAndIP() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root for network namespaces: run the tests as root") }
        guard which("ip") != nil else { throw XCTSkip("needs iproute2's `ip`: apt-get install -y iproute2") }
    }

    func testNamespaceVethBridgePingRouteSysctlAndCleanup() async throws {
        try requireRootAndIP()
        guard let ping = which("ping") else { throw XCTSkip("needs iputils' ping: apt-get install -y iputils-ping") }
        guard which("sysctl") != nil else { throw XCTSkip("needs sysctl: apt-get install -y procps") }
        let ip = IPRoute()
        let n = UInt32.random(in: 0..<1_000_000)
        let tag = String(format: "%05x", n % 0xfffff)
        let ns = "edgemeter-st\(tag)", bridge = try Names.interfaceName("b\(tag)")
        let hostSide = try Names.interfaceName("h\(tag)"), nsSide = try Names.interfaceName("n\(tag)")
        // A /30 only this test uses: 10.25x.y.1 on the bridge, .2 in the namespace.
        let a = 250 + Int(n % 5), b = Int(n / 5 % 64) * 4
        let bridgeAddress = "10.\(a).\(b).1", nsAddress = "10.\(a).\(b).2"
        let extraNet = "10.\(a).\(b + 1).0/30"  // a route added and removed inside the namespace

        var cleaned = false
        func cleanup() async {
            if cleaned { return }
            cleaned = true
            try? await ip.deleteNamespace(ns)
            try? await ip.deleteLink(bridge)
        }
        do {
            try await ip.addNamespace(ns)
            try await ip.addBridge(bridge)
            try await ip.addAddress("\(bridgeAddress)/30", dev: bridge)
            try await ip.setLink(bridge, up: true)
            try await ip.addVeth(hostSide, peer: nsSide)
            try await ip.moveLink(nsSide, toNamespace: ns)
            try await ip.enslave(hostSide, to: bridge, up: true)
            try await ip.addAddress("\(nsAddress)/30", dev: nsSide, netns: ns)
            try await ip.setLink(nsSide, up: true, netns: ns)
            try await ip.setLink("lo", up: true, netns: ns)

            let namespaces = try await ip.namespaces()
            XCTAssertTrue(namespaces.contains(ns), "\(namespaces)")
            let hostLinks = try await ip.links()
            XCTAssertTrue(hostLinks.contains(bridge) && hostLinks.contains(hostSide), "\(hostLinks)")
            XCTAssertFalse(hostLinks.contains(nsSide), "the peer was moved into \(ns)")
            let nsLinks = try await ip.links(netns: ns)
            XCTAssertEqual(Set(nsLinks), ["lo", nsSide])
            let bridgeExists = try await ip.linkExists(bridge)
            XCTAssertTrue(bridgeExists)

            // The routes lead into the links this test made, so the pings cannot go anywhere else.
            let hostRoute = try await ip.routeDevice(to: nsAddress)
            XCTAssertEqual(hostRoute, bridge)
            let nsRoute = try await ip.routeDevice(to: bridgeAddress, netns: ns)
            XCTAssertEqual(nsRoute, nsSide)
            let fromHost = try await Command.run([ping, "-c", "2", "-i", "0.2", "-W", "2", nsAddress], timeout: .seconds(20))
            XCTAssertEqual(fromHost.status, 0, "ping \(nsAddress) from the host: \(fromHost.combined)")
            XCTAssertTrue(fromHost.stdout.contains("2 received"), fromHost.stdout)
            let fromNs = try await ip.exec(in: ns, [ping, "-c", "2", "-i", "0.2", "-W", "2", bridgeAddress], timeout: .seconds(20))
            XCTAssertEqual(fromNs.status, 0, "ping \(bridgeAddress) from \(ns): \(fromNs.combined)")
            XCTAssertTrue(fromNs.stdout.contains("2 received"), fromNs.stdout)

            // route add/del inside the namespace, checked with `ip route get`.
            let probe = "10.\(a).\(b + 1).1"
            try await ip.addRoute(extraNet, via: bridgeAddress, netns: ns)
            let viaRoute = try await ip.run(["-o", "route", "get", probe], netns: ns).stdout
            XCTAssertTrue(viaRoute.contains("via \(bridgeAddress) dev \(nsSide)"), viaRoute)
            try await ip.deleteRoute(extraNet, via: bridgeAddress, netns: ns)
            let gone = try await ip.result(["-o", "route", "get", probe], netns: ns)
            XCTAssertFalse(gone.ok, "the namespace has no default route, so \(probe) is unreachable once the route is gone: \(gone.stdout)")

            // A sysctl set in the namespace is the namespace's own.
            let hostForward = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let flipped = hostForward == "1" ? "0" : "1"
            try await ip.setSysctl("net.ipv4.ip_forward", flipped, netns: ns)
            let inNs = try await ip.sysctl("net.ipv4.ip_forward", netns: ns)
            XCTAssertEqual(inNs, flipped)
            let hostAfter = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_forward", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(hostAfter, hostForward, "the host's sysctl changed")

            // Delete: the namespace takes its veth end, and with it the host end; then the bridge.
            try await ip.deleteNamespace(ns)
            try await ip.deleteLink(bridge)
            cleaned = true
            let leftNs = try await Command.run(["ip", "netns", "list"])
            XCTAssertFalse(leftNs.stdout.contains(ns), leftNs.stdout)
            let leftLinks = try await Command.run(["ip", "-o", "link"])
            for name in [bridge, hostSide, nsSide] {
                XCTAssertFalse(leftLinks.stdout.contains(" \(name):") || leftLinks.stdout.contains(" \(name)@"), "\(name) left: \(leftLinks.stdout)")
            }
        } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }

    /// The composite helpers the startup backends and the test support use: a bridge made only
    /// when missing, a namespace joined to it (or to the host) by a veth pair, and the undo of a
    /// namespace that fails half-way.
    func testEnsureBridgeAndNamespaceJoinedByAVethPair() async throws {
        try requireRootAndIP()
        guard let ping = which("ping") else { throw XCTSkip("needs iputils' ping: apt-get install -y iputils-ping") }
        let ip = IPRoute()
        let n = UInt32.random(in: 0..<1_000_000)
        let tag = String(format: "%05x", n % 0xfffff)
        let bridge = try Names.interfaceName("c\(tag)"), ns1 = "edgemeter-sj\(tag)", ns2 = "edgemeter-sk\(tag)"
        let a = 250 + Int(n % 5), b = Int(n / 5 % 64) * 4
        defer {
            Task.detached {
                for ns in [ns1, ns2] { try? await IPRoute().deleteNamespace(ns) }
                try? await IPRoute().deleteLink(bridge)
            }
        }
        let created = try await ip.ensureBridge(bridge, address: "10.\(a).\(b).1/30")
        XCTAssertTrue(created)
        let again = try await ip.ensureBridge(bridge, address: "10.\(a).\(b).1/30")
        XCTAssertFalse(again, "an existing bridge is left alone and not reported as made here")

        // Into the bridge: the namespace reaches the bridge's address.
        try await ip.addNamespace(ns1, hostEnd: try Names.interfaceName("h\(tag)"), namespaceEnd: "eth0",
                                  namespaceAddress: "10.\(a).\(b).2/30", bridge: bridge)
        let viaBridge = try await ip.exec(in: ns1, [ping, "-c", "1", "-W", "2", "10.\(a).\(b).1"], timeout: .seconds(10))
        XCTAssertEqual(viaBridge.status, 0, viaBridge.combined)
        // To the host: both ends addressed, reachable both ways.
        let host2 = try Names.interfaceName("g\(tag)")
        try await ip.addNamespace(ns2, hostEnd: host2, namespaceEnd: "eth0", namespaceAddress: "10.\(a).\(b + 1).2/30",
                                  hostAddress: "10.\(a).\(b + 1).1/30")
        let toNs = try await Command.run([ping, "-c", "1", "-W", "2", "10.\(a).\(b + 1).2"], timeout: .seconds(10))
        XCTAssertEqual(toNs.status, 0, toNs.combined)
        let nsLinks = try await ip.links(netns: ns2)
        XCTAssertEqual(Set(nsLinks), ["lo", "eth0"])

        // A failure half-way (the address clashes with one this test gave) leaves nothing behind.
        let ns3 = "edgemeter-sl\(tag)", host3 = try Names.interfaceName("f\(tag)")
        do {
            try await ip.addNamespace(ns3, hostEnd: host3, namespaceEnd: "eth0", namespaceAddress: "10.\(a).\(b + 2).2/30", bridge: "em-nosuch\(tag)")
            XCTFail("enslaving to a missing bridge must fail")
        } catch let e as SystemError {
            XCTAssertTrue(e.commandLine.contains("master em-nosuch\(tag)"), e.message)
        }
        let namespaces = try await ip.namespaces()
        XCTAssertFalse(namespaces.contains(ns3), "the half-made namespace was deleted")
        let h3 = try await ip.linkExists(host3)
        XCTAssertFalse(h3, "and its veth pair with it")

        for ns in [ns1, ns2] { try await ip.deleteNamespace(ns) }
        try await ip.deleteLink(bridge)
        let gone = try await ip.linkExists(bridge)
        XCTAssertFalse(gone)
    }

    func testFailuresNameTheCommandAndItsStderr() async throws {
        try requireRootAndIP()
        let ip = IPRoute()
        do {
            try await ip.deleteLink("em-nosuch0")
            XCTFail("deleting a missing link must fail")
        } catch let e as SystemError {
            XCTAssertEqual(e.command, ["ip", "link", "del", "em-nosuch0"])
            XCTAssertEqual(e.status, 1)
            XCTAssertTrue(e.output.contains("Cannot find device"), e.output)
            XCTAssertTrue(e.message.hasPrefix("`ip link del em-nosuch0` failed (exit status 1): "), e.message)
            XCTAssertTrue(e.message.contains("Cannot find device \"em-nosuch0\""), e.message)
        }
        do {
            try await ip.setLink("lo", up: true, netns: "edgemeter-nosuch-ns")
            XCTFail("a missing namespace must fail")
        } catch let e as SystemError {
            XCTAssertEqual(e.command, ["ip", "-n", "edgemeter-nosuch-ns", "link", "set", "lo", "up"])
            XCTAssertFalse(e.output.isEmpty)
        }
        let exists = try await ip.linkExists("em-nosuch0")
        XCTAssertFalse(exists)
    }

    func testMissingIPSaysWhichPackage() async throws {
        let ip = IPRoute(program: "em-no-such-ip")
        do {
            _ = try await ip.namespaces()
            XCTFail("expected an error")
        } catch let e as SystemError {
            XCTAssertEqual(e.message, "iproute2's `em-no-such-ip` not found on PATH: apt-get install -y iproute2")
        }
    }

    /// Bad names and addresses fail before any command runs (no root needed).
    func testBadArgumentsFailBeforeRunning() async throws {
        let ip = IPRoute(program: "/nonexistent/ip")  // would fail differently if anything ran
        func message(_ body: () async throws -> Void) async -> String {
            do { try await body(); return "no error" } catch { return "\(error)" }
        }
        let long = await message { try await ip.addBridge("edgemeter-bridge0") }
        XCTAssertEqual(long, "interface name \"edgemeter-bridge0\" has 17 bytes; the kernel allows at most 15: shorten it (interfaces use the short prefix `em-`)")
        let slash = await message { try await ip.addVeth("em-a/b", peer: "em-c") }
        XCTAssertEqual(slash, "interface name \"em-a/b\" contains \"/\", which `ip` refuses: use letters, digits, `-`, `_` and `.` only")
        let space = await message { try await ip.addNamespace("edgemeter ns") }
        XCTAssertEqual(space, "network namespace name \"edgemeter ns\" contains \" \", which `ip` refuses: use letters, digits, `-`, `_` and `.` only")
        let cidr = await message { try await ip.addAddress("10.1.2.3", dev: "em-x0") }
        XCTAssertEqual(cidr, "\"10.1.2.3\" is not an address with a prefix length such as 10.213.77.1/24 or fd00::1/64")
        let cidr2 = await message { try await ip.addAddress("10.1.2.3/33", dev: "em-x0") }
        XCTAssertTrue(cidr2.hasPrefix("\"10.1.2.3/33\" is not an address"), cidr2)
        let route = await message { try await ip.addRoute("10.1.2.0/24") }
        XCTAssertEqual(route, "a route to 10.1.2.0/24 needs a gateway (via) or a device (dev)")
        let key = await message { try await ip.setSysctl("-w", "1", netns: "edgemeter-x") }
        XCTAssertEqual(key, "sysctl key \"-w\" is not a key such as net.ipv4.ip_forward")
    }

    func testNamePrefixes() throws {
        XCTAssertTrue(Names.isEdgemeterName("edgemeter-oci0"))
        XCTAssertTrue(Names.isEdgemeterName("em-b12345"))
        XCTAssertFalse(Names.isEdgemeterName("docker0"))
        XCTAssertFalse(Names.isEdgemeterName("emx0"))
        XCTAssertEqual(try Names.interfaceName("h", "1a2b3c4d"), "em-h-1a2b3c4d")
        XCTAssertThrowsError(try Names.interfaceName("veth", "1a2b3c4d5e")) {
            XCTAssertTrue("\($0)".contains("has 18 bytes; the kernel allows at most 15"), "\($0)")
        }
        XCTAssertNoThrow(try Names.checkInterface("edgemeter-br0"))
        XCTAssertThrowsError(try Names.checkInterface(""))
        XCTAssertThrowsError(try Names.checkInterface(".."))
        XCTAssertThrowsError(try Names.checkInterface("em-a:1"))
        XCTAssertNoThrow(try Names.checkNamespace("edgemeter-0123456789-1"))
    }
}
