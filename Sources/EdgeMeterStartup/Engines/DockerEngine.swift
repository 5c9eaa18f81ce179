import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where dockerd listens: `DOCKER_HOST` (`unix:///path` or `tcp://host:port`) or the default socket.
public enum DockerEndpoint: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public static let defaultSocket = "/var/run/docker.sock"
    /// Where podman's Docker-compatible API listens (`podman system service`, started by
    /// `scripts/setup-engines.sh`).
    public static let podmanSocket = "/run/podman/podman.sock"

    /// Reads `DOCKER_HOST` from `environment`; unset or empty means the default unix socket.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DockerEndpoint {
        guard let value = environment["DOCKER_HOST"], !value.isEmpty else { return .unix(path: defaultSocket) }
        if value.hasPrefix("unix://") {
            let path = String(value.dropFirst("unix://".count))
            guard path.hasPrefix("/") else {
                throw StartupError("DOCKER_HOST=\(value) is not an absolute unix socket path: write it as unix:///var/run/docker.sock")
            }
            return .unix(path: path)
        }
        if value.hasPrefix("tcp://") {
            let rest = String(value.dropFirst("tcp://".count))
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else {
                throw StartupError("DOCKER_HOST=\(value) must look like tcp://HOST:PORT (TLS is not supported)")
            }
            return .tcp(host: String(parts[0]), port: port)
        }
        throw StartupError("DOCKER_HOST=\(value) is not supported: use unix:///path/to/docker.sock or tcp://HOST:PORT")
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix://\(path)"
        case .tcp(let host, let port): return "tcp://\(host):\(port)"
        }
    }
}

// The container engines' clients, in one place: dockerd's Engine API, podman's Docker-compatible
// API (the same client on podman's socket), and QMP (QMPClient.swift). The startup backends and
// the capture scenario's containers both go through the container API at the end of this file.

/// A minimal Docker Engine API client: HTTP/1.1 on swift-nio over the unix socket (or TCP), one
/// connection per request, a `Host` header always sent (dockerd answers `400 missing required Host
/// header` without one). No TLS, no registry access. `DockerAPIClient.podman()` is the same client
/// on podman's socket (`podman system service`).
public final class DockerAPIClient: @unchecked Sendable {
    public let endpoint: DockerEndpoint
    /// API version prefix; 1.41 is what Debian 12's docker.io speaks and newer daemons still accept.
    public let apiVersion: String
    private let group: EventLoopGroup
    private let counterLock = NSLock()
    private var sent = 0

    /// How many requests this client has sent (each `request` and each opened stream counts one,
    /// whatever its outcome). Lets tests prove which Engine API calls fall inside a timed phase.
    public var requestCount: Int { counterLock.withLock { sent } }

    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
        /// The body parsed as JSON (`nil` when empty or not JSON).
        public var json: Any? {
            guard !body.isEmpty else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        }
        /// dockerd's `{"message": "..."}` error text, or the raw body.
        public var errorMessage: String {
            if let dict = json as? [String: Any], let m = dict["message"] as? String { return m }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    public init(endpoint: DockerEndpoint, apiVersion: String = "1.41", group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.endpoint = endpoint
        self.apiVersion = apiVersion
        self.group = group
    }

    public convenience init() throws {
        self.init(endpoint: try DockerEndpoint.fromEnvironment())
    }

    /// Sends one request and collects the whole response body.
    public func request(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil,
                        contentType: String = "application/json", timeout: Duration = .seconds(120)) async throws -> Response {
        let collector = BodyCollector()
        let stream = try await open(method, path, body: body, contentType: contentType, timeout: timeout) { chunk in
            collector.append(chunk)
        }
        try await stream.finished.get()
        return Response(status: stream.status, body: collector.bytes)
    }

    /// Sends `value` as a JSON body.
    public func request(_ method: HTTPMethod, _ path: String, json value: Any, timeout: Duration = .seconds(120)) async throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
        return try await request(method, path, body: Array(data), timeout: timeout)
    }

    /// A streamed response (`/events`, `/containers/ID/logs?follow=1`): `open` returns once the
    /// response head arrived; body chunks go to the callback on an event-loop thread as they arrive.
    public final class Stream: @unchecked Sendable {
        public let status: Int
        /// Succeeds when the response ends; fails on a connection error.
        public let finished: EventLoopFuture<Void>
        let channel: Channel
        init(status: Int, finished: EventLoopFuture<Void>, channel: Channel) {
            self.status = status
            self.finished = finished
            self.channel = channel
        }
        /// Closes the connection (ends a `follow` stream).
        public func close() {
            channel.close(promise: nil)
        }
    }

    public func open(_ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json",
                     timeout: Duration? = nil, onBody: @escaping @Sendable ([UInt8]) -> Void) async throws -> Stream {
        counterLock.withLock { sent += 1 }
        let loop = group.next()
        let headPromise = loop.makePromise(of: HTTPResponseHead.self)
        let endPromise = loop.makePromise(of: Void.self)
        let handler = ResponseHandler(head: headPromise, end: endPromise, onBody: onBody)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: Channel
        do {
            switch endpoint {
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port):
                channel = try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            let e = StartupError.dockerUnreachable(endpoint, detail: "\(error)")
            loop.execute { handler.fail(e) }
            throw e
        }
        if let timeout {
            let task = loop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
                handler.fail(StartupError("Docker API \(method) \(path) did not finish within \(timeout): dockerd is overloaded or stuck; see its log (/var/log/dockerd.log)"))
                channel.close(promise: nil)
            }
            endPromise.futureResult.whenComplete { _ in task.cancel() }
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "docker")
        headers.add(name: "User-Agent", value: "edgemeter")
        headers.add(name: "Connection", value: "close")
        if let body {
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.count))
        } else if method == .POST {
            headers.add(name: "Content-Length", value: "0")
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/v\(apiVersion)\(path)", headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body {
            var buffer = channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let responseHead = try await headPromise.futureResult.get()
        return Stream(status: Int(responseHead.status.code), finished: endPromise.futureResult, channel: channel)
    }

    /// `GET /_ping`: proves the daemon answers; throws the "start dockerd" error otherwise.
    public func ping() async throws {
        let r = try await request(.GET, "/_ping", timeout: .seconds(10))
        guard r.status == 200 else {
            throw StartupError("dockerd at \(endpoint) answered /_ping with HTTP \(r.status): \(r.errorMessage)")
        }
    }
}

/// Percent-encodes a query value (JSON filters, image names).
func queryEscape(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

final class BodyCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [UInt8] = []
    func append(_ chunk: [UInt8]) { lock.lock(); stored.append(contentsOf: chunk); lock.unlock() }
    var bytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return stored }
}

private final class ResponseHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private let head: EventLoopPromise<HTTPResponseHead>
    private let end: EventLoopPromise<Void>
    private let onBody: @Sendable ([UInt8]) -> Void
    private var headDone = false
    private var endDone = false

    init(head: EventLoopPromise<HTTPResponseHead>, end: EventLoopPromise<Void>, onBody: @escaping @Sendable ([UInt8]) -> Void) {
        self.head = head
        self.end = end
        self.onBody = onBody
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            if !headDone { headDone = true; head.succeed(h) }
        case .body(var buffer):
            if let bytes = buffer.readBytes(length: buffer.readableBytes), !bytes.isEmpty { onBody(bytes) }
        case .end:
            if !endDone { endDone = true; end.succeed(()) }
            context.close(promise: nil)
        }
    }

    func fail(_ error: Error) {
        if !headDone { headDone = true; head.fail(error) }
        if !endDone { endDone = true; end.fail(error) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A follow stream closed by us ends normally; anything else before `.end` is a failure.
        if headDone && !endDone { endDone = true; end.succeed(()) }
        fail(StartupError("dockerd closed the connection before answering"))
        context.fireChannelInactive()
    }
}

// MARK: containers (dockerd and podman)

/// What `createContainer` creates: the fields of `POST /containers/create` edgemeter uses.
public struct ContainerSpec: Sendable, Equatable {
    /// The container's name (`edgemeter-...`, so `edgemeter cleanup` finds leftovers).
    public var name: String
    public var image: String
    /// The command (`Cmd`); nil keeps the image's own.
    public var command: [String]?
    /// `bridge` (the default network, an address on docker0), `none`, or a network's name.
    public var network: String
    /// Labels; `edgemeter` and `edgemeter.run` let cleanup find what a run left.
    public var labels: [String: String]
    /// `HostConfig.Ulimits` (name, soft, hard); see `ContainerSpec.podmanUlimits`.
    public var ulimits: [Ulimit]

    public struct Ulimit: Sendable, Equatable {
        public var name: String
        public var soft: Int
        public var hard: Int
    }

    public init(name: String, image: String, command: [String]? = nil, network: String = "bridge",
                labels: [String: String] = [:], ulimits: [Ulimit] = []) {
        self.name = name
        self.image = image
        self.command = command
        self.network = network
        self.labels = labels
        self.ulimits = ulimits
    }

    /// podman asks the runtime for RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 4194304 by default; a
    /// process may not raise its hard limits, so with lower ones (20000 / 32768 for the podman
    /// service here) every start fails with EPERM. These are small limits that fit under any
    /// host's (nofile 1024 as in `runc spec`; nproc 4096), capped by this process's own.
    public static func podmanUlimits() -> [Ulimit] {
        func limit(_ name: String, _ resource: __rlimit_resource, _ wanted: UInt) -> Ulimit {
            var rl = rlimit()
            getrlimit(Int32(resource.rawValue), &rl)
            let v = Int(min(wanted, rl.rlim_max))
            return Ulimit(name: name, soft: v, hard: v)
        }
        return [limit("nofile", RLIMIT_NOFILE, 1024), limit("nproc", __RLIMIT_NPROC, 4096)]
    }

    /// The JSON body of `POST /containers/create`.
    var body: [String: Any] {
        var host: [String: Any] = ["NetworkMode": network]
        if !ulimits.isEmpty { host["Ulimits"] = ulimits.map { ["Name": $0.name, "Soft": $0.soft, "Hard": $0.hard] } }
        var b: [String: Any] = ["Image": image, "Labels": labels, "HostConfig": host, "AttachStdout": false, "Tty": false]
        if let command { b["Cmd"] = command }
        return b
    }
}

/// What `GET /containers/ID/json` says about a container.
public struct ContainerState: Sendable, Equatable {
    /// `created`, `running`, `paused`, `exited`, ...
    public var status: String
    /// `State.ExitCode` (meaningful once `status` is `exited`).
    public var exitCode: Int
    /// The address on the default bridge (`NetworkSettings.IPAddress`); empty without one.
    public var address: String

    /// Started: running now, or already exited.
    public var hasStarted: Bool { status == "running" || status == "exited" }
    public var hasExited: Bool { status == "exited" || status == "dead" }
}

extension DockerAPIClient {
    /// The client for podman's Docker-compatible API (`podman system service`, started by
    /// `scripts/setup-engines.sh` on /run/podman/podman.sock).
    public static func podman(socket: String = DockerEndpoint.podmanSocket) -> DockerAPIClient {
        DockerAPIClient(endpoint: .unix(path: socket))
    }

    /// `POST /containers/create?name=NAME`; returns the container ID. A missing image throws
    /// "image ... not found: run `edgemeter image build`".
    public func createContainer(_ spec: ContainerSpec) async throws -> String {
        let r = try await request(.POST, "/containers/create?name=\(queryEscape(spec.name))", json: spec.body)
        guard r.status == 201, let obj = r.json as? [String: Any], let id = obj["Id"] as? String else {
            if r.status == 404 { throw StartupError("image \(spec.image) not found in \(endpoint): build it with `edgemeter image build`") }
            throw StartupError("creating container \(spec.name): HTTP \(r.status): \(r.errorMessage)")
        }
        return id
    }

    /// `POST /containers/ID/start` (204, or 304 when it already runs).
    public func startContainer(_ id: String) async throws {
        try Self.expect(await request(.POST, "/containers/\(id)/start"), [204, 304], "starting container \(id.prefix(12))")
    }

    /// `GET /containers/ID/json`.
    public func inspectContainer(_ id: String) async throws -> ContainerState {
        let r = try await request(.GET, "/containers/\(id)/json")
        guard r.status == 200, let obj = r.json as? [String: Any], let st = obj["State"] as? [String: Any] else {
            throw StartupError("inspecting container \(id.prefix(12)): HTTP \(r.status): \(r.errorMessage)")
        }
        let ip = ((obj["NetworkSettings"] as? [String: Any])?["IPAddress"] as? String) ?? ""
        return ContainerState(status: st["Status"] as? String ?? "", exitCode: st["ExitCode"] as? Int ?? -1, address: ip)
    }

    /// `POST /containers/ID/wait` opened as a stream: `onExit` gets the exit status when the
    /// container exits (nil when the answer carried none); `close()` on the stream abandons the wait.
    /// Call it once the container started: for one that was only created, dockerd answers at once
    /// with status 0 (its condition is "not running"); for one that already exited, with its status.
    public func waitContainer(_ id: String, onExit: @escaping @Sendable (Int?) -> Void) async throws -> Stream {
        let body = BodyCollector()
        let stream = try await open(.POST, "/containers/\(id)/wait") { chunk in body.append(chunk) }
        stream.finished.whenComplete { _ in
            let obj = try? JSONSerialization.jsonObject(with: Data(body.bytes)) as? [String: Any]
            onExit(stream.status == 200 ? obj?["StatusCode"] as? Int : nil)
        }
        return stream
    }

    /// `POST /containers/ID/stop?t=SECONDS` (204, or 304 when it is not running).
    public func stopContainer(_ id: String, graceSeconds: Int = 2) async throws {
        try Self.expect(await request(.POST, "/containers/\(id)/stop?t=\(graceSeconds)", timeout: .seconds(30 + graceSeconds)),
                        [204, 304], "stopping container \(id.prefix(12))")
    }

    /// `DELETE /containers/ID?force=1` (204, or 404 when it is already gone).
    public func removeContainer(_ id: String) async throws {
        try Self.expect(await request(.DELETE, "/containers/\(id)?force=1", timeout: .seconds(30)), [204, 404],
                        "removing container \(id.prefix(12))")
    }

    /// Force-removes every container carrying `label` (`edgemeter` for all leftovers) and, with
    /// `images`, the `edgemeter-snap-*` images. Returns what was removed; errors are skipped.
    public func removeLabelled(_ label: String, images: Bool = false) async -> [String] {
        var removed: [String] = []
        let filters = queryEscape("{\"label\":[\"\(label)\"]}")
        if let r = try? await request(.GET, "/containers/json?all=1&filters=\(filters)"), let list = r.json as? [[String: Any]] {
            for c in list {
                guard let id = c["Id"] as? String else { continue }
                let name = ((c["Names"] as? [String])?.first ?? id).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
                if (try? await removeContainer(id)) != nil { removed.append("container \(name)") }
            }
        }
        removed += await removeLabNetworks(label)
        if images, let r = try? await request(.GET, "/images/json"), let list = r.json as? [[String: Any]] {
            for img in list {
                for tag in img["RepoTags"] as? [String] ?? [] where tag.hasPrefix("edgemeter-snap-") {
                    if let d = try? await request(.DELETE, "/images/\(queryEscape(tag))?force=1"), d.status == 200 {
                        removed.append("image \(tag)")
                    }
                }
            }
        }
        return removed
    }

    /// Removes the networks a lab compose deployment created (labelled `<label>=lab`) and returns
    /// "network NAME" for each: a killed `lab up` whose state file was lost leaves them otherwise.
    /// Only labelled networks are listed, so docker's own (bridge, host, none) and users' networks are
    /// never touched; a network that still has containers is left (dockerd refuses, 403).
    public func removeLabNetworks(_ label: String = "edgemeter") async -> [String] {
        var removed: [String] = []
        let labNetworks = queryEscape("{\"label\":[\"\(label)=lab\"]}")
        if let r = try? await request(.GET, "/networks?filters=\(labNetworks)"), let list = r.json as? [[String: Any]] {
            for n in list {
                guard let id = n["Id"] as? String else { continue }
                let name = n["Name"] as? String ?? id
                if let d = try? await request(.DELETE, "/networks/\(id)"), d.status == 204 || d.status == 404 {
                    removed.append("network \(name)")
                }
            }
        }
        return removed
    }

    static func expect(_ r: Response, _ codes: [Int], _ what: String) throws {
        guard codes.contains(r.status) else { throw StartupError("\(what): HTTP \(r.status): \(r.errorMessage)") }
    }
}
