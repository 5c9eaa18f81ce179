import XCTest
import Foundation
import EdgeMeterCore
@testable import EdgeMeterCapture
import EdgeMeterRun

/// Capture on docker0 while pinging a container this test starts (busybox-static imported as a
/// local image, so no registry is needed).
final class DockerCaptureTests: XCTestCase {
    static let image = "edgemeter-capture-test:busybox"

    static var docker: String? { ["/usr/bin/docker", "/usr/local/bin/docker"].first { FileManager.default.isExecutableFile(atPath: $0) } }

    /// Makes sure dockerd answers, starting it when it is installed but not running.
    static func requireDocker() throws -> String {
        guard let docker else { throw XCTSkip("docker is not installed: apt-get install -y docker.io") }
        if (try? runTool(docker, ["info", "--format", "{{.ServerVersion}}"])) != nil { return docker }
        guard let dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("dockerd is not installed: apt-get install -y docker.io")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "\(dockerd) >/var/log/dockerd.log 2>&1 &"]
        try p.run()
        p.waitUntilExit()
        for _ in 0..<60 {
            if (try? runTool(docker, ["info", "--format", "{{.ServerVersion}}"])) != nil { return docker }
            Thread.sleep(forTimeInterval: 0.5)
        }
        throw XCTSkip("dockerd did not answer within 30 s of starting it; see /var/log/dockerd.log")
    }

    static func ensureImage(_ docker: String) throws {
        if (try? runTool(docker, ["image", "inspect", Self.image])) != nil { return }
        guard FileManager.default.isExecutableFile(atPath: "/bin/busybox") else {
            throw XCTSkip("busybox-static is not installed (needed for the test image): apt-get install -y busybox-static")
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-img-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: root.appendingPathComponent("bin/busybox").path)
        for tool in ["sh", "sleep", "ping"] {
            try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("bin/\(tool)").path, withDestinationPath: "busybox")
        }
        _ = try runTool("/bin/sh", ["-c", "tar -C '\(root.path)' -c . | \(docker) import - \(Self.image)"])
    }

    func testCaptureOnDocker0WhilePingingAContainer() throws {
        try requireCaptureCapability()
        let docker = try Self.requireDocker()
        try Self.ensureImage(docker)
        let name = "edgemeter-capture-test-\(UUID().uuidString.prefix(8))"
        _ = try runTool(docker, ["run", "-d", "--rm", "--name", name, Self.image, "/bin/sleep", "60"])
        defer { _ = try? runTool(docker, ["rm", "-f", name]) }
        let ip = try runTool(docker, ["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(ip.isEmpty, "the container has no address on the default bridge")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-d0-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("docker0.pcap").path
        let session = try CaptureSession(options: CaptureOptions(interface: "docker0", filter: "icmp and host \(ip)"), writePath: path)
        XCTAssertEqual(session.capture.linkType, LinkType.ethernet)
        session.start()
        let out = try runTool("/usr/bin/ping", ["-n", "-c", "5", "-i", "0.01", ip])
        XCTAssertTrue(out.contains("5 received"), out)
        Thread.sleep(forTimeInterval: 0.1)
        session.stop()
        let (result, a) = try session.wait()
        let stats = try XCTUnwrap(result.stats)
        XCTAssertEqual(stats.dropped, 0)
        XCTAssertEqual(result.packets, 10)
        XCTAssertEqual(a.echoes.count, 5)
        for e in a.echoes {
            XCTAssertEqual(e.destination.description, ip)
            let rtt = try XCTUnwrap(e.rttNs)
            XCTAssertGreaterThan(rtt, 0)
            XCTAssertLessThan(rtt, 100_000_000)
        }
        // The same file through tshark agrees.
        let view = try TsharkView(file: path)
        for e in a.echoes { XCTAssertEqual(view.echo["\(e.id)/\(e.seq)"], e.rttNs) }
    }
}

/// The suite kind `capture` end to end: validation messages, and a run that starts its own
/// container, pings it with a capture on docker0 and removes it.
final class CaptureScenarioTests: XCTestCase {
    func load(_ yaml: String) throws -> Suite {
        try SuiteLoader.load(yaml: yaml, file: "suite.yaml", schemas: [CaptureScenario.schema])
    }

    func testValidationSaysWhatIsMissing() throws {
        XCTAssertThrowsError(try load("""
        name: t
        scenarios:
          - name: a
            kind: capture
            interface: lo
        """)) { e in XCTAssertTrue("\(e)".contains("give `ping`, `tcping` or `http` targets"), "\(e)") }
        XCTAssertThrowsError(try load("""
        name: t
        scenarios:
          - name: a
            kind: capture
            interface: docker0
            ping: [container]
            count: 3
        """)) { e in XCTAssertTrue("\(e)".contains("give `container_image`"), "\(e)") }
        XCTAssertThrowsError(try load("""
        name: t
        scenarios:
          - name: a
            kind: capture
            interface: lo
            ping: [127.0.0.1]
        """)) { e in XCTAssertTrue("\(e)".contains("give `count`"), "\(e)") }
    }

    func testContainerOnDocker0WithCapture() async throws {
        try requireCaptureCapability()
        let docker = try DockerCaptureTests.requireDocker()
        try DockerCaptureTests.ensureImage(docker)
        let suite = try load("""
        name: t
        scenarios:
          - name: docker0-ping
            kind: capture
            interface: docker0
            container_image: \(DockerCaptureTests.image)
            container_command: [/bin/sleep, "30"]
            ping: [container]
            count: 10
            interval: 10ms
        """)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("edgemeter-cs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sink = MemorySink()
        let ctx = ScenarioContext(runID: "cstest", sink: sink, stop: StopFlag(), directory: dir, suiteDirectory: nil,
                                  progress: { _ in }, addSection: { _ in })
        try await CaptureScenario.kind.run(suite.scenarios[0], ctx)
        let s = sink.samples
        let wire = s.filter { $0.phase == "icmp_echo" }
        XCTAssertEqual(wire.count, 10)
        XCTAssertTrue(wire.allSatisfy { $0.status == .ok && IPAddress($0.target) != nil }, "targets are the container's address")
        XCTAssertEqual(Set(wire.map(\.target)).count, 1)
        XCTAssertEqual(s.filter { $0.phase == "stack_overhead_echo" && $0.value != nil }.count, 10)
        XCTAssertEqual(s.first { $0.phase == "capture_dropped" }?.value, 0)
        XCTAssertEqual(s.first { $0.phase == "capture_dropped" }?.target, "docker0")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("capture-docker0-ping-docker0.pcap").path))
        // The container is gone.
        let left = try runTool(docker, ["ps", "-a", "--filter", "name=edgemeter-capture-cstest-", "-q"])
        XCTAssertEqual(left.trimmingCharacters(in: CharacterSet.whitespacesAndNewlines), "")
    }
}
