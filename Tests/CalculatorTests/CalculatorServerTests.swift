import Foundation
import XCTest
import EdgeMeterCore
import EdgeMeterHTTP
import EdgeMeterProbes
@testable import Calculator

/// Real Hummingbird services on 127.0.0.1 with ephemeral ports, called with edgemeter's own
/// NIO client.
final class CalculatorServerTests: XCTestCase {
    static let zeroPorts = Dictionary(uniqueKeysWithValues: CalcOperation.allCases.map { ($0, 0) })

    func startAll(_ config: CalculatorConfig = CalculatorConfig()) async throws -> [RunningCalculatorService] {
        try await CalculatorServer.startAll(frontPort: 0, operationPorts: Self.zeroPorts, config: config)
    }

    func post(_ port: Int, _ body: String, contentType: String = "text/plain", method: String = "POST",
              path: String = "/calculate") async throws -> HTTPResponseInfo {
        let target = HTTPTarget(host: "127.0.0.1", port: port, path: path)
        let x = await HTTPProbe.exchange(target, request: HTTPRequestSpec(method: method, path: path,
                                                                           headers: [("Content-Type", contentType)],
                                                                           body: Array(body.utf8)), timeout: .seconds(5))
        if let e = x.error { throw e }
        return x.response!
    }

    func json(_ r: HTTPResponseInfo) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(r.bodyText.utf8))) as? [String: Any] ?? [:]
    }

    func testGoodExpressionsWithCallChainAndServerTiming() async throws {
        let services = try await startAll()
        let front = services[0].port
        let r = try await post(front, "(5+6)*2")
        XCTAssertEqual(r.status, 200, r.bodyText)
        XCTAssertEqual(json(r)["result"] as? Double, 22)
        let calls = json(r)["calls"] as? [[String: Any]] ?? []
        XCTAssertEqual(calls.map { $0["service"] as? String }, ["sum", "mul"])
        let timing = ServerTimingEntry.parse(r.header("Server-Timing") ?? "")
        XCTAssertEqual(timing.map(\.name), ["sum", "mul"], "one entry per downstream call")
        XCTAssertTrue(timing.allSatisfy { ($0.duration ?? -1) > 0 })

        let j = try await post(front, "{\"expression\": \"-1.5 * (4 - 6) / 3\"}", contentType: "application/json")
        XCTAssertEqual(j.status, 200, j.bodyText)
        XCTAssertEqual(json(j)["result"] as? Double, 1)
        XCTAssertEqual(ServerTimingEntry.parse(j.header("Server-Timing") ?? "").map(\.name), ["sub", "mul", "div"])

        // Every service answers /healthz.
        for s in services {
            let h = try await post(s.port, "", method: "GET", path: "/healthz")
            XCTAssertEqual(h.status, 200)
            XCTAssertEqual(h.bodyText, "ok \(s.role.rawValue)\n")
        }
        for s in services { await s.stop() }
    }

    /// `--role all --host 0.0.0.0` (how it runs in a container): the front end must call its
    /// operation services over loopback, not at the wildcard address.
    func testAllInOneOnWildcardAddressCallsOperationsOverLoopback() async throws {
        let services = try await CalculatorServer.startAll(host: "0.0.0.0", frontPort: 0, operationPorts: Self.zeroPorts)
        defer { Task { for s in services { await s.stop() } } }
        let r = try await post(services[0].port, "(5+6)*2")
        XCTAssertEqual(r.status, 200, r.bodyText)
        XCTAssertEqual(json(r)["result"] as? Double, 22)
    }

    func testErrorStatuses() async throws {
        let services = try await startAll()
        let front = services[0].port

        let bad = try await post(front, "(5+6")
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(json(bad)["position"] as? Int, 5)
        XCTAssertTrue(bad.bodyText.contains("position 5"), bad.bodyText)

        let badJSON = try await post(front, "{\"expr\": 1}", contentType: "application/json")
        XCTAssertEqual(badJSON.status, 400)
        XCTAssertTrue(badJSON.bodyText.contains("\\\"expression\\\""), badJSON.bodyText)

        let zero = try await post(front, "1/(3-3)")
        XCTAssertEqual(zero.status, 422, zero.bodyText)
        XCTAssertTrue(zero.bodyText.contains("division by zero"), zero.bodyText)

        let big = try await post(front, String(repeating: "1+", count: 2100) + "1")
        XCTAssertEqual(big.status, 413, big.bodyText)

        let method = try await post(front, "", method: "GET")
        XCTAssertEqual(method.status, 405)
        XCTAssertEqual(method.header("Allow"), "POST")

        let opMethod = try await post(services[1].port, "", method: "POST", path: "/sum?a=1&b=2")
        XCTAssertEqual(opMethod.status, 405)

        // An operation service that is down: 502 naming it.
        let mul = services.first { $0.role == .mul }!
        await mul.stop()
        let down = try await post(front, "2*3")
        XCTAssertEqual(down.status, 502, down.bodyText)
        XCTAssertEqual(json(down)["service"] as? String, "mul")
        XCTAssertTrue(down.bodyText.contains("the mul service at 127.0.0.1:\(mul.port) is unavailable"), down.bodyText)
        // The other services still work.
        let sum = try await post(front, "2+3")
        XCTAssertEqual(sum.status, 200)
        for s in services { await s.stop() }
    }

    func testDownstreamTimeoutGives504() async throws {
        var slow = CalculatorConfig()
        slow.operationDelay = .milliseconds(400)
        var ops: [RunningCalculatorService] = []
        var cfg = CalculatorConfig()
        for op in CalcOperation.allCases {
            let s = try await CalculatorServer.start(role: CalculatorRole(rawValue: op.rawValue)!, port: 0, config: slow)
            ops.append(s)
            cfg.endpoints[op] = s.endpoint
        }
        cfg.downstreamTimeout = .milliseconds(100)
        let front = try await CalculatorServer.start(role: .front, port: 0, config: cfg)
        let started = ContinuousClock.now
        let r = try await post(front.port, "7-1")
        XCTAssertEqual(r.status, 504, r.bodyText)
        XCTAssertEqual(json(r)["service"] as? String, "sub")
        XCTAssertTrue(r.bodyText.contains("did not answer within 100 ms"), r.bodyText)
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(390))
        await front.stop()
        for s in ops { await s.stop() }
    }

    /// A stopped operation service makes the front end answer 502; the load generator counts
    /// those as `status` errors while requests for the other services still succeed.
    func testStoppedServiceUnderLoadCountsAs502Errors() async throws {
        let services = try await startAll()
        let front = services[0].port
        await services.first { $0.role == .div }!.stop()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(front)/calculate")
        var o = LoadOptions(request: HTTPRequestSpec(method: "POST", path: "/calculate", body: Array("8/2".utf8)),
                            connections: 4, requestCount: 200)
        o.threads = 1
        let r = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        XCTAssertEqual(r.responses, 200)
        XCTAssertEqual(r.statusCounts[502], 200)
        XCTAssertEqual(r.errors[.status], 200)

        o.request.body = Array("8+2".utf8)
        o.expectedBody = "\"result\":10"
        let ok = try await LoadGenerator.run(target: target, options: o, stop: StopFlag())
        XCTAssertEqual(ok.statusCounts[200], 200)
        XCTAssertEqual(ok.totalErrors, 0, "\(ok.errors)")
        for s in services { await s.stop() }
    }

    func testCalcProbeRecordsHopsFromServerTiming() async throws {
        let services = try await startAll()
        let target = try HTTPTarget(url: "http://127.0.0.1:\(services[0].port)/calculate")
        let tree = try CalcParser.parse("(5+6)*2")
        let sink = MemorySink()
        let r = await CalcProbe.run(target: target,
                                    options: CalcProbeOptions(expression: "(5+6)*2", expected: try tree.evaluateLocally(),
                                                              hops: tree.operations.map(\.rawValue), count: 2, interval: .milliseconds(10)),
                                    runID: "t", scenario: "calc", sink: sink, stop: StopFlag())
        XCTAssertEqual(r.succeeded, 2)
        XCTAssertEqual(Set(sink.samples.map(\.phase)), ["resolve", "connect", "first_byte", "total", "hop1_sum", "hop2_mul"])
        XCTAssertTrue(sink.samples.allSatisfy { $0.status == .ok }, sink.samples.map(\.reason).joined())

        // A wrong expected answer is a failed sample saying so.
        let wrong = MemorySink()
        _ = await CalcProbe.run(target: target, options: CalcProbeOptions(expression: "(5+6)*2", expected: 23, hops: ["sum", "mul"], count: 1),
                                runID: "t", scenario: "calc", sink: wrong, stop: StopFlag())
        let total = wrong.samples.first { $0.phase == "total" }!
        XCTAssertEqual(total.status, .error)
        XCTAssertTrue(total.reason.contains("expected 23.0, got 22.0"), total.reason)
        XCTAssertEqual(wrong.samples.first { $0.phase == "hop1_sum" }?.status, .error)
        for s in services { await s.stop() }
    }
}
