import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import EdgeMeterServe
import EdgeMeterCore

/// Which calculator service a process (or one server of `--role all`) plays.
public enum CalculatorRole: String, CaseIterable, Sendable {
    case front, sum, sub, mul, div, all

    public var operation: CalcOperation? { CalcOperation(rawValue: rawValue) }
    public var defaultPort: Int { operation?.defaultPort ?? 50000 }
}

/// Settings of the front end and the operation services.
public struct CalculatorConfig: Sendable {
    /// Where the front end finds each operation service.
    public var endpoints: [CalcOperation: ServiceEndpoint]
    /// Longest wait for one downstream call (connect + request + reply) before the front end answers 504.
    public var downstreamTimeout: Duration = .seconds(2)
    /// Request bodies larger than this get 413.
    public var maxBodyBytes = 4096
    /// Extra processing time an operation service spends per request (0 by default): emulates a
    /// slower service in experiments, and lets tests provoke the front end's 504.
    public var operationDelay: Duration = .zero
    /// Idle keep-alive connections kept per operation service.
    public var maxIdleConnections = 64

    public init(endpoints: [CalcOperation: ServiceEndpoint] = [:]) {
        self.endpoints = endpoints
    }

    /// Endpoints from flags first, then `EDGEMETER_CALC_SUM` ... environment variables, then
    /// `defaultHost` on the lab's default ports 50001-50004.
    public static func endpoints(flags: [CalcOperation: String], environment: [String: String] = ProcessInfo.processInfo.environment,
                                 defaultHost: String = "127.0.0.1") throws -> [CalcOperation: ServiceEndpoint] {
        var out: [CalcOperation: ServiceEndpoint] = [:]
        for op in CalcOperation.allCases {
            if let text = flags[op] {
                guard let e = ServiceEndpoint(parsing: text) else {
                    throw CalculatorSetupError("--\(op.rawValue) \"\(text)\" is not host:port; write it like 127.0.0.1:\(op.defaultPort)")
                }
                out[op] = e
            } else if let text = environment[op.environmentVariable], !text.isEmpty {
                guard let e = ServiceEndpoint(parsing: text) else {
                    throw CalculatorSetupError("\(op.environmentVariable)=\"\(text)\" is not host:port; write it like 127.0.0.1:\(op.defaultPort)")
                }
                out[op] = e
            } else {
                out[op] = ServiceEndpoint(host: defaultHost, port: op.defaultPort)
            }
        }
        return out
    }
}

public struct CalculatorSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Why a service could not listen, as a sentence with the next step (the bind error may come
/// wrapped by the service group, so its errno is also read from the text).
func listenProblem(_ error: Error, role: CalculatorRole, host: String, port: Int) -> String {
    var code = (error as? IOError)?.errnoCode
    if code == nil, let r = "\(error)".range(of: #"errno: (\d+)"#, options: .regularExpression) {
        code = Int32("\(error)"[r].dropFirst("errno: ".count))
    }
    let service = "the \(role.rawValue) service"
    if code == nil, error is SocketAddressError {
        return "\(service) cannot listen on \(host):\(port): \(host) does not resolve to an address; give an address of this machine with --host (127.0.0.1, 0.0.0.0 or one `ip addr` lists)"
    }
    switch code {
    case EADDRINUSE:
        return "\(service) cannot listen on \(host):\(port): port \(port) is already in use (another calculator or program listens there; "
            + "`ss -ltnp 'sport = :\(port)'` shows which); stop it, or pick another port with --port (--port 0 picks free ports)"
    case EADDRNOTAVAIL:
        return "\(service) cannot listen on \(host):\(port): \(host) is not an address of this machine; use 127.0.0.1, 0.0.0.0 or an address `ip addr` lists (--host)"
    case EACCES:
        return "\(service) cannot listen on \(host):\(port): ports below 1024 need root; pick a port from 1024 up with --port"
    default:
        return "\(service) cannot listen on \(host):\(port) (\(code.map { String(cString: strerror($0)) } ?? "\(error)")); check --host, or pick another port with --port"
    }
}

/// One running calculator service (a Hummingbird 2 application on its own port).
public typealias RunningCalculatorService = RunningServer<CalculatorRole>

extension RunningServer where ID == CalculatorRole {
    public var role: CalculatorRole { id }
    public var endpoint: ServiceEndpoint { ServiceEndpoint(host: host, port: port) }
}

/// Starts the calculator services. Every service answers `GET /healthz` with `ok <role>`.
public enum CalculatorServer {
    public static func start(role: CalculatorRole, host: String = "127.0.0.1", port: Int, config: CalculatorConfig,
                             logger: Logger = CalculatorServer.quietLogger) async throws -> RunningCalculatorService {
        precondition(role != .all, "use startAll for --role all")
        let router = Router()
        var pools: [OperationPool] = []
        if let op = role.operation {
            addOperationRoutes(router, op: op, config: config)
        } else {
            var byOp: [CalcOperation: OperationPool] = [:]
            for op in CalcOperation.allCases {
                let endpoint = config.endpoints[op] ?? ServiceEndpoint(host: "127.0.0.1", port: op.defaultPort)
                let pool = OperationPool(endpoint: endpoint, group: MultiThreadedEventLoopGroup.singleton,
                                         maxIdle: config.maxIdleConnections)
                byOp[op] = pool
                pools.append(pool)
            }
            FrontEnd(pools: byOp, config: config).addRoutes(router)
        }
        router.get("/healthz") { _, _ in "ok \(role.rawValue)\n" }

        let started: ServerStart.Started
        do {
            started = try await ServerStart.start(router: router, host: host, port: port,
                                                  serverName: "edgemeter-calculator-\(role.rawValue)", logger: logger)
        } catch let f as ServerStartFailure {
            guard let error = f.underlying else {
                throw CalculatorSetupError("the \(role.rawValue) service stopped before listening on \(host):\(port)")
            }
            throw CalculatorSetupError(listenProblem(error, role: role, host: host, port: port))
        }
        let poolsToClose = pools
        return RunningCalculatorService(id: role, host: host, started: started, onStop: { poolsToClose.forEach { $0.closeAll() } })
    }

    /// `--role all`: the four operation services, then the front end wired to them, in one process.
    /// `frontPort` 0 and `operationPorts` 0 pick free ports (tests); by default the lab's ports.
    public static func startAll(host: String = "127.0.0.1", frontPort: Int = 50000,
                                operationPorts: [CalcOperation: Int] = [:], config: CalculatorConfig = CalculatorConfig(),
                                logger: Logger = CalculatorServer.quietLogger) async throws -> [RunningCalculatorService] {
        var started: [RunningCalculatorService] = []
        var cfg = config
        do {
            for op in CalcOperation.allCases {
                let s = try await start(role: CalculatorRole(rawValue: op.rawValue)!, host: host,
                                        port: operationPorts[op] ?? op.defaultPort, config: config, logger: logger)
                started.append(s)
                // A wildcard listen address is not an address to call: in one process the front
                // end reaches its operation services over loopback.
                let callHost = host == "0.0.0.0" ? "127.0.0.1" : host == "::" || host == "[::]" ? "::1" : host
                cfg.endpoints[op] = ServiceEndpoint(host: callHost, port: s.port)
            }
            let front = try await start(role: .front, host: host, port: frontPort, config: cfg, logger: logger)
            started.insert(front, at: 0)
        } catch {
            for s in started { await s.stop() }
            throw error
        }
        return started
    }

    public static var quietLogger: Logger {
        var l = Logger(label: "edgemeter.calculator")
        l.logLevel = .error
        return l
    }

    static func addOperationRoutes(_ router: Router<BasicRequestContext>, op: CalcOperation, config: CalculatorConfig) {
        router.add(middleware: MethodGuard(allowed: ["/\(op.rawValue)": [.get], "/healthz": [.get]]))
        let delay = config.operationDelay
        router.get("/\(op.rawValue)") { request, _ -> Response in
            let q = request.uri.queryParameters
            guard let aText = q["a"], let bText = q["b"] else {
                return textResponse(.badRequest, "missing operand: call GET /\(op.rawValue)?a=NUMBER&b=NUMBER\n")
            }
            guard let a = Double(String(aText)), let b = Double(String(bText)), a.isFinite, b.isFinite else {
                return textResponse(.badRequest, "operands must be finite numbers, got a=\(aText) b=\(bText)\n")
            }
            if delay > .zero { try await Task.sleep(for: delay) }
            do {
                let v = try op.apply(a, b)
                guard v.isFinite else {
                    return textResponse(.unprocessableContent, CalcEvaluationError.notFinite(op: op, a: a, b: b).description + "\n")
                }
                return textResponse(.ok, CalcNumber.format(v))
            } catch let e as CalcEvaluationError {
                return textResponse(.unprocessableContent, e.description + "\n")
            }
        }
    }

    static func textResponse(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Answers 405 (with `Allow`) when a known path is called with a method it does not serve.
struct MethodGuard<Context: RequestContext>: RouterMiddleware {
    let allowed: [String: [HTTPRequest.Method]]
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let methods = allowed[request.uri.path], !methods.contains(request.method) {
            var headers = HTTPFields()
            headers[.allow] = methods.map(\.rawValue).joined(separator: ", ")
            headers[.contentType] = "application/json"
            let body = "{\"status\":405,\"error\":\(TextEscaping.jsonString("method \(request.method.rawValue) is not allowed on \(request.uri.path); use \(methods.map(\.rawValue).joined(separator: " or "))"))}\n"
            return Response(status: .methodNotAllowed, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
        return try await next(request, context)
    }
}

