import Foundation
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
import EdgeMeterSystem
import EdgeApp

/// The agent's `vehicle` probe: one vehicle report (`POST /drive`, as `edgemeter vehicle` sends)
/// per interval on a new connection, on the no-drift schedule, one at a time.
///
/// Samples (probe `vehicle`, metric `latency`): the `HTTPProbe` phases `resolve`, `connect`,
/// `first_byte` and `total` (new connection each, CLOCK_MONOTONIC), labels `seq`, `method=POST`,
/// `http_status`, `local_port` and `edge_node` (the `X-Edgemeter-Node` header: which node answered).
/// An answer other than 200 fails `total` with the status and the body's first line.
public enum VehicleAttempts {
    public static let declaration = KindDeclaration(
        kind: "vehicle",
        parameters: [
            ParameterSpec("url", cli: "URL", .string, help: "The edge app's /drive URL."),
            ParameterSpec("interval", cli: "-i/--interval", .duration, default: .duration(.seconds(1)),
                          help: "Between report starts.", valueName: "DURATION", validate: ValueCheck.atLeast(.milliseconds(1))),
            ParameterSpec("timeout", cli: "-W/--timeout", .duration, default: .duration(.seconds(1)),
                          help: "Limit for the connect, and for the exchange after it.", valueName: "DURATION", validate: ValueCheck.positive),
            ParameterSpec("front_distance", cli: nil, .number, default: .number(30), unit: "m", help: "The reported front distance."),
            ParameterSpec("rear_distance", cli: nil, .number, default: .number(50), unit: "m", help: "The reported rear distance."),
        ],
        required: ["url"],
        checks: [{ s in
            guard let u = s.string("url") else { return nil }
            do { _ = try HTTPTarget(url: u) } catch { return ("url", "\(error)") }
            return nil
        }])

    /// Runs until `stop`: one report per round of `schedule` to `target`, samples named `name`.
    public static func run(target: HTTPTarget, name: String, front: Double, rear: Double, timeout: Duration, schedule: Schedule,
                           scope: SampleScope, stop: StopFlag, sink: SampleSink) async {
        let body = Array("{\"front_distance\": \(front), \"rear_distance\": \(rear)}".utf8)
        let request = HTTPRequestSpec(method: "POST", path: target.path, headers: [("Content-Type", "application/json")], body: body)
        await runSchedule(schedule, clock: SystemClock(), stop: stop) { round in
            let x = await HTTPProbe.exchange(target, request: request, timeout: timeout)
            var labels = ["seq": String(round.sequence), "method": "POST"]
            if let n = x.response?.header(edgeNodeHeader) { labels["edge_node"] = n }
            let bad = x.response.flatMap { HTTPProbe.mismatch($0, expectedStatuses: [200], expectedBody: nil) }
            for s in HTTPProbe.samples(x, mismatch: bad, runID: scope.runID, scenario: scope.scenario, probe: "vehicle", target: name, labels: labels) {
                sink.record(s)
            }
        }
    }
}
