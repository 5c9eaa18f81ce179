import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
@testable import EdgeMeterAgent

/// GET (or POST) on loopback; the status and body text.
func fetch(_ url: String, headers: [(String, String)] = [], timeout: Duration = .seconds(10)) async throws -> (status: Int, body: String) {
    let target = try HTTPTarget(url: url)
    let x = await HTTPProbe.exchange(target, request: HTTPRequestSpec(method: "GET", path: target.path, headers: headers), timeout: timeout)
    guard let r = x.response else { throw AgentError("GET \(url) failed: \(x.error?.description ?? "?")") }
    return (r.status, r.bodyText)
}

/// The value of the exposition line whose name and labels contain every fragment (first match).
func metricValue(_ text: String, _ name: String, _ fragments: [String] = []) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
        let s = String(line)
        guard fragments.allSatisfy({ s.contains($0) }), let v = s.split(separator: " ").last else { continue }
        return Double(v)
    }
    return nil
}

/// Writes a configuration to a temporary file and loads it.
func agentConfig(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) throws -> AgentConfig {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("agent-\(UUID().uuidString).yaml").path
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return try AgentConfigLoader.load(file: path)
}

/// Why ICMP raw sockets cannot be opened here, nil when they can (root or CAP_NET_RAW).
func icmpUnavailableReason() -> String? {
    let fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
    if fd >= 0 { close(fd); return nil }
    return "ICMP raw sockets need root or CAP_NET_RAW: run the tests as root to cover the ping probe and module icmp"
}

/// Collects samples in memory, for comparing what the agent measured with what it exposed.
final class CountingSink: SampleSink, @unchecked Sendable {
    let inner = MemorySink()
    func record(_ sample: Sample) { inner.record(sample) }
    var samples: [Sample] { inner.samples }
}
