import Foundation
import Hummingbird
import EdgeMeterServe
import HTTPTypes
import Logging
import NIOCore
import ServiceLifecycle
import EdgeMeterCore
import EdgeMeterPolicy

/// The controller's HTTP API on Hummingbird 2 (see docs/migration.md, "The controller").
///
/// The lab's endpoints, with its messages: `POST /service_init` ("all services deployed"),
/// `POST /update_delay` ("delay requirement updated"), `GET /migrate` (decides now: per node
/// `active_node`, `observed_delay`, `expected_delay`, plus the decision). edgemeter's own:
/// `POST /delays`, `GET /status`, `GET /decisions`, `GET /metrics`, `GET /healthz`.
/// Calls that change state (`service_init`, `update_delay`, `migrate`, `delays`) need
/// `Authorization: Bearer TOKEN` (401 otherwise). Errors answer `{"error", "field", "status"}`.
public enum ControllerServer {
    public static let maxBodyBytes = 4 * 1024 * 1024

    /// A running controller API.
    public final class Running: @unchecked Sendable {
        public let host: String
        public let port: Int
        private let task: Task<Void, Error>
        private let group: ServiceGroup
        init(host: String, port: Int, task: Task<Void, Error>, group: ServiceGroup) {
            (self.host, self.port, self.task, self.group) = (host, port, task, group)
        }
        public var url: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }
        public func stop() async {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
        }
        public func wait() async throws { try await task.value }
    }

    static func orNull(_ v: Any?) -> Any { v ?? NSNull() }

    static func json(_ status: HTTPResponse.Status, _ object: Any) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: data + Data("\n".utf8))))
    }

    static func encoded<T: Encodable>(_ value: T) throws -> Any {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.dateEncodingStrategy = .custom { d, enc in
            var c = enc.singleValueContainer()
            try c.encode(Format.timestamp(d))
        }
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try JSONSerialization.jsonObject(with: try e.encode(value))
    }

    static func failure(_ e: ControllerError) -> Response {
        var body: [String: Any] = ["status": e.status, "error": e.description, "field": orNull(e.field)]
        if let m = e.migration, let o = try? encoded(m) { body["migration"] = o }
        return json(HTTPResponse.Status(code: e.status), body)
    }

    /// Compares without stopping at the first difference, so the time taken says nothing about the token.
    static func sameToken(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = x.count ^ y.count
        for i in 0..<max(x.count, y.count) { diff |= Int((i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)) }
        return diff == 0
    }

    static func authorize(_ request: Request, token: String) -> Response? {
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        if header.hasPrefix(prefix), sameToken(String(header.dropFirst(prefix.count)), token) { return nil }
        let why = header.isEmpty ? "this call changes the controller's state and needs the header Authorization: Bearer TOKEN"
            : "the bearer token does not match"
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.wwwAuthenticate] = "Bearer realm=\"edgemeter-controller\""
        let body: [String: Any] = ["status": 401, "field": "Authorization",
                                   "error": "\(why); use the token of the controller's --token-file or EDGEMETER_CONTROLLER_TOKEN"]
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
        return Response(status: .unauthorized, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: data + Data("\n".utf8))))
    }

    /// The lab's `GET /migrate` answer for a decision.
    static func migrateAnswer(_ d: DecisionRecord, service: ServiceRecord?) throws -> [String: Any] {
        let req = d.decision.input.requirement
        var nodes: [[String: Any]] = []
        for o in d.decision.input.nodes {
            var n: [String: Any] = ["node": o.node, "active_node": d.activeBefore,
                                    "observed_delay": orNull(o.milliseconds(at: req.percentile).map { ($0 * 100).rounded() / 100 }),
                                    "expected_delay": req.maxMilliseconds, "percentile": req.percentile.rawValue,
                                    "samples": o.received, "loss_percent": (o.lossPercent * 100).rounded() / 100]
            if let c = d.decision.input.moveCostMilliseconds[o.node] { n["move_cost_ms"] = c }
            nodes.append(n)
        }
        let message: String
        switch d.decision.movesService ? .migrate : d.decision.kind {
        case .migrate:
            if let m = d.migration, m.outcome == .completed || m.outcome == .completedWithLeftover {
                message = "service migrated to \(m.to)"
            } else {
                message = "migration to \(d.decision.target ?? "?") failed: \(d.migrationError ?? "?")"
            }
        case .stayBestIsActive:
            message = "can't migrate service! Best node is the one active \(d.activeBefore)"
        default:
            message = d.decision.reason
        }
        var out: [String: Any] = ["service": d.service, "decision_id": d.id, "decision": d.decision.kind.rawValue,
                                  "reason": d.decision.reason, "message": message, "nodes": nodes,
                                  "active_node": orNull(d.activeAfter), "previous_node": d.activeBefore,
                                  "decide_milliseconds": d.decideMilliseconds, "total_milliseconds": d.totalMilliseconds]
        if let t = d.decision.target { out["target"] = t }
        if let m = d.migration { out["migration"] = try encoded(m) }
        if let e = d.migrationError { out["migration_error"] = e }
        return out
    }

    static func statusObject(_ r: ServiceRecord, observations: [NodeObservation], moving: Bool) throws -> [String: Any] {
        var nodes: [[String: Any]] = []
        for n in r.nodes {
            var o: [String: Any] = ["name": n.name, "active": n.name == r.activeNode]
            if let t = n.target { o["target"] = t }
            if let c = n.moveCostMilliseconds { o["move_cost_ms"] = c }
            if let ob = observations.first(where: { $0.node == n.name }) {
                o["window"] = try encoded(ob)
            }
            nodes.append(o)
        }
        let h = r.hysteresis
        return ["name": r.name, "active_node": orNull(r.activeNode), "requirement": r.requirement.description,
                "requirement_ms": r.requirement.maxMilliseconds, "percentile": r.requirement.percentile.rawValue,
                "policy": r.policy, "metric": r.metric, "window_s": Double(r.windowNanoseconds) / 1e9,
                "hysteresis": ["margin_percent": h.marginPercent, "dwell_s": Double(h.dwellNanoseconds) / 1e9,
                               "cooldown_s": Double(h.cooldownNanoseconds) / 1e9, "min_samples": h.minSamples,
                               "max_age_s": Double(h.maxSampleAgeNanoseconds) / 1e9, "when_none_meets": h.whenNoneMeets.rawValue],
                "policy_state": try encoded(r.policyState), "suspended": orNull(r.suspended), "moving": moving, "nodes": nodes]
    }

    /// The routes, on `controller`, guarded by `token`.
    public static func router(controller: MigrationController, token: String) -> Router<BasicRequestContext> {
        let router = Router()
        typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response
        func guarded(_ mutating: Bool, _ body: @escaping @Sendable (Request) async throws -> Response) -> Handler {
            return { request, _ in
                if mutating, let denied = authorize(request, token: token) { return denied }
                do { return try await body(request) } catch let e as ControllerError { return failure(e) }
            }
        }
        @Sendable func readBody(_ request: Request, example: String) async throws -> JSONFields {
            let buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: maxBodyBytes) } catch {
                throw ControllerError("the body is larger than \(maxBodyBytes) bytes; post fewer delays per request", status: 413, field: "body")
            }
            return try JSONFields.body(Data(buffer: buffer), example: example)
        }
        @Sendable func query(_ request: Request, _ key: String) -> String? {
            guard let v = request.uri.queryParameters[Substring(key)], !v.isEmpty else { return nil }
            return String(v).removingPercentEncoding ?? String(v)
        }

        router.post("/service_init", use: guarded(true) { request in
            let body = try await readBody(request, example: "{\"name\": \"edge-app\", \"nodes\": [...], \"active_node\": \"node_1\", \"requirement\": \"20ms@p90\"}")
            let records = try ServiceParsing.serviceInit(body, whenNoneMeets: controller.defaultWhenNoneMeets)
            try await controller.initServices(records)
            return json(.ok, ["message": "all services deployed", "services": records.map(\.name)])
        })
        router.post("/update_delay", use: guarded(true) { request in
            let body = try await readBody(request, example: "{\"service\": \"edge-app\", \"delay\": 20, \"percentile\": \"p90\"}")
            try body.unknownKeys(["service", "requirement", "delay", "percentile"])
            let service = try body.string("service", example: "\"edge-app\"")
            let req = try ServiceParsing.requirement(body, required: true)!
            let r = try await controller.updateRequirement(service: service, req)
            return json(.ok, ["message": "delay requirement updated", "service": r.name, "requirement": req.description,
                              "expected_delay": req.maxMilliseconds, "percentile": req.percentile.rawValue])
        })
        router.get("/migrate", use: guarded(true) { request in
            let d = try await controller.decide(service: query(request, "service"), trigger: "GET /migrate")
            return json(.ok, try migrateAnswer(d, service: await controller.service(d.service)))
        })
        router.post("/delays", use: guarded(true) { request in
            let body = try await readBody(request, example: "{\"delays\": [{\"node\": \"node_1\", \"metric\": \"http_total\", \"samples_ms\": [5.1, 5.3]}]}")
            let rows = try DelayPosting.parse(body, clock: controller.clock)
            let fed = try await controller.addRows(rows, service: try body.string("service", example: "\"edge-app\""))
            return json(.ok, ["message": "delays recorded", "rows": rows.count, "samples": rows.reduce(0) { $0 + $1.samples.count },
                              "services": fed])
        })
        router.get("/status", use: guarded(false) { request in
            var out: [[String: Any]] = []
            let moving = await controller.isMoving
            if let name = query(request, "service") {
                let r = try await controller.resolve(service: name)
                out.append(try statusObject(r, observations: await controller.observations(r.name), moving: moving.contains(r.name)))
            } else {
                for r in await controller.allServices {
                    out.append(try statusObject(r, observations: await controller.observations(r.name), moving: moving.contains(r.name)))
                }
            }
            return json(.ok, ["services": out])
        })
        router.get("/decisions", use: guarded(false) { request in
            var limit = 100
            if let text = query(request, "limit") {
                guard let n = Int(text), (1...10_000).contains(n) else {
                    throw ControllerError("limit \"\(text)\" must be a whole number from 1 to 10000", field: "limit")
                }
                limit = n
            }
            let list = try await controller.decisions(service: query(request, "service"), limit: limit)
            return json(.ok, ["decisions": try list.map { try encoded($0) }])
        })
        router.get("/metrics", use: guarded(false) { _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            let text = try await ControllerMetrics.render(controller)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        })
        router.get("/healthz") { _, _ in "ok controller\n" }
        return router
    }

    /// Starts the API on `host:port` (0 picks a free port; `Running.port` is the bound one).
    public static func start(controller: MigrationController, token: String, host: String = "127.0.0.1", port: Int,
                             logger: Logger) async throws -> Running {
        let started: ServerStart.Started
        do {
            started = try await ServerStart.start(router: router(controller: controller, token: token), host: host, port: port,
                                                  serverName: "edgemeter-controller", logger: logger)
        } catch let f as ServerStartFailure {
            throw ControllerError("the controller cannot listen on \(host):\(port) (\(f)); pick another --port (0 picks a free one)", status: 500,
                                  field: "--port")
        }
        let (bound, task, group) = (started.port, started.task, started.group)
        return Running(host: host, port: bound, task: task, group: group)
    }
}
