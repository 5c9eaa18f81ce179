import XCTest
@testable import EdgeMeterRun

/// Samples of a scenario in a topology name the node, not the address: the address is replaced only
/// as a whole (10.204.0.1 is not the start of 10.204.0.10).
final class LabScenarioTests: XCTestCase {
    func testAddressTokens() {
        XCTAssertNil(LabScenario.token("10.204.0.1", in: "10.204.0.10"))
        XCTAssertNil(LabScenario.token("10.204.0.1", in: "110.204.0.1"))
        XCTAssertNotNil(LabScenario.token("10.204.0.1", in: "10.204.0.1:8000"))
        XCTAssertNotNil(LabScenario.token("10.204.0.10", in: "http://10.204.0.10:80/x"))
        let s = "10.204.0.10 and 10.204.0.1"
        XCTAssertEqual(LabScenario.token("10.204.0.1", in: s).map { String(s[$0.lowerBound...]) }, "10.204.0.1")
    }
}
