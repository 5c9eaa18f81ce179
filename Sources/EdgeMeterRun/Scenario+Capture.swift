import Foundation
import EdgeMeterCore
import EdgeMeterProbes
import EdgeMeterCapture

/// Suite kind `capture`: captures on `interface` while pinging `ping` targets and/or connecting to
/// `tcping` targets (or, with neither, for `duration`), then records the wire samples (probe
/// `wire`), the capture's drop counters and the app − wire differences (see `withCapture`).
///
/// ```yaml
/// - name: docker0-wire
///   kind: capture
///   interface: docker0
///   filter: icmp or tcp port 8080
///   ping: [172.17.0.2]
///   tcping: ["172.17.0.2:8080"]
///   count: 20
///   interval: 50ms
/// ```
public enum CaptureScenario {
    public static let schema = ScenarioSchema(
        kind: "capture",
        parameters: ["interface": .string, "filter": .string, "duration": .duration, "ping": .stringList, "tcping": .stringList,
                     "count": .positiveInteger, "interval": .duration, "timeout": .duration, "snaplen": .positiveInteger,
                     "buffer_kib": .positiveInteger],
        required: ["interface"],
        check: { s in
            let probes = (s.strings("ping") ?? []).count + (s.strings("tcping") ?? []).count
            if probes == 0 && s.duration("duration") == nil {
                return ("interface", "give `ping` or `tcping` targets to measure while capturing, or a capture `duration`")
            }
            if probes > 0 && s.int("count") == nil {
                return ("count", "give `count` (echoes/connections per target) so the scenario ends by itself")
            }
            if let i = s.duration("interval"), i.nanoseconds < 1_000_000 { return ("interval", "`interval` must be at least 1ms") }
            if let n = s.int("snaplen"), n < 64 || n > 262_144 { return ("snaplen", "`snaplen` must be between 64 and 262144 bytes, got \(n)") }
            for t in s.strings("tcping") ?? [] {
                do { _ = try Resolver.splitHostPort(t) } catch { return ("tcping", "\(error)") }
            }
            return nil
        })

    public static let kind = ScenarioKind(schema: schema) { s, ctx in
        try await run(s, ctx: ctx)
    }

    static func run(_ s: ValidatedScenario, ctx: ScenarioContext) async throws {
        let interface = s.string("interface")!
        let interval = s.duration("interval") ?? .milliseconds(100)
        let timeout = s.duration("timeout") ?? .seconds(1)
        let pingTargets = s.strings("ping") ?? []
        let tcpTargets = s.strings("tcping") ?? []
        do {
            try await withCapture(interface: interface, filter: s.string("filter"), snapLength: Int32(s.int("snaplen") ?? 65_535),
                                  bufferSize: s.int("buffer_kib").map { Int32($0 * 1024) }, scenario: s.name, ctx: ctx) { inner in
                if !pingTargets.isEmpty {
                    _ = try PingScenario.run(scenario: s.name, targets: pingTargets, family: .any,
                                             options: ICMPOptions(count: s.int("count"), interval: interval, timeout: timeout),
                                             ctx: inner, onLine: nil)
                }
                if !tcpTargets.isEmpty && !inner.stop.isStopped {
                    _ = try TCPingScenario.run(scenario: s.name, targets: tcpTargets, family: .any,
                                               options: TCPConnectOptions(count: s.int("count"), interval: interval, timeout: timeout),
                                               ctx: inner, onLine: nil)
                }
                if pingTargets.isEmpty && tcpTargets.isEmpty, let d = s.duration("duration") {
                    let end = ContinuousClock.now + d
                    while ContinuousClock.now < end && !inner.stop.isStopped {
                        try? await Task.sleep(for: min(.milliseconds(50), end - ContinuousClock.now))
                    }
                }
            }
        } catch let e as RunError {
            // A missing interface or capability: the suite notes the scenario as not run and goes on.
            throw ScenarioNotRun(e.description)
        }
    }
}
