import XCTest
import EdgeMeterCore
@testable import EdgeMeterLab

/// The forwarder's HTTP API over a real unix socket: `ForwarderHTTP.serve` and `ForwarderClient`
/// (what `lab link set` and `lab status` use), without a namespace or a forwarding thread.
final class ForwarderAPITests: XCTestCase {
    func testClientAndServerTalkOverTheSocketAndSayWhatIsWrong() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dC-fwd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.sock").path

        // Nothing listens yet: the client says so and what to check.
        XCTAssertThrowsError(try ForwarderClient.request(socketPath: path, method: "GET", path: "/links")) { e in
            XCTAssertEqual((e as? LabError)?.kind, .refused)
            XCTAssertTrue("\(e)".contains("no impairment forwarder answers on \(path)"), "\(e)")
        }

        try ForwarderHTTP.serve(socketPath: path, control: try ForwarderControl(links: []))
        let r = try ForwarderClient.request(socketPath: path, method: "GET", path: "/links")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(try JSONDecoder().decode([ForwarderLinkReport].self, from: r.body), [])
        let missing = try ForwarderClient.request(socketPath: path, method: "PUT", path: "/links/a/n", body: Data("{}".utf8))
        XCTAssertEqual(missing.status, 404)

        // A path longer than sun_path holds (107 bytes) is refused by both sides before any call.
        let long = dir.path + "/" + String(repeating: "s", count: 120)
        XCTAssertThrowsError(try ForwarderHTTP.serve(socketPath: long, control: try ForwarderControl(links: []))) { e in
            XCTAssertTrue("\(e)".contains("is longer than 107 bytes; use a shorter state directory"), "\(e)")
        }
        XCTAssertThrowsError(try ForwarderClient.request(socketPath: long, method: "GET", path: "/links")) { e in
            XCTAssertTrue("\(e)".contains("socket path \(long) is too long"), "\(e)")
        }
    }
}
