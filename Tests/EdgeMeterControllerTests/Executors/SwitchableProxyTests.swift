import Foundation
import XCTest
import EdgeMeterHTTP
import EdgeApp
@testable import EdgeMeterController

/// The client path on loopback: two real edge apps behind the proxy, the vehicle client at a fixed
/// rate through it, a switch in the middle.
final class SwitchableProxyTests: XCTestCase {
    func testSwitchMidRunLosesNoRequestAndChangesTheNode() async throws {
        let db = try await EdgeAppServer.startCloudDB(port: 0)
        let cloud = HTTPTarget(host: "127.0.0.1", port: db.port, path: "/status")
        let a = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_a", cloud: cloud)
        let b = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_b", cloud: cloud)
        let backendA = SwitchableProxy.Backend(name: "node_a", host: "127.0.0.1", port: a.port)
        let backendB = SwitchableProxy.Backend(name: "node_b", host: "127.0.0.1", port: b.port)
        let proxy = SwitchableProxy(backend: backendA)
        let port = try await proxy.start()

        var o = VehicleOptions(target: HTTPTarget(host: "127.0.0.1", port: port, path: "/drive"), rate: 50, duration: .seconds(2))
        o.timeout = .seconds(2)
        let run = Task { await VehicleProbe.run(o) }
        try await Task.sleep(for: .milliseconds(1000))
        XCTAssertEqual(proxy.switchTo(backendB), backendA)
        let drained = await proxy.waitDrained(backendA, timeout: .seconds(2))
        XCTAssertTrue(drained)
        // The old node goes away after the drain, as the docker executor stops it: nothing fails.
        await a.stop()
        let records = await run.value

        XCTAssertEqual(records.count, 100)
        XCTAssertEqual(records.filter { !$0.ok }.count, 0, records.compactMap(\.failure).joined(separator: "; "))
        let nodes = records.compactMap(\.node)
        XCTAssertEqual(nodes.first, "node_a")
        XCTAssertEqual(nodes.last, "node_b")
        let countA = nodes.filter { $0 == "node_a" }.count, countB = nodes.filter { $0 == "node_b" }.count
        XCTAssertGreaterThan(countA, 20)
        XCTAssertGreaterThan(countB, 20)
        XCTAssertEqual(countA + countB, 100)
        XCTAssertEqual(proxy.served(backendA), countA)
        XCTAssertEqual(proxy.served(backendB), countB)
        XCTAssertEqual(proxy.inFlight(backendB), 0)
        await proxy.stop()
        await b.stop()
        await db.stop()
    }

    /// One keep-alive client connection across a switch: the next request on it goes to the new
    /// backend and is answered (closing the old backend connection is not taken for its end).
    func testKeepAliveConnectionFollowsTheSwitch() async throws {
        let db = try await EdgeAppServer.startCloudDB(port: 0)
        let cloud = HTTPTarget(host: "127.0.0.1", port: db.port, path: "/status")
        let a = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_a", cloud: cloud)
        let b = try await EdgeAppServer.startEdgeApp(port: 0, node: "node_b", cloud: cloud)
        let proxy = SwitchableProxy(backend: .init(name: "node_a", host: "127.0.0.1", port: a.port))
        let port = try await proxy.start()
        let conn = try await HTTPConnection.connect(to: try await HTTPConnection.resolve(host: "127.0.0.1", port: port), targetName: "proxy", timeout: .seconds(1))
        let drive = HTTPRequestSpec(method: "POST", path: "/drive", headers: [("Content-Type", "application/json")],
                                    body: Array("{\"front_distance\": 30, \"rear_distance\": 50}".utf8))
        var answered: [String] = []
        for i in 0..<6 {
            if i == 3 { proxy.switchTo(.init(name: "node_b", host: "127.0.0.1", port: b.port)) }
            let x = try await conn.send(drive, host: "127.0.0.1", timeout: .seconds(3))
            XCTAssertEqual(x.response.status, 200, x.response.bodyText)
            XCTAssertTrue(x.response.keepAlive)
            answered.append(x.response.header("X-Edgemeter-Node") ?? "-")
        }
        XCTAssertEqual(answered, ["node_a", "node_a", "node_a", "node_b", "node_b", "node_b"])
        conn.close()
        await proxy.stop()
        await a.stop()
        await b.stop()
        await db.stop()
    }

    func testUnreachableBackendIsA502NamingIt() async throws {
        let gone = try await EdgeAppServer.startCloudDB(port: 0)
        let deadPort = gone.port
        await gone.stop()
        let proxy = SwitchableProxy(backend: .init(name: "node_x", host: "127.0.0.1", port: deadPort))
        let port = try await proxy.start()
        let addr = try await HTTPConnection.resolve(host: "127.0.0.1", port: port)
        let conn = try await HTTPConnection.connect(to: addr, targetName: "proxy", timeout: .seconds(1))
        let x = try await conn.send(HTTPRequestSpec(path: "/healthz"), host: "127.0.0.1", timeout: .seconds(3))
        conn.close()
        XCTAssertEqual(x.response.status, 502)
        XCTAssertTrue(x.response.bodyText.contains("cannot connect to backend node_x 127.0.0.1:\(deadPort)"), x.response.bodyText)
        XCTAssertEqual(proxy.inFlight(.init(name: "node_x", host: "127.0.0.1", port: deadPort)), 0)
        await proxy.stop()
    }

    func testNoBackendYetIsA502() async throws {
        let proxy = SwitchableProxy()
        let port = try await proxy.start()
        let addr = try await HTTPConnection.resolve(host: "127.0.0.1", port: port)
        let conn = try await HTTPConnection.connect(to: addr, targetName: "proxy", timeout: .seconds(1))
        let x = try await conn.send(HTTPRequestSpec(path: "/"), host: "127.0.0.1", timeout: .seconds(3))
        conn.close()
        XCTAssertEqual(x.response.status, 502)
        XCTAssertTrue(x.response.bodyText.contains("no backend yet"))
        await proxy.stop()
    }
}
