import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture

/// The built `edgemeter capture --user nobody` as a subprocess: it captures as nobody (checked in
/// /proc while it runs), and without the capability the error says how to grant it.
/// The built binary (debug first), for tests that run it as a user would.
func edgemeterBinary() throws -> String {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    for config in ["debug", "release"] {
        let p = repo.appendingPathComponent(".build/\(config)/edgemeter").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    XCTFail("the edgemeter binary is not built: run `swift build` (or `swift build --build-tests`) first")
    throw CaptureError.file("no binary")
}

final class PrivilegeDropTests: XCTestCase {
    func binary() throws -> String { try edgemeterBinary() }

    func tempDir() throws -> URL {
        let d = URL(fileURLWithPath: "/tmp").appendingPathComponent("edgemeter-priv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    func testCaptureDropsToNobodyAndStillCaptures() throws {
        try requireCaptureCapability()
        guard getuid() == 0 else { throw XCTSkip("switching users needs root; run the tests as root") }
        guard let nobody = Privileges.ids(of: "nobody") else { throw XCTSkip("this machine has no `nobody` account") }
        let bin = try binary()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = dir.appendingPathComponent("run")
        let addr = uniqueLoopback()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["capture", "-i", "lo", "-f", "icmp and host \(addr)", "--duration", "4", "--user", "nobody", "--out", run.path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        // Poll the credentials of every live thread (/proc/PID/task/*/status) until the capture has
        // dropped privileges, for up to 3 s. The thread-group leader is skipped when it is a zombie:
        // Swift's async main exits the main thread (dispatch_main), and the kernel keeps its old
        // credentials on the leader's entry although no code runs there.
        func liveThreadIDs() -> [(uid: [UInt32], gid: [UInt32])] {
            let base = "/proc/\(p.processIdentifier)/task"
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
            return tasks.compactMap { t in
                guard let st = try? String(contentsOfFile: "\(base)/\(t)/status", encoding: .utf8) else { return nil }
                let lines = st.split(separator: "\n")
                if lines.contains(where: { $0.hasPrefix("State:") && $0.contains("Z") }) { return nil }
                func ids(_ key: String) -> [UInt32] {
                    (lines.first { $0.hasPrefix(key) } ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { UInt32($0) }
                }
                return (ids("Uid:"), ids("Gid:"))
            }
        }
        var threads: [(uid: [UInt32], gid: [UInt32])] = []
        for _ in 0..<60 {
            Thread.sleep(forTimeInterval: 0.05)
            threads = liveThreadIDs()
            if !threads.isEmpty && threads.allSatisfy({ $0.uid.first == nobody.uid }) { break }
        }
        _ = try runTool("/usr/bin/ping", ["-n", "-c", "5", "-i", "0.05", addr])
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, stderr)
        XCTAssertFalse(threads.isEmpty)
        for t in threads {
            XCTAssertEqual(t.uid, Array(repeating: nobody.uid, count: 4), "real, effective, saved and fs uid of every thread are nobody")
            XCTAssertEqual(t.gid, Array(repeating: nobody.gid, count: 4))
        }
        XCTAssertTrue(stderr.contains("running as nobody"), stderr)
        XCTAssertTrue(stderr.contains("10 packets captured"), stderr)
        let pcap = run.appendingPathComponent("capture-lo.pcap").path
        let attrs = try FileManager.default.attributesOfItem(atPath: pcap)
        XCTAssertEqual((attrs[.ownerAccountID] as? NSNumber)?.uint32Value, nobody.uid)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let samples = try SampleCSV.parse(String(contentsOf: run.appendingPathComponent("samples.csv"), encoding: .utf8))
        XCTAssertEqual(samples.filter { $0.phase == "icmp_echo" && $0.status == .ok }.count, 5)
        XCTAssertEqual(samples.first { $0.phase == "capture_dropped" }?.value, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("summary.md").path), "the summary is written after the drop")
    }

    func testWithoutCapabilityTheErrorSaysHowToGrantIt() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to start a process as nobody") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("setpriv (util-linux) is not installed") }
        let bin = try binary()
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        chmod(dir.path, 0o777)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                       bin, "capture", "-i", "lo", "--count", "1", "--out", dir.appendingPathComponent("run").path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        p.waitUntilExit()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 2, stderr)
        XCTAssertTrue(stderr.contains("setcap cap_net_raw,cap_net_admin+ep $(which edgemeter)"), stderr)
        XCTAssertTrue(stderr.contains("run as root"), stderr)
    }
}
