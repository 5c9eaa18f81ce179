import XCTest
import Foundation
@testable import EdgeMeterSystem

/// The PM QoS request is real: while held, the kernel's aggregate CPU-latency limit (what reading
/// /dev/cpu_dma_latency returns) is 0 µs; withdrawn when released or when a quiet spell expires it.
final class CPULatencyHoldTests: XCTestCase {
    /// The kernel's current limit in µs (reading the device gives the aggregate of all requests).
    func currentLimit() throws -> Int32 {
        let fd = open(CPULatencyHold.device, O_RDONLY)
        guard fd >= 0 else { throw XCTSkip("cannot open \(CPULatencyHold.device): \(String(cString: strerror(errno))) (run the tests as root on a kernel with PM QoS)") }
        defer { close(fd) }
        var v: Int32 = -1
        XCTAssertEqual(read(fd, &v, 4), 4)
        return v
    }

    func testHoldSetsTheLimitToZeroAndReleaseWithdrawsIt() throws {
        guard geteuid() == 0 else { throw XCTSkip("/dev/cpu_dma_latency needs root: run the tests as root") }
        _ = try currentLimit()
        let h = CPULatencyHold()
        XCTAssertNil(h.hold(), h.refused ?? "")
        XCTAssertTrue(h.isHeld)
        XCTAssertEqual(try currentLimit(), 0, "the kernel's CPU-latency limit while held")
        XCTAssertTrue(h.provenance.contains("polling"), h.provenance)
        XCTAssertNil(h.hold(), "holding twice is a no-op")
        h.release()
        XCTAssertFalse(h.isHeld)
        XCTAssertTrue(h.provenance.contains("host's own idle states"), h.provenance)
    }

    func testActivityHoldTakesTheRequestOnTrafficAndDropsItAfterAQuietSpell() throws {
        guard geteuid() == 0 else { throw XCTSkip("/dev/cpu_dma_latency needs root: run the tests as root") }
        let a = ActivityLatencyHold(enabled: true, idleNanoseconds: 1_000_000_000)
        XCTAssertFalse(a.hold.isHeld, "nothing held before any frame")
        a.expire(5_000_000_000)
        XCTAssertFalse(a.hold.isHeld)
        a.touch(10_000_000_000)
        XCTAssertTrue(a.hold.isHeld, "a frame takes the request")
        XCTAssertEqual(try currentLimit(), 0)
        a.expire(10_900_000_000)
        XCTAssertTrue(a.hold.isHeld, "0.9 s after the last frame: still held")
        a.touch(11_000_000_000)
        a.expire(11_900_000_000)
        XCTAssertTrue(a.hold.isHeld, "a later frame restarts the quiet spell")
        a.expire(12_000_000_001)
        XCTAssertFalse(a.hold.isHeld, "withdrawn 1 s after the last frame")
        a.touch(13_000_000_000)
        XCTAssertTrue(a.hold.isHeld, "taken again by the next frame")
    }

    func testDisabledActivityHoldNeverTakesTheRequest() {
        let a = ActivityLatencyHold(enabled: false)
        a.touch(1)
        XCTAssertFalse(a.hold.isHeld)
        XCTAssertFalse(a.isEnabled)
    }
}
