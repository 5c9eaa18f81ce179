import Foundation
import Hummingbird
import EdgeMeterServe
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import HTTPTypes
import EdgeMeterHTTP

/// The header (and body field `node`) naming the node that answered, for the vehicle probe.
public let edgeNodeHeader = "X-Edgemeter-Node"

/// One running server (edge app or cloud database) on its own port, named by its role.
public typealias RunningEdgeServer = RunningServer<String>

/// The road status, shared by the cloud database's handlers.
final class RoadStatusStore: @unchecked Sendable {
    private let lock = NSLock()
    private var status: RoadStatus
    init(_ s: RoadStatus) { status = s }
    var current: RoadStatus { lock.lock(); defer { lock.unlock() }; return status }
    func update(_ f: (RoadStatus) throws -> RoadStatus) throws -> RoadStatus {
        lock.lock(); defer { lock.unlock() }
        status = try f(status)
        return status
    }
}

/// The edge app's copy of the road status, refreshed from the cloud database in the background.
final class RoadStatusCache: @unchecked Sendable {
    private let lock = NSLock()
    private var status: RoadStatus?
    private var problem: String = "no road status fetched yet"
    var current: (RoadStatus?, String) { lock.lock(); defer { lock.unlock() }; return (status, problem) }
    func set(_ s: RoadStatus) { lock.lock(); status = s; lock.unlock() }
    func fail(_ why: String) { lock.lock(); problem = why; lock.unlock() }
}

public enum EdgeAppServer {
    public static var quietLogger: Logger {
        var l = Logger(label: "edgemeter.edge-app")
        l.logLevel = .error
        return l
    }

    static func json(_ status: HTTPResponse.Status, _ object: Any, node: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let node { headers[HTTPField.Name(edgeNodeHeader)!] = node }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: data + Data("\n".utf8))))
    }

    static func failure(_ status: HTTPResponse.Status, _ e: EdgeAppError, node: String? = nil) -> Response {
        var body: [String: Any] = ["status": Int(status.code), "error": e.description, "field": e.field]
        if let node { body["node"] = node }
        return json(status, body, node: node)
    }

    static func statusObject(_ s: RoadStatus) -> [String: Any] {
        ["speed_limitation": s.speedLimitation, "crosswalk": s.crosswalk, "occupation": s.occupation, "intersection": s.intersection]
    }

    /// `edgemeter serve cloud-db`: `GET /status` answers the road status; `POST /status` or
    /// `PUT /status` with some of its fields updates them and answers `{"message": "update successful"}`
    /// (400 naming the field when one is wrong, nothing changed then). `GET /healthz` answers `ok cloud-db`.
    public static func startCloudDB(host: String = "127.0.0.1", port: Int, initial: RoadStatus = RoadStatus(),
                                    logger: Logger = quietLogger) async throws -> RunningEdgeServer {
        let store = RoadStatusStore(initial)
        let router = Router()
        router.get("/status") { _, _ in json(.ok, statusObject(store.current)) }
        let update: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: buffer)) else {
                return failure(.badRequest, EdgeAppError(field: "body", "the body is not valid JSON; send e.g. {\"crosswalk\": \"occupied\"}"))
            }
            do {
                _ = try store.update { try $0.updated(with: object) }
            } catch let e as EdgeAppError {
                return failure(.badRequest, e)
            }
            return json(.ok, ["message": "update successful"])
        }
        router.post("/status", use: update)
        router.put("/status", use: update)
        router.get("/healthz") { _, _ in "ok cloud-db\n" }
        return try await start(router: router, name: "cloud-db", host: host, port: port, logger: logger)
    }

    /// `edgemeter serve edge-app`: `POST /drive` with `{"front_distance": M, "rear_distance": M}`
    /// answers `{"edge_response": {"acceleration", "steering"}, "cloud_response": "", "node": NODE}`
    /// (rule: `DrivingAdvice.advise`) and the header `X-Edgemeter-Node: NODE`, from the road status
    /// fetched from `cloud` every `refresh` (the first fetch before listening). 400 names the bad
    /// field; 503 when no road status could be fetched yet. `GET /healthz` answers `ok edge-app NODE`.
    /// `processingDelay` (0 by default) is extra time spent on every `/drive` request before it is
    /// answered: it emulates a loaded node in experiments and lets tests provoke queueing.
    public static func startEdgeApp(host: String = "127.0.0.1", port: Int, node: String, cloud: HTTPTarget,
                                    refresh: Duration = .seconds(1), processingDelay: Duration = .zero,
                                    logger: Logger = quietLogger) async throws -> RunningEdgeServer {
        let cache = RoadStatusCache()
        await fetch(cloud, into: cache)
        let refresher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: refresh)
                if Task.isCancelled { break }
                await fetch(cloud, into: cache)
            }
        }
        let router = Router()
        router.post("/drive") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            let report: VehicleReport
            do {
                report = try VehicleReport(json: Data(buffer: buffer))
            } catch let e as EdgeAppError {
                return failure(.badRequest, e, node: node)
            }
            let (road, problem) = cache.current
            guard let road else {
                return failure(.serviceUnavailable, EdgeAppError(field: "cloud", "no road status from the cloud database at \(cloud): \(problem); "
                                                                 + "start it with `edgemeter serve cloud-db` or point --cloud at it"), node: node)
            }
            if processingDelay > .zero { try await Task.sleep(for: processingDelay) }
            let a = DrivingAdvice.advise(report, road: road)
            return json(.ok, ["edge_response": ["acceleration": a.acceleration, "steering": a.steering], "cloud_response": "", "node": node], node: node)
        }
        router.get("/healthz") { _, _ in "ok edge-app \(node)\n" }
        do {
            return try await start(router: router, name: "edge-app", host: host, port: port, logger: logger, onStop: { refresher.cancel() })
        } catch {
            refresher.cancel()
            throw error
        }
    }

    /// One GET of the road status (2 s at most); a failure keeps the previous status and records why.
    static func fetch(_ cloud: HTTPTarget, into cache: RoadStatusCache) async {
        do {
            let address = try await HTTPConnection.resolve(host: cloud.host, port: cloud.port)
            let conn = try await HTTPConnection.connect(to: address, targetName: cloud.description, timeout: .seconds(2),
                                                        group: MultiThreadedEventLoopGroup.singleton)
            defer { conn.close() }
            let r = try await conn.send(HTTPRequestSpec(method: "GET", path: cloud.path), host: cloud.hostHeader, keepAlive: false, timeout: .seconds(2))
            guard r.response.status == 200 else {
                cache.fail("GET \(cloud) answered HTTP \(r.response.status)")
                return
            }
            cache.set(try JSONDecoder().decode(RoadStatus.self, from: Data(r.response.bodyText.utf8)))
        } catch {
            cache.fail("GET \(cloud) failed (\(describe(error)))")
        }
    }

    static func start(router: Router<BasicRequestContext>, name: String, host: String, port: Int, logger: Logger,
                      onStop: @escaping @Sendable () -> Void = {}) async throws -> RunningEdgeServer {
        let started: ServerStart.Started
        do {
            started = try await ServerStart.start(router: router, host: host, port: port, serverName: "edgemeter-\(name)", logger: logger)
        } catch let f as ServerStartFailure {
            throw EdgeAppError(field: "--port", "the \(name) server cannot listen on \(host):\(port) (\(f)); pick another port with --port (0 picks a free one) or check --host")
        }
        return RunningEdgeServer(id: name, host: host, started: started, onStop: onStop)
    }
}
