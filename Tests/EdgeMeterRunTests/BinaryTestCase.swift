import XCTest
import EdgeMeterCore
import EdgeMeterTestSupport

/// Base of the tests that run the built `edgemeter` binary: finds it (skipping with the way to build
/// it), gives each test a fresh output path `out` that is removed afterwards, and says when raw ICMP
/// sockets are not available.
class BinaryTestCase: XCTestCase {
    var bin: String!
    var out: String!

    override func setUpWithError() throws {
        guard let b = edgemeterBinary() else {
            throw XCTSkip("the edgemeter binary is not built: run `swift build` before `swift test` (scripts/test does)")
        }
        bin = b
        out = NSTemporaryDirectory() + "edgemeter-\(type(of: self))-\(UUID().uuidString)"
    }

    override func tearDown() {
        if let out { try? FileManager.default.removeItem(atPath: out) }
        super.tearDown()
    }

    /// Why this process cannot open a raw ICMP socket, or nil when it can.
    func rawICMPReason() -> String? {
        let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        if fd < 0 { return "raw ICMP sockets need CAP_NET_RAW: run the tests as root" }
        close(fd)
        return nil
    }

    func samples(_ dir: String) throws -> [Sample] {
        try SampleCSV.parse(String(contentsOfFile: dir + "/samples.csv", encoding: .utf8))
    }
}
