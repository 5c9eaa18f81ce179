import XCTest
@testable import EdgeMeterProbes
import EdgeMeterHTTP

/// The rules both load engines check every response against, built once per run from the options.
final class LoadResponseRulesTests: XCTestCase {
    func testDefaultStatusesAre2xxAnd3xxAndStatusComesBeforeBody() {
        let rules = LoadResponseRules(LoadOptions(request: HTTPRequestSpec(path: "/"), requestCount: 1))
        XCTAssertNil(rules.failure(status: 200, bodyOK: true))
        XCTAssertNil(rules.failure(status: 399, bodyOK: true))
        XCTAssertEqual(rules.failure(status: 199, bodyOK: true), .status)
        XCTAssertEqual(rules.failure(status: 400, bodyOK: true), .status)
        XCTAssertEqual(rules.failure(status: 500, bodyOK: false), .status, "a bad status is counted once, as a status error")
        XCTAssertEqual(rules.failure(status: 204, bodyOK: false), .body)
        XCTAssertEqual(rules.failure(status: -1, bodyOK: true), .status, "out-of-range codes are clamped, not a crash")
        XCTAssertEqual(rules.failure(status: 5000, bodyOK: true), .status)
        XCTAssertFalse(rules.keepsBody)
        XCTAssertTrue("anything".utf8.withContiguousStorageIfAvailable { rules.bodyMatches(UnsafeRawBufferPointer($0)) } ?? false)
        XCTAssertEqual(rules.timeoutNanos, 2_000_000_000)
    }

    func testExpectedStatusesBodyAndTimeout() {
        var o = LoadOptions(request: HTTPRequestSpec(path: "/"), requestCount: 1, timeout: .milliseconds(250))
        o.expectedStatuses = [404]
        o.expectedBody = "needle"
        let rules = LoadResponseRules(o)
        XCTAssertNil(rules.failure(status: 404, bodyOK: true))
        XCTAssertEqual(rules.failure(status: 200, bodyOK: true), .status)
        XCTAssertTrue(rules.keepsBody)
        XCTAssertEqual(rules.timeoutNanos, 250_000_000)
        func matches(_ text: String) -> Bool {
            Array(text.utf8).withUnsafeBytes { rules.bodyMatches($0) }
        }
        XCTAssertTrue(matches("hay needle hay"))
        XCTAssertTrue(matches("needle"))
        XCTAssertFalse(matches("needl"))
        XCTAssertFalse(matches("hay NEEDLE"))
    }

    /// The parser every connection starts from frames a HEAD run's responses as bodiless.
    func testParserFramesHEADResponsesWithoutBody() throws {
        let one = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        func ends(method: String, _ text: String) throws -> (ends: Int, inMessage: Bool) {
            var parser = LoadResponseRules(LoadOptions(request: HTTPRequestSpec(method: method, path: "/"), requestCount: 1)).parser
            XCTAssertFalse(parser.keepHeaders, "the load engines make no header strings")
            var n = 0
            try Array(text.utf8).withUnsafeBytes { raw in try parser.feed(raw) { if case .end = $0 { n += 1 } } }
            return (n, parser.inMessage)
        }
        XCTAssertEqual(try ends(method: "HEAD", one + one).ends, 2, "two bodiless responses")
        XCTAssertEqual(try ends(method: "head", one + one).ends, 2, "the method is compared without case")
        let get = try ends(method: "GET", one)
        XCTAssertEqual(get.ends, 0)
        XCTAssertTrue(get.inMessage, "a GET response's 10 body bytes are still awaited")
    }
}
