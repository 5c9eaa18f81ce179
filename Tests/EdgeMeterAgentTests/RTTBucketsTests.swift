import XCTest
@testable import EdgeMeterAgent

final class RTTBucketsTests: XCTestCase {
    func testBoundsAscendAndCoverLoopbackToTimeouts() {
        let b = RTTBuckets.seconds
        XCTAssertEqual(b, b.sorted())
        XCTAssertEqual(Set(b).count, b.count)
        XCTAssertLessThanOrEqual(b.first!, 0.000_05, "a loopback echo (≈ 50 µs) must not land in the first bucket's whole range")
        XCTAssertGreaterThanOrEqual(b.last!, 1, "the default 1 s timeout must have a bucket")
        for (lo, hi) in zip(b, b.dropFirst()) where lo >= 0.002 && hi <= 0.3 {
            XCTAssertLessThanOrEqual(hi / lo, 2.0, "\(lo) → \(hi) is too coarse for edge/cloud RTTs")
        }
    }

    func testBucketOfAValueIsUpperInclusive() {
        XCTAssertEqual(RTTBuckets.bucket(of: 0.012).lower, 0.01)
        XCTAssertEqual(RTTBuckets.bucket(of: 0.012).upper, 0.015)
        XCTAssertEqual(RTTBuckets.bucket(of: 0.01).upper, 0.01)
        XCTAssertEqual(RTTBuckets.bucket(of: 9).upper, .infinity)
    }
}
