import EdgeMeterCore
import EdgeMeterSystem
@testable import EdgeMeterStartup
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A fresh run ID per test, so names (`edgemeter-<tag>-N`) never collide between tests.
func testRunID(_ label: String) -> String {
    "t\(label)\(UInt32.random(in: 0..<UInt32.max))"
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, close).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Checks the samples of a run: every phase present for every attempt, and (when `ok`) all ok.
func assertPhases(_ samples: [Sample], runs: Int, ok: Bool = true, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(samples.count, runs * StartupPhase.allCases.count, "samples: \(samples.map { "\($0.phase)=\($0.status)" })", file: file, line: line)
    for phase in StartupPhase.allCases {
        let s = samples.filter { $0.phase == phase.rawValue }
        XCTAssertEqual(s.count, runs, "phase \(phase.rawValue)", file: file, line: line)
        if ok {
            for x in s {
                XCTAssertEqual(x.status, .ok, "phase \(phase.rawValue): \(x.reason)", file: file, line: line)
                XCTAssertNotNil(x.value, file: file, line: line)
                XCTAssertEqual(x.unit, "ms", file: file, line: line)
                XCTAssertEqual(x.labels["clock"], "monotonic", file: file, line: line)
            }
        }
    }
    if ok {
        // total = create + start + running + ready (same clock, measured end to end).
        let byPhase = Dictionary(grouping: samples, by: \.phase)
        for i in 0..<runs {
            let parts = ["create", "start", "running", "ready"].compactMap { byPhase[$0]?[i].value }.reduce(0, +)
            let total = byPhase["total"]?[i].value ?? -1
            XCTAssertGreaterThanOrEqual(total + 0.001, parts, file: file, line: line)
            XCTAssertLessThan(total, parts + 5, "total should be the sum of its phases plus bookkeeping", file: file, line: line)
        }
    }
}

func value(_ samples: [Sample], _ phase: StartupPhase) -> Double? {
    samples.first { $0.phase == phase.rawValue }?.value
}

/// Processes whose command line runs qemu with `-name <prefix>...`.
func qemuProcesses(prefix: String) -> [Int32] {
    let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return procs.compactMap { Int32($0) }.filter { pid in
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return argv.first?.hasSuffix("qemu-system-x86_64") == true && argv.contains { $0.hasPrefix(prefix) }
    }
}

/// Docker is required when docker.io is installed: an unreachable daemon fails the test (the setup
/// script starts it); only a machine without docker.io skips.
func requireDocker() async throws -> DockerAPIClient {
    guard which("dockerd") != nil else {
        throw XCTSkip("docker.io is not installed: apt-get install -y docker.io, then scripts/setup-engines.sh")
    }
    let client = try DockerAPIClient()
    try await client.ping()
    return client
}

func requireLXC() throws {
    guard which("lxc-create") != nil else { throw XCTSkip("LXC is not installed: apt-get install -y lxc") }
    guard geteuid() == 0 else { throw XCTSkip("LXC tests need root: run the tests as root") }
}

func requireQEMU() throws {
    guard which("qemu-system-x86_64") != nil else { throw XCTSkip("QEMU is not installed: apt-get install -y qemu-system-x86") }
}

/// `ready = exit` with a workload that ends with `status`: 0 is a full successful run; anything else
/// fails `ready` and `total` with "the workload exited with status N" (LXC may add the log tail,
/// hence the prefix) while every other phase is still measured.
func assertWorkloadExit(_ samples: [Sample], script: String, status: Int, file: StaticString = #filePath, line: UInt = #line) throws {
    if status == 0 { return assertPhases(samples, runs: 1, file: file, line: line) }
    assertPhases(samples, runs: 1, ok: false, file: file, line: line)
    for phase in ["create", "start", "running", "stop", "remove"] {
        XCTAssertEqual(samples.first { $0.phase == phase }?.status, .ok, "\(script): \(phase) still measured", file: file, line: line)
    }
    let ready = try XCTUnwrap(samples.first { $0.phase == "ready" }, file: file, line: line)
    XCTAssertEqual(ready.status, .error, file: file, line: line)
    XCTAssertNil(ready.value, file: file, line: line)
    XCTAssertTrue(ready.reason.hasPrefix("the workload exited with status \(status)"), "\(script): \(ready.reason)", file: file, line: line)
    let total = try XCTUnwrap(samples.first { $0.phase == "total" }, file: file, line: line)
    XCTAssertEqual(total.status, .error, file: file, line: line)
    XCTAssertTrue(total.reason.hasPrefix("not ready: ready: the workload exited with status \(status)"), total.reason, file: file, line: line)
}
