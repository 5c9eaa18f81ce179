import XCTest
@testable import EdgeMeterProbes

final class CalibrationSeriesTests: XCTestCase {
    /// The interleaved order: ABBA pairs, each path `count` times, neither always first.
    func testInterleavedAttemptOrder() {
        XCTAssertEqual(CalibrationSeries.order(count: 3, interleaved: false), [0, 0, 0])
        XCTAssertEqual(CalibrationSeries.order(count: 4, interleaved: true), [1, 0, 0, 1, 1, 0, 0, 1])
        let long = CalibrationSeries.order(count: 31, interleaved: true)
        XCTAssertEqual(long.filter { $0 == 0 }.count, 31)
        XCTAssertEqual(long.filter { $0 == 1 }.count, 31)
        XCTAssertEqual(CalibrationSeries.order(count: 0, interleaved: true), [])
    }
}
