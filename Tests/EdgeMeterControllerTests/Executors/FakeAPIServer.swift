import Foundation
import NIOCore
import NIOPosix
import NIOHTTP1

/// A local HTTP server that answers the few Kubernetes API calls of a migration as the API server
/// does (Deployments in apps/v1, one Service in v1, `Status` objects on errors) and records every
/// request. Faults are injected per step.
final class FakeAPIServer: @unchecked Sendable {
    struct Recorded: Equatable {
        var method: String
        var path: String
        var contentType: String?
        var authorization: String?
        var body: String
        var json: NSDictionary? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? NSDictionary }
    }

    struct Faults {
        var createStatus: Int?
        var patchStatus: Int?
        var deleteStatus: Int?
        /// GETs of a Deployment before it reports availableReplicas = replicas; nil: never.
        var availableAfterGets: Int? = 1
    }

    let lock = NSLock()
    var requests: [Recorded] = []
    var deployments: [String: NSDictionary] = [:]
    var getsOf: [String: Int] = [:]
    var selector: [String: String]
    var faults = Faults()
    let namespace: String
    let serviceName: String
    private var channel: Channel?

    init(namespace: String = "default", serviceName: String, selector: [String: String], existing: [String: NSDictionary] = [:]) {
        (self.namespace, self.serviceName, self.selector, self.deployments) = (namespace, serviceName, selector, existing)
    }

    func start() async throws -> Int {
        let ch = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel = ch
        return ch.localAddress!.port!
    }

    func stop() async { try? await channel?.close() }

    var recorded: [Recorded] { lock.withLock { requests } }
    var currentSelector: [String: String] { lock.withLock { selector } }
    var deploymentNames: [String] { lock.withLock { deployments.keys.sorted() } }

    static func status(_ code: Int, _ reason: String, _ message: String) -> (Int, String) {
        let obj: [String: Any] = ["kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code]
        return (code, String(decoding: try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
    }

    func answer(_ r: Recorded) -> (Int, String) {
        lock.withLock {
            requests.append(r)
            let deps = "/apis/apps/v1/namespaces/\(namespace)/deployments"
            let svc = "/api/v1/namespaces/\(namespace)/services/\(serviceName)"
            func json(_ o: Any) -> String { String(decoding: try! JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self) }
            if r.method == "POST" && r.path == deps {
                if let s = faults.createStatus { return Self.status(s, s == 409 ? "AlreadyExists" : "Forbidden", "deployments.apps \"x\" refused (injected \(s))") }
                guard let obj = r.json, let meta = obj["metadata"] as? NSDictionary, let name = meta["name"] as? String else {
                    return Self.status(400, "BadRequest", "no metadata.name")
                }
                if deployments[name] != nil { return Self.status(409, "AlreadyExists", "deployments.apps \"\(name)\" already exists") }
                deployments[name] = obj
                return (201, r.body)
            }
            if r.path.hasPrefix(deps + "/") {
                let name = String(r.path.dropFirst(deps.count + 1))
                switch r.method {
                case "GET":
                    guard let d = deployments[name] else { return Self.status(404, "NotFound", "deployments.apps \"\(name)\" not found") }
                    getsOf[name, default: 0] += 1
                    let replicas = ((d["spec"] as? NSDictionary)?["replicas"] as? Int) ?? 1
                    let available = faults.availableAfterGets.map { getsOf[name]! >= $0 } ?? false
                    let body: [String: Any] = ["metadata": d["metadata"] ?? NSDictionary(), "spec": d["spec"] ?? NSDictionary(), "status": ["replicas": replicas, "availableReplicas": available ? replicas : 0]]
                    return (200, json(body))
                case "DELETE":
                    if let s = faults.deleteStatus, name == faultyDelete { return Self.status(s, "Forbidden", "deployments.apps \"\(name)\" is forbidden (injected)") }
                    guard deployments.removeValue(forKey: name) != nil else { return Self.status(404, "NotFound", "deployments.apps \"\(name)\" not found") }
                    return (200, json(["kind": "Status", "status": "Success"]))
                default: return Self.status(405, "MethodNotAllowed", "method not allowed")
                }
            }
            if r.path == svc {
                switch r.method {
                case "GET":
                    let body: [String: Any] = ["metadata": ["name": serviceName], "spec": ["selector": selector, "ports": [["port": 8000]]] as [String: Any]]
                    return (200, json(body))
                case "PATCH":
                    let fault = patchesSeen == 0 ? faults.patchStatus : nil
                    patchesSeen += 1
                    if let s = fault, !patchAppliesBeforeFault {
                        return Self.status(s, "Forbidden", "services \"\(serviceName)\" is forbidden (injected)")
                    }
                    guard r.contentType == "application/merge-patch+json", let obj = r.json, let spec = obj["spec"] as? NSDictionary,
                          let sel = spec["selector"] as? NSDictionary else { return Self.status(415, "UnsupportedMediaType", "need a merge patch") }
                    for (k, v) in sel {
                        if v is NSNull { selector.removeValue(forKey: k as! String) } else { selector[k as! String] = v as? String }
                    }
                    if let s = fault { return Self.status(s, "InternalError", "etcdserver: request timed out (injected after applying)") }
                    let body: [String: Any] = ["metadata": ["name": serviceName], "spec": ["selector": selector]]
                    return (200, json(body))
                default: return Self.status(405, "MethodNotAllowed", "method not allowed")
                }
            }
            return Self.status(404, "NotFound", "the server could not find the requested resource")
        }
    }
    var patchesSeen = 0
    /// The first PATCH is applied, then answered with `faults.patchStatus` (an answer lost after the write).
    var patchAppliesBeforeFault = false
    /// Which Deployment's DELETE fails with `faults.deleteStatus`.
    var faultyDelete = ""

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: FakeAPIServer
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        init(server: FakeAPIServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h; body.clear()
            case .body(var b): body.writeBuffer(&b)
            case .end:
                guard let h = head else { return }
                let rec = Recorded(method: h.method.rawValue, path: h.uri, contentType: h.headers.first(name: "Content-Type"),
                                   authorization: h.headers.first(name: "Authorization"), body: String(buffer: body))
                let (code, text) = server.answer(rec)
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(text.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: code), headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
