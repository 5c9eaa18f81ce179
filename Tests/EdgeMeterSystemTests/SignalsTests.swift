import EdgeMeterCore
@testable import EdgeMeterSystem
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT/SIGTERM sent to this very process: the trap turns them into a stream element or a stop
/// request instead of ending the process. Both stay handled by the trap (SIG_IGN by default) in
/// this test process afterwards; children started through `ChildProcess` get default dispositions.
/// Two traps in one process (one cancelled before the other): both must still fire, which two
/// Dispatch sources for the same signal did not.
final class SignalsTests: XCTestCase {
    func testStreamYieldsTheSignalsName() async throws {
        let (names, registration) = SignalTrap.stream()
        defer { registration.cancel() }
        // The sources register asynchronously (a signal before that is ignored): send until one arrives.
        let sender = Task {
            for _ in 0..<25 where !Task.isCancelled {
                kill(getpid(), SIGINT)
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { sender.cancel() }
        let got = await withTaskGroup(of: String?.self) { group in
            group.addTask { for await name in names { return name }; return nil }
            group.addTask { try? await Task.sleep(for: .seconds(10)); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        XCTAssertEqual(got, "SIGINT")
    }

    func testTrapTurnsTheFirstSignalIntoAStopRequest() async throws {
        let stop = StopFlag()
        let sources = SignalTrap.install(stop, onFirst: "test", onSecond: "test")
        defer { sources.forEach { $0.cancel() } }
        XCTAssertEqual(sources.count, 1)
        // A second signal would exit the process, so exactly one is sent, once the sources had
        // time to register.
        try await Task.sleep(for: .milliseconds(300))
        kill(getpid(), SIGTERM)
        let deadline = ContinuousClock.now + .seconds(5)
        while !stop.isStopped && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(stop.reason, "SIGTERM")
    }
}
