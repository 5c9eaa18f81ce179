import Foundation
import Hummingbird
import NIOCore
import HTTPTypes
import EdgeMeterCore

/// One downstream call made by the front end while evaluating an expression.
public struct CalcCall: Sendable, Equatable {
    public var operation: CalcOperation
    public var a: Double
    public var b: Double
    public var result: Double
    /// Measured by the front end around the call: from taking a pooled connection (or connecting)
    /// until the reply's last byte; includes the operation service's own processing time.
    public var milliseconds: Double
}

/// The front end: `POST /calculate` with the expression as plain text or `{"expression": "..."}`.
///
/// Answers (JSON bodies, `application/json`):
/// - 200 `{"expression", "result", "calls": [{"service","a","b","result","ms"}], "downstream_ms", "total_ms"}`
///   and a `Server-Timing` header with one entry per downstream call, in call order
///   (`sum;dur=0.412;desc="5+6"`);
/// - 400 malformed expression (`position` names the 1-based character), 413 body over the limit,
///   422 division by zero or overflow, 502 an operation service down or broken (`service` names it),
///   504 an operation service slower than the downstream timeout, 405 wrong method.
struct FrontEnd: Sendable {
    let pools: [CalcOperation: OperationPool]
    let config: CalculatorConfig

    func addRoutes(_ router: Router<BasicRequestContext>) {
        router.add(middleware: MethodGuard(allowed: ["/calculate": [.post], "/healthz": [.get]]))
        router.post("/calculate") { request, _ -> Response in
            await self.calculate(request)
        }
    }

    struct Failure: Error {
        var status: HTTPResponse.Status
        var message: String
        var extra: [(String, String)] = []
    }

    func calculate(_ request: Request) async -> Response {
        let started = ContinuousClock.now
        do {
            if let lengthText = request.headers[.contentLength], let length = Int(lengthText), length > config.maxBodyBytes {
                throw Failure(status: .contentTooLarge, message: "request body is \(length) bytes; the limit is \(config.maxBodyBytes) bytes: send a shorter expression")
            }
            let buffer: ByteBuffer
            do {
                buffer = try await request.body.collect(upTo: config.maxBodyBytes)
            } catch is NIOTooManyBytesError {
                throw Failure(status: .contentTooLarge, message: "request body exceeds the limit of \(config.maxBodyBytes) bytes: send a shorter expression")
            }
            let text = try expressionText(buffer, contentType: request.headers[.contentType])
            let tree: CalcExpression
            do {
                tree = try CalcParser.parse(text)
            } catch let e as CalcParseError {
                throw Failure(status: .badRequest, message: e.description, extra: [("position", String(e.position))])
            }
            var calls: [CalcCall] = []
            calls.reserveCapacity(8)
            let result = try await evaluate(tree, calls: &calls)
            let total = (ContinuousClock.now - started).milliseconds
            return success(expression: text, result: result, calls: calls, totalMs: total)
        } catch let f as Failure {
            return failure(f)
        } catch {
            return failure(Failure(status: .internalServerError, message: "unexpected error: \(error)"))
        }
    }

    func expressionText(_ buffer: ByteBuffer, contentType: String?) throws -> String {
        let raw = String(buffer: buffer)
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let isJSON = contentType?.lowercased().contains("json") == true || trimmed.hasPrefix("{")
        guard isJSON else { return raw }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(raw.utf8))
        } catch {
            throw Failure(status: .badRequest, message: "the body is not valid JSON; send {\"expression\": \"(5+6)*2\"} or the expression as plain text")
        }
        guard let dict = object as? [String: Any], let expr = dict["expression"] as? String else {
            throw Failure(status: .badRequest, message: "the JSON body has no string field \"expression\"; send {\"expression\": \"(5+6)*2\"}")
        }
        return expr
    }

    func evaluate(_ e: CalcExpression, calls: inout [CalcCall]) async throws -> Double {
        switch e {
        case .number(let v):
            return v
        case .negate(let inner):
            return -(try await evaluate(inner, calls: &calls))
        case .binary(let op, let l, let r):
            let a = try await evaluate(l, calls: &calls)
            let b = try await evaluate(r, calls: &calls)
            let v = try await call(op, a, b, calls: &calls)
            return v
        }
    }

    func call(_ op: CalcOperation, _ a: Double, _ b: Double, calls: inout [CalcCall]) async throws -> Double {
        guard let pool = pools[op] else {
            throw Failure(status: .badGateway, message: "no address for the \(op.rawValue) service", extra: [("service", op.rawValue)])
        }
        let path = "/\(op.rawValue)?a=\(Self.queryNumber(a))&b=\(Self.queryNumber(b))"
        let t0 = ContinuousClock.now
        let reply: (status: Int, body: String)
        do {
            reply = try await pool.get(path: path, timeout: .nanoseconds(config.downstreamTimeout.nanosecondsValue))
        } catch DownstreamError.timeout {
            throw Failure(status: .gatewayTimeout,
                          message: "the \(op.rawValue) service at \(pool.endpoint) did not answer within \(Self.format(config.downstreamTimeout)); check its load or raise --downstream-timeout",
                          extra: [("service", op.rawValue)])
        } catch DownstreamError.unavailable(let why) {
            throw Failure(status: .badGateway,
                          message: "the \(op.rawValue) service at \(pool.endpoint) is unavailable (\(why)); start it with `edgemeter serve calculator --role \(op.rawValue)` or point --\(op.rawValue) at it",
                          extra: [("service", op.rawValue)])
        }
        let ms = (ContinuousClock.now - t0).milliseconds
        switch reply.status {
        case 200:
            guard let v = Double(reply.body.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw Failure(status: .badGateway, message: "the \(op.rawValue) service at \(pool.endpoint) answered a non-number: \(reply.body.prefix(80))",
                              extra: [("service", op.rawValue)])
            }
            calls.append(CalcCall(operation: op, a: a, b: b, result: v, milliseconds: ms))
            return v
        case 422:
            throw Failure(status: .unprocessableContent, message: reply.body.trimmingCharacters(in: .whitespacesAndNewlines),
                          extra: [("service", op.rawValue)])
        default:
            throw Failure(status: .badGateway,
                          message: "the \(op.rawValue) service at \(pool.endpoint) answered HTTP \(reply.status): \(reply.body.trimmingCharacters(in: .whitespacesAndNewlines).prefix(120))",
                          extra: [("service", op.rawValue)])
        }
    }

    static func queryNumber(_ v: Double) -> String {
        CalcNumber.format(v).replacingOccurrences(of: "+", with: "%2B")
    }

    static func format(_ d: Duration) -> String {
        let ms = d.milliseconds
        return ms >= 1000 ? String(format: "%g s", ms / 1000) : String(format: "%g ms", ms)
    }

    static func ms(_ v: Double) -> String { String(format: "%.3f", v) }

    func success(expression: String, result: Double, calls: [CalcCall], totalMs: Double) -> Response {
        var json = "{\"expression\":\(TextEscaping.jsonString(expression)),\"result\":\(CalcNumber.format(result)),\"calls\":["
        var timing: [String] = []
        var downstream = 0.0
        for (i, c) in calls.enumerated() {
            if i > 0 { json += "," }
            json += "{\"service\":\"\(c.operation.rawValue)\",\"a\":\(CalcNumber.format(c.a)),\"b\":\(CalcNumber.format(c.b)),\"result\":\(CalcNumber.format(c.result)),\"ms\":\(Self.ms(c.milliseconds))}"
            timing.append("\(c.operation.rawValue);dur=\(Self.ms(c.milliseconds));desc=\"\(CalcNumber.format(c.a)) \(c.operation.symbol) \(CalcNumber.format(c.b))\"")
            downstream += c.milliseconds
        }
        json += "],\"downstream_ms\":\(Self.ms(downstream)),\"total_ms\":\(Self.ms(totalMs))}\n"
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if !timing.isEmpty { headers[HTTPField.Name("Server-Timing")!] = timing.joined(separator: ", ") }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
    }

    func failure(_ f: Failure) -> Response {
        var json = "{\"status\":\(f.status.code),\"error\":\(TextEscaping.jsonString(f.message))"
        for (k, v) in f.extra {
            json += ",\"\(k)\":" + (Int(v) != nil ? v : TextEscaping.jsonString(v))
        }
        json += "}\n"
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: f.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: json)))
    }
}

extension Duration {
    var milliseconds: Double {
        let c = components
        return Double(c.seconds) * 1000 + Double(c.attoseconds / 1_000_000_000) / 1e6
    }
    var nanosecondsValue: Int64 {
        let c = components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}
