import EdgeMeterCore
import Foundation

/// Docker through the Engine API (never the CLI). Phases, timed on the client with a monotonic clock:
/// - create: `POST /containers/create` until it answers 201;
/// - start: `POST /containers/ID/start` until it answers 204 (the runtime started the process);
/// - running: polling `GET /containers/ID/json` (5 ms) until the state is running or already exited;
/// - ready: the runner's check on what the instance exposes (exit: `POST /containers/ID/wait`
///   answers status 0, or the inspect that ended `running` already saw it exited; marker: the line
///   appears on the followed log stream; tcp/http/icmp: to the container's bridge address, taken
///   from the inspect that ended `running`, so `ready` holds no Engine API call of its own);
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
    public var snapshotStep: SnapshotStep? {
        commitMilliseconds.map { SnapshotStep(phase: "commit", what: "\(engine) commit (paused) of a running container", milliseconds: $0) }
    }
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
    public static let podmanSocket = DockerEndpoint.podmanSocket
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
        try await client.startContainer(source)
        try await poll("snapshot source running", until: .after(.seconds(30)), stop: stop) { try await self.client.inspectContainer(source).hasStarted }
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

    /// Creates a container labelled with this run (`edgemeter.run`), so cleanup finds it.
    public func createContainer(name: String, image: String, cmd: [String], network: String) async throws -> String {
        let spec = ContainerSpec(name: name, image: image, command: cmd, network: network,
                                 labels: ["edgemeter": "startup", "edgemeter.run": runTag],
                                 ulimits: engine == "podman" ? ContainerSpec.podmanUlimits() : [])
        let id = try await client.createContainer(spec)
        lock.withLock { created.append(id) }
        return id
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
        for id in ids { try? await client.removeContainer(id) }
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
        await client.removeLabelled(label, images: images)
    }
}

final class DockerInstance: StartupInstance, @unchecked Sendable {
    let backend: DockerBackend
    let id: String
    let name: String
    private let lock = NSLock()
    private let logLines = LineBuffer()
    private var extra: [String: String] = [:]
    /// The inspect that ended `running` (its address, and its exit code when it had already exited).
    private var lastState: ContainerState?
    /// The followed log stream, opened by the first `log()`.
    private var logStream: Task<DockerAPIClient.Stream, Error>?
    private let logError = ErrorBox()
    /// `POST /wait`, opened by the first `workloadState()` while the container still runs.
    private var waitStream: DockerAPIClient.Stream?
    private let exit = ExitBox()
    var labels: [String: String] { lock.withLock { extra } }

    init(backend: DockerBackend, id: String, name: String) {
        self.backend = backend
        self.id = id
        self.name = name
    }

    var client: DockerAPIClient { backend.client }

    func start() async throws {
        try await client.startContainer(id)
    }

    func waitRunning(until deadline: Deadline, stop: StopFlag) async throws {
        try await poll("\(name) running", until: deadline, stop: stop) {
            let s = try await self.client.inspectContainer(self.id)
            self.lock.withLock { self.lastState = s }
            return s.hasStarted
        }
    }

    /// The container's address on the default bridge (a network this run's container joined): the
    /// one the `running` poll already read. Only when that inspect had none (a container that had
    /// already exited, say) does `ready` inspect again, and then that wait is rightly part of it.
    func address(until deadline: Deadline, stop: StopFlag) async throws -> InstanceAddress {
        var ip = lock.withLock { lastState?.address ?? "" }
        if ip.isEmpty {
            try await poll("an address for \(name)", until: deadline, stop: stop) {
                ip = try await self.client.inspectContainer(self.id).address
                return !ip.isEmpty
            }
        }
        lock.withLock { extra["address"] = ip }
        return InstanceAddress(host: ip)
    }

    /// Exited already at the end of `running` (no API call), else what `POST /wait` answers once
    /// the container exits; `.running` until then.
    func workloadState() async throws -> WorkloadState {
        if let s = lock.withLock({ lastState }), s.hasExited { return .exited(status: s.exitCode) }
        if let code = exit.value { return code.map { .exited(status: $0) } ?? .unknown("dockerd's wait for \(name) answered no exit status") }
        if lock.withLock({ waitStream }) == nil {
            let box = exit
            let stream = try await client.waitContainer(id) { code in box.set(code) }
            lock.withLock { waitStream = stream }
        }
        return .running
    }

    /// The container's stdout and stderr so far, from a log stream followed from the start (the
    /// first call opens it; podman sends the response head only with the first line, so it is
    /// opened in a task and this call never waits for it).
    func log() async throws -> String {
        if let e = logError.value { throw e }
        if lock.withLock({ logStream }) == nil {
            let lines = logLines, client = self.client, id = self.id, errors = logError
            let task = Task {
                do {
                    return try await client.open(.GET, "/containers/\(id)/logs?follow=1&stdout=1&stderr=1") { chunk in lines.feedMultiplexed(chunk) }
                } catch {
                    errors.set(error)
                    throw error
                }
            }
            lock.withLock { logStream = task }
        }
        return logLines.allText
    }

    func stop() async throws {
        closeStreams()
        try await client.stopContainer(id, graceSeconds: 2)
    }

    func remove() async throws {
        closeStreams()
        try await client.removeContainer(id)
        backend.forget(id)
        let engine = await backend.engineLabels(for: id)
        lock.withLock { extra.merge(engine) { _, new in new } }
    }

    private func closeStreams() {
        let (logs, wait) = lock.withLock { let l = (logStream, waitStream); logStream = nil; waitStream = nil; return l }
        wait?.close()
        if let logs { Task { (try? await logs.value)?.close() } }
    }
}

/// An exit status delivered once from an event-loop callback (nil inside: the answer had none).
final class ExitBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int??
    func set(_ code: Int?) { lock.withLock { if stored == nil { stored = .some(code) } } }
    var value: Int?? { lock.withLock { stored } }
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
