import XCTest
@testable import EdgeMeterRun

/// The capture scenario's `container` placeholder: only a host that is exactly `container` becomes
/// the container's address.
final class ContainerTargetsTests: XCTestCase {
    func testOnlyTheHostPartIsReplaced() throws {
        let t = ContainerTargets(address: "172.17.0.5")
        XCTAssertEqual(t.ping("container"), "172.17.0.5")
        XCTAssertEqual(t.ping("containerd.example"), "containerd.example")
        XCTAssertEqual(try t.tcping("container:8080"), "172.17.0.5:8080")
        XCTAssertEqual(try t.tcping("my-container:8080"), "my-container:8080")
        let u = try t.http("http://container:50000/container/calculate?x=container")
        XCTAssertEqual(u.host, "172.17.0.5")
        XCTAssertEqual(u.port, 50000)
        XCTAssertEqual(u.path, "/container/calculate?x=container")
        XCTAssertEqual(try ContainerTargets(address: "fd00::5").tcping("container:7"), "[fd00::5]:7")
        // Without a container the targets stay as written.
        XCTAssertEqual(try ContainerTargets(address: nil).http("http://container:80/").host, "container")
        XCTAssertThrowsError(try t.tcping("container")) // no port: the probe's own error
    }
}
