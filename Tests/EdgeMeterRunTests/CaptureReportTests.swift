import XCTest
import EdgeMeterCore
@testable import EdgeMeterRun

/// The capture report's per-hop section, byte for byte, from made-up pairs (no capture).
final class CaptureReportTests: XCTestCase {
    func testServerTimingVersusWireGolden() throws {
        let byService: [String: [(app: Double, wire: Double)]] = [
            "add": [(0.9, 0.5), (1.25, 0.75), (2.0, 1.125)],
            "mul": [(0.5, 0.375)],
        ]
        try checkGolden(CalculatorDeployment.serverTimingMarkdown(byService, services: ["mul", "add"], unpaired: 2, interface: "dC-br0"),
                        "server-timing-vs-wire.md")
        try checkGolden(CalculatorDeployment.serverTimingMarkdown([:], services: [], unpaired: 0, interface: "docker0"),
                        "server-timing-vs-wire-empty.md")
    }
}
