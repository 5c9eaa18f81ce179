import EdgeMeterCore
import Foundation

/// Docker through the Engine API (never the CLI). Phases, timed on the client with a monotonic clock:
/// - create: `POST /containers/create` until it answers 201;
/// - start: `POST /containers/ID/start` until it answers 204 (the runtime started the process);
/// - running: polling `GET /containers/ID/json` (5 ms) until the state is running or already exited;
/// - ready: the ready check (exit: `POST /containers/ID/wait` says status 0; marker: the line appears
///   on the followed log stream; tcp/http/icmp: to the container's bridge address, taken from the
///   inspect that ended `running`, so `ready` holds no Engine API call of its own);
/// - stop: `POST /containers/ID/stop?t=2`; remove: `DELETE /containers/ID?force=1`.
/// The engine's own `create`/`start`/`die`/`destroy` events (`GET /events`, nanosecond times) are
/// recorded in labels (`engine_create_to_start_ms`, ...) as a cross-check of the client figures.
/// With `engine: "podman"` the same code drives podman's Docker-compatible API
/// (`podman system service`, /run/podman/podman.sock); the engine's OCI runtime (`GET /info`) is in
/// the `runtime` label.
public final class DockerBackend: StartupBackend, @unchecked Sendable {
    public let client: DockerAPIClient
    public let image: String
    /// Workload command; nil = the built-in busybox workload for the ready check.
    public let command: [String]?
    public let runTag: String
    /// When set, instances start from a commit of a running container (the lab's "CT3 from a snapshot of CT2").
    public let fromSnapshot: Bool
    /// `docker` (dockerd) or `podman` (podman's Docker-compatible API, `podman system service`): the
    /// backend name on every sample, and the engine-specific fixes (podman: image loaded from
    /// dockerd when missing, `nofile` ulimit within this process's limit).
    public let engine: String
    public var name: String { fromSnapshot ? "\(engine)-snapshot" : engine }
    public var labels: [String: String] {
        var l = ["image": snapshotImage ?? image, "engine": "\(engine == "docker" ? "dockerd" : engine) \(client.endpoint)"]
        if fromSnapshot { l["source"] = "snapshot" }
        if let rt = engineRuntime { l["runtime"] = rt }
        return l
    }
    /// Set by `prepare` in snapshot mode: milliseconds `POST /commit` took.
    public private(set) var commitMilliseconds: Double?
    private(set) var snapshotImage: String?
    private(set) var sourceContainer: String?
    /// The engine's OCI runtime and version from `GET /info` (`runc`, `crun`), set by `prepare`.
    private var engineRuntime: String?
    let events = EventLog()
    private var eventStream: DockerAPIClient.Stream?
    private let lock = NSLock()
    private var created: [String] = []

    public init(client: DockerAPIClient, image: String = ImageBuilder.defaultReference, command: [String]? = nil,
                runID: String, fromSnapshot: Bool = false, engine: String = "docker") {
        self.client = client
        self.engine = engine
        self.image = image
        self.command = command
        self.runTag = instanceTag(runID)
        self.fromSnapshot = fromSnapshot
    }

    /// Where podman's Docker-compatible API listens (started by `scripts/setup-engines.sh`).
    public static let podmanSocket = "/run/podman/podman.sock"
    public static let podmanServiceCommand = "podman system service --time=0 unix:///run/podman/podman.sock &"

    public func prepare(stop: StopFlag) async throws {
        do {
            try await client.ping()
        } catch let e as StartupError where engine == "podman" {
            throw StartupError("cannot reach podman's Docker-compatible API at \(client.endpoint) (\(e.message.prefix(120))…): start it with "
                + "`scripts/setup-engines.sh` (or `\(Self.podmanServiceCommand)`)")
        }
        if let info = try? await client.request(.GET, "/info"), let obj = info.json as? [String: Any], let rt = obj["DefaultRuntime"] as? String {
            engineRuntime = rt + ((obj["ServerVersion"] as? String).map { " (\(engine) \($0))" } ?? "")
        }
        var r = try await client.request(.GET, "/images/\(queryEscape(image))/json")
        if r.status == 404 && engine != "docker" {
            try await loadImageFromDockerd()
            r = try await client.request(.GET, "/images/\(queryEscape(image))/json")
        }
        if r.status == 404 {
            throw StartupError("image \(image) not found in dockerd: build it with `edgemeter image build` (no registry is reachable)")
        }
        guard r.status == 200 else { throw StartupError("inspecting image \(image): HTTP \(r.status): \(r.errorMessage)") }
        let filters = queryEscape("{\"label\":[\"edgemeter.run=\(runTag)\"],\"type\":[\"container\"]}")
        let log = events
        eventStream = try await client.open(.GET, "/events?filters=\(filters)") { chunk in log.feed(chunk) }
        if fromSnapshot { try await makeSnapshot(stop: stop) }
    }

    /// Copies `image` from dockerd into this engine: `GET /images/NAME/get` on dockerd (a `docker
    /// save` tar) → `POST /images/load` here. Used when podman lacks the image `edgemeter image build` made.
    func loadImageFromDockerd() async throws {
        let hint = "build it with `edgemeter image build` (dockerd), then run `scripts/setup-engines.sh`, "
            + "or `docker save \(image) | podman load`"
        guard let docker = try? DockerAPIClient(), (try? await docker.ping()) != nil else {
            throw StartupError("image \(image) not found in \(engine) and dockerd is not reachable to copy it from: \(hint)")
        }
        let saved = try await docker.request(.GET, "/images/\(queryEscape(image))/get", timeout: .seconds(300))
        guard saved.status == 200 else {
            throw StartupError("image \(image) not found in \(engine) nor in dockerd (HTTP \(saved.status)): \(hint)")
        }
        let r = try await client.request(.POST, "/images/load", body: saved.body, contentType: "application/x-tar", timeout: .seconds(300))
        guard r.status == 200, !r.text.contains("\"error") else {
            throw StartupError("loading \(image) into \(engine) failed: HTTP \(r.status): \(r.text.prefix(300)): \(hint)")
        }
    }

    /// Starts a source container that writes state, commits it while running (paused for the
    /// commit, as `docker commit` does) and keeps the image as the clone source.
    func makeSnapshot(stop: StopFlag) async throws {
        let source = try await createContainer(name: "edgemeter-\(runTag)-snapsrc", image: image,
                                               cmd: ["/bin/sh", "-c", "echo cloned-state > /edgemeter-state; " + Workload.script(for: .marker(ReadyCheck.defaultMarker))],
                                               network: "none")
        sourceContainer = source
        try await expect(client.request(.POST, "/containers/\(source)/start"), [204, 304], "starting the snapshot source")
        let deadline = ContinuousClock.now + .seconds(30)
        try await poll("snapshot source running", until: deadline, stop: stop) { try await self.state(source).running }
        let repo = "edgemeter-snap-\(runTag)"
        let t0 = ContinuousClock.now
        let r = try await client.request(.POST, "/commit?container=\(source)&repo=\(repo)&tag=latest&pause=true&changes=\(queryEscape("LABEL edgemeter.run=\(runTag)"))",
                                           json: [String: Any]())  // podman's API rejects a commit without a JSON body ("Decode(): EOF")
        commitMilliseconds = Double((ContinuousClock.now - t0).nanoseconds) / 1e6
        guard r.status == 201 else { throw StartupError("docker commit of \(source) failed: HTTP \(r.status): \(r.errorMessage)") }
        snapshotImage = "\(repo):latest"
    }

    public func create(index: Int, ready: ReadyCheck) async throws -> StartupInstance {
        let networked: Bool
        switch ready {
        case .tcp, .http, .icmp: networked = true
        case .exit, .marker: networked = false
        }
        let cmd = command ?? (ready == .exit ? ["/bin/true"] : ["/bin/sh", "-c", Workload.script(for: ready)])
        let name = "edgemeter-\(runTag)-\(index + 1)"
        let id = try await createContainer(name: name, image: snapshotImage ?? image, cmd: cmd, network: networked ? "bridge" : "none")
        return DockerInstance(backend: self, id: id, name: name)
    }

    public func createContainer(name: String, image: String, cmd: [String], network: String) async throws -> String {
        var host: [String: Any] = ["NetworkMode": network]
        if engine == "podman" {
            // podman asks the runtime for RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 4194304 by default;
            // a process may not raise its hard limits, so with lower ones (20000 / 32768 for the
            // podman service here) every start fails with EPERM. Ask for small limits that fit under
            // any host's (nofile 1024 as in `runc spec`; nproc 4096), capped by this process's own.
            func limit(_ name: String, _ resource: __rlimit_resource, _ wanted: UInt) -> [String: Any] {
                var rl = rlimit()
                getrlimit(Int32(resource.rawValue), &rl)
                let v = Int(min(wanted, rl.rlim_max))
                return ["Name": name, "Soft": v, "Hard": v]
            }
            host["Ulimits"] = [limit("nofile", RLIMIT_NOFILE, 1024), limit("nproc", __RLIMIT_NPROC, 4096)]
        }
        let body: [String: Any] = [
            "Image": image,
            "Cmd": cmd,
            "Labels": ["edgemeter": "startup", "edgemeter.run": runTag],
            "HostConfig": host,
            "AttachStdout": false,
            "Tty": false,
        ]
        let r = try await client.request(.POST, "/containers/create?name=\(name)", json: body)
        guard r.status == 201, let obj = r.json as? [String: Any], let id = obj["Id"] as? String else {
            if r.status == 404 { throw StartupError("image \(image) not found: run `edgemeter image build`") }
            throw StartupError("creating container \(name): HTTP \(r.status): \(r.errorMessage)")
        }
        lock.withLock { created.append(id) }
        return id
    }

    public struct ContainerState {
        public var running: Bool
        public var status: String
        public var exitCode: Int
        public var ip: String
    }

    public func state(_ id: String) async throws -> ContainerState {
        let r = try await client.request(.GET, "/containers/\(id)/json")
        guard r.status == 200, let obj = r.json as? [String: Any], let st = obj["State"] as? [String: Any] else {
            throw StartupError("inspecting container \(id.prefix(12)): HTTP \(r.status): \(r.errorMessage)")
        }
        let status = st["Status"] as? String ?? ""
        let ip = ((obj["NetworkSettings"] as? [String: Any])?["IPAddress"] as? String) ?? ""
        return ContainerState(running: status == "running" || status == "exited", status: status,
                              exitCode: st["ExitCode"] as? Int ?? -1, ip: ip)
    }

    func expect(_ r: DockerAPIClient.Response, _ codes: [Int], _ what: String) throws {
        guard codes.contains(r.status) else { throw StartupError("\(what): HTTP \(r.status): \(r.errorMessage)") }
    }

    func forget(_ id: String) {
        lock.withLock { created.removeAll { $0 == id } }
    }

    func engineLabels(for id: String) async -> [String: String] {
        // The destroy event follows DELETE closely; wait for it up to 500 ms.
        let deadline = ContinuousClock.now + .milliseconds(500)
        while events.actions(for: id)["destroy"] == nil && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let a = events.actions(for: id)
        var l: [String: String] = ["engine_events": events.sequence(for: id).joined(separator: ",")]
        func span(_ from: String, _ to: String, _ key: String) {
            if let x = a[from], let y = a[to] { l[key] = String(format: "%.3f", Double(y - x) / 1e6) }
        }
        span("create", "start", "engine_create_to_start_ms")
        span("start", "die", "engine_start_to_die_ms")
        span("die", "destroy", "engine_die_to_destroy_ms")
        return l
    }

    public func cleanup() async {
        eventStream?.close()
        eventStream = nil
        let ids: [String] = lock.withLock { let ids = created; created = []; return ids }
        for id in ids { _ = try? await client.request(.DELETE, "/containers/\(id)?force=1", timeout: .seconds(30)) }
        if let snap = snapshotImage {
            _ = try? await client.request(.DELETE, "/images/\(queryEscape(snap))?force=1", timeout: .seconds(30))
            snapshotImage = nil
        }
        // Anything else labelled with this run (a create that answered after a timeout, say).
        _ = await Self.removeLabelled(client: client, label: "edgemeter.run=\(runTag)")
    }

    /// Force-removes every container carrying `label` (`edgemeter` for all leftovers) and, with
    /// `images`, the `edgemeter-snap-*` images. Returns what was removed.
    public static func removeLabelled(client: DockerAPIClient, label: String, images: Bool = false) async -> [String] {
        var removed: [String] = []
        let filters = queryEscape("{\"label\":[\"\(label)\"]}")
        if let r = try? await client.request(.GET, "/containers/json?all=1&filters=\(filters)"), let list = r.json as? [[String: Any]] {
            for c in list {
                guard let id = c["Id"] as? String else { continue }
                let name = ((c["Names"] as? [String])?.first ?? id).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
                if let d = try? await client.request(.DELETE, "/containers/\(id)?force=1"), d.status == 204 || d.status == 404 {
                    removed.append("container \(name)")
                }
            }
        }
        if images, let r = try? await client.request(.GET, "/images/json"), let list = r.json as? [[String: Any]] {
            for img in list {
                for tag in img["RepoTags"] as? [String] ?? [] where tag.hasPrefix("edgemeter-snap-") {
                    if let d = try? await client.request(.DELETE, "/images/\(queryEscape(tag))?force=1"), d.status == 200 {
                        removed.append("image \(tag)")
                    }
                }
            }
        }
        return removed
    }
}

final class DockerInstance: StartupInstance, @unchecked Sendable {
    let backend: DockerBackend
    let id: String
    let name: String
    private let logLines = LineBuffer()
    private var extra: [String: String] = [:]
    /// The bridge address the inspect that ended `running` reported ("" when it had none).
    private var runningAddress = ""
    var labels: [String: String] { extra }

    init(backend: DockerBackend, id: String, name: String) {
        self.backend = backend
        self.id = id
        self.name = name
    }

    var client: DockerAPIClient { backend.client }

    func start() async throws {
        try backend.expect(await client.request(.POST, "/containers/\(id)/start"), [204, 304], "starting \(name)")
    }

    func waitRunning(until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        try await poll("\(name) running", until: deadline, stop: stop) {
            let s = try await self.backend.state(self.id)
            self.runningAddress = s.ip
            return s.running
        }
    }

    func waitReady(_ check: ReadyCheck, until deadline: ContinuousClock.Instant, stop: StopFlag) async throws {
        switch check {
        case .exit:
            // POST /wait answers when the container exits; polled with the stop flag so Ctrl-C ends it.
            let body = LineBuffer()
            let done = Flag()
            let wait = try await client.open(.POST, "/containers/\(id)/wait") { chunk in body.feedRaw(chunk) }
            wait.finished.whenComplete { _ in done.set() }
            defer { wait.close() }
            try await poll("\(name) to exit", until: deadline, stop: stop, interval: .milliseconds(1)) { done.isSet }
            let text = body.allText
            guard wait.status == 200, let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let code = obj["StatusCode"] as? Int else {
                throw StartupError("waiting for \(name) to exit: HTTP \(wait.status): \(text)")
            }
            guard code == 0 else { throw StartupError.workloadExited(status: code) }
        case .marker(let marker):
            // Follow stdout/stderr from the start: the marker may already be in the log. podman
            // sends the response head only with the first log line, so the stream is opened in a
            // task and the wait below (which polls the stop flag) does not depend on it.
            let lines = logLines
            let client = self.client, id = self.id
            let openError = ErrorBox()
            let opening = Task {
                do {
                    return try await client.open(.GET, "/containers/\(id)/logs?follow=1&stdout=1&stderr=1") { chunk in lines.feedMultiplexed(chunk) }
                } catch {
                    openError.set(error)
                    throw error
                }
            }
            defer { Task { (try? await opening.value)?.close() } }
            try await poll("marker \"\(marker)\" in the log of \(name)", until: deadline, stop: stop, interval: .milliseconds(1)) {
                if lines.contains(marker) { return true }
                if let e = openError.value { throw e }
                return false
            }
        case .tcp(let port):
            try await ReadyProbes.tcp(host: try await address(deadline, stop), port: port, banner: false, until: deadline, stop: stop)
        case .http(let port, let path):
            try await ReadyProbes.http(host: try await address(deadline, stop), port: port, path: path, until: deadline, stop: stop)
        case .icmp:
            try await ReadyProbes.icmp(host: try await address(deadline, stop), until: deadline, stop: stop)
        }
    }

    /// The container's address on the default bridge (a network this run's container joined): the
    /// one the `running` poll already read. Only when that inspect had none (a container that had
    /// already exited, say) does `ready` inspect again, and then that wait is rightly part of it.
    func address(_ deadline: ContinuousClock.Instant, _ stop: StopFlag) async throws -> String {
        var ip = runningAddress
        if !ip.isEmpty {
            extra["address"] = ip
            return ip
        }
        try await poll("an address for \(name)", until: deadline, stop: stop) {
            ip = try await self.backend.state(self.id).ip
            return !ip.isEmpty
        }
        extra["address"] = ip
        return ip
    }

    func stop() async throws {
        try backend.expect(await client.request(.POST, "/containers/\(id)/stop?t=2", timeout: .seconds(30)), [204, 304], "stopping \(name)")
    }

    func remove() async throws {
        try backend.expect(await client.request(.DELETE, "/containers/\(id)?force=1", timeout: .seconds(30)), [204, 404], "removing \(name)")
        backend.forget(id)
        extra.merge(await backend.engineLabels(for: id)) { _, new in new }
    }
}

/// Engine events by container: action → `timeNano`.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [UInt8] = []
    private var byID: [String: [(String, Int64)]] = [:]

    func feed(_ chunk: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        pending += chunk
        while let nl = pending.firstIndex(of: 10) {
            let line = Array(pending[..<nl])
            pending.removeFirst(nl + 1)
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let action = obj["Action"] as? String ?? obj["status"] as? String,
                  let id = (obj["Actor"] as? [String: Any])?["ID"] as? String ?? obj["id"] as? String else { continue }
            let t = (obj["timeNano"] as? NSNumber)?.int64Value ?? 0
            byID[id, default: []].append((action, t))
        }
    }

    func actions(for id: String) -> [String: Int64] {
        lock.lock(); defer { lock.unlock() }
        var d: [String: Int64] = [:]
        for (a, t) in byID[id] ?? [] where d[a] == nil { d[a] = t }
        return d
    }

    func sequence(for id: String) -> [String] {
        lock.lock(); defer { lock.unlock() }
        return (byID[id] ?? []).map(\.0)
    }
}

/// An error set from a task and polled from async code.
final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    func set(_ e: Error) { lock.withLock { stored = e } }
    var value: Error? { lock.withLock { stored } }
}

/// A flag set from an event-loop callback and polled from async code.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

/// Log text collected from a followed stream, for marker matching.
final class LineBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    private var pending: [UInt8] = []

    /// Docker's multiplexed log format (no TTY): 8-byte header (stream, 0, 0, 0, size big-endian) per frame.
    func feedMultiplexed(_ chunk: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        pending += chunk
        while pending.count >= 8 {
            let size = Int(pending[4]) << 24 | Int(pending[5]) << 16 | Int(pending[6]) << 8 | Int(pending[7])
            guard pending.count >= 8 + size else { break }
            text += String(decoding: pending[8..<(8 + size)], as: UTF8.self)
            pending.removeFirst(8 + size)
        }
    }

    func feedRaw(_ chunk: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        text += String(decoding: chunk, as: UTF8.self)
    }

    var allText: String { lock.withLock { text } }

    /// True once `marker` appeared as a whole line.
    func contains(_ marker: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).contains { $0 == marker }
    }
}
