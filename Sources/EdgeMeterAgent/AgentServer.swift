import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import EdgeMeterCore
import EdgeMeterServe

/// The agent: its probes running, `/metrics`, `/probe` and `/healthz` served on one port
/// (Hummingbird 2), and the delay pushes when a controller is configured.
public final class Agent: @unchecked Sendable {
    public let config: AgentConfig
    public let metrics = AgentMetrics()
    public let runner: AgentRunner
    public let pusher: DelayPusher?
    public private(set) var port = 0
    private var server: ServerStart.Started?
    let log: @Sendable (String) -> Void

    /// `extraSinks` get every sample too (tests compare them with what /metrics says).
    /// `rounds`: each probe runs that many rounds and ends (`finishRounds`); nil: until `stop`.
    public init(config: AgentConfig, environment: [String: String] = ProcessInfo.processInfo.environment, extraSinks: [SampleSink] = [],
                rounds: Int? = nil, log: @escaping @Sendable (String) -> Void) throws {
        self.config = config
        self.log = log
        var sinks: [SampleSink] = [metrics] + extraSinks
        if let push = config.controller {
            var nodes: [String: String] = [:]
            for p in config.probes { for t in p.targets { if let n = t.node { nodes[t.name] = n } } }
            let window = PushWindow(origin: config.node, nodes: nodes)
            sinks.append(window)
            pusher = try DelayPusher(push: push, window: window, environment: environment, log: log)
        } else {
            pusher = nil
        }
        runner = AgentRunner(config: config, sink: FanOutSink(sinks), rounds: rounds, log: log)
    }

    /// Makes NIO's event loops (the threads the server's sockets are served on) Swift Concurrency's
    /// global executor, for the rest of the process: a `/probe` or `/metrics` request is then
    /// handled on the loop that read it instead of hopping to the cooperative pool and back (a
    /// futex wake and a context switch each way; `perf record` of the agent under /probe load showed
    /// that hopping, not the probe, as most of its CPU). Blocking probe work already runs on
    /// threads of its own. Call once, at the start of `edgemeter agent` only (not in tests that
    /// share a process); false when it could not be installed (the agent then runs as before).
    @discardableResult
    public static func serveAsyncWorkOnEventLoops() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    public var url: String { "http://\(config.listenHost.contains(":") ? "[\(config.listenHost)]" : config.listenHost):\(port)" }

    /// Starts the probes, then the server (`portOverride` replaces the configured port; 0 picks a
    /// free one), then the pushes. Returns once the server listens.
    public func start(host: String? = nil, portOverride: Int? = nil) async throws {
        do { try runner.start(metrics: metrics) } catch {
            runner.shutdown() // the probes started before the one that failed
            throw error
        }
        let router = Self.router(agent: self)
        var logger = Logger(label: "edgemeter.agent")
        logger.logLevel = .warning
        let host = host ?? config.listenHost
        do {
            server = try await ServerStart.start(router: router, host: host, port: portOverride ?? config.listenPort, serverName: "edgemeter-agent", logger: logger)
        } catch {
            runner.shutdown()
            throw AgentError("cannot listen on \(host):\(portOverride ?? config.listenPort) (\(error)); choose another `listen` in \(config.file) or stop what uses that port")
        }
        port = server!.port
        // With a fixed number of rounds the whole run is one window, posted by `finishRounds`.
        if runner.rounds == nil { pusher?.start() }
    }

    /// With `rounds`: waits until every probe has run its rounds, then posts the whole run as one
    /// window when a controller is configured; the push's outcome (nil without a controller).
    public func finishRounds() async -> Result<String, AgentError>? {
        await runner.waitUntilFinished()
        return await pusher?.pushOnce()
    }

    /// Stops the probes (and pushes) but keeps serving: the series stay as they are.
    public func stopProbes() {
        pusher?.stop()
        runner.shutdown()
    }

    public func stop() async {
        pusher?.stop()
        runner.shutdown()
        if let s = server {
            await s.group.triggerGracefulShutdown()
            _ = try? await s.task.value
        }
    }

    static func text(_ status: HTTPResponse.Status, _ body: String, contentType: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func router(agent: Agent) -> Router<BasicRequestContext> {
        let router = Router()
        let exposition = "text/plain; version=0.0.4; charset=utf-8"
        router.get("/metrics") { _, _ in text(.ok, agent.metrics.exposition(), contentType: exposition) }
        router.get("/healthz") { _, _ in text(.ok, "ok\n", contentType: "text/plain") }
        router.get("/probe") { request, _ in
            let q = request.uri.queryParameters
            let a = await BlackboxProbe.handle(target: q["target"].map(String.init), module: q["module"].map(String.init),
                                               timeoutHeader: request.headers[HTTPField.Name("X-Prometheus-Scrape-Timeout-Seconds")!],
                                               cidrs: agent.config.probeCIDRs, configuredTimeout: agent.config.probeTimeout,
                                               configFile: agent.config.file)
            return text(HTTPResponse.Status(code: a.status), a.body, contentType: a.contentType)
        }
        return router
    }
}
