import Foundation

/// The four binary operations, each served by its own operation service.
public enum CalcOperation: String, CaseIterable, Sendable, Codable {
    case sum, sub, mul, div

    public var symbol: Character {
        switch self {
        case .sum: return "+"
        case .sub: return "-"
        case .mul: return "*"
        case .div: return "/"
        }
    }

    /// The lab's default port for this operation service (front end 50000).
    public var defaultPort: Int {
        switch self {
        case .sum: return 50001
        case .sub: return 50002
        case .mul: return 50003
        case .div: return 50004
        }
    }

    /// Environment variable that may hold this service's `host:port`.
    public var environmentVariable: String { "EDGEMETER_CALC_\(rawValue.uppercased())" }

    /// Applies the operation locally (the operation services and the local reference evaluator use
    /// this; the front end never does: it calls the service).
    public func apply(_ a: Double, _ b: Double) throws -> Double {
        switch self {
        case .sum: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div:
            if b == 0 { throw CalcEvaluationError.divisionByZero(a: a) }
            return a / b
        }
    }
}

/// An arithmetic expression tree. Unary minus is a node of its own and is applied by the front end
/// itself; every `binary` node costs exactly one call to the matching operation service.
public indirect enum CalcExpression: Equatable, Sendable {
    case number(Double)
    case negate(CalcExpression)
    case binary(CalcOperation, CalcExpression, CalcExpression)

    /// The operations in the order the front end calls them (left operand, right operand, then the
    /// node itself): the order of the `Server-Timing` entries and of the calc probe's hop phases.
    public var operations: [CalcOperation] {
        switch self {
        case .number: return []
        case .negate(let e): return e.operations
        case .binary(let op, let l, let r): return l.operations + r.operations + [op]
        }
    }

    /// Evaluates in process, with the same order and rules as the front end (for checking answers).
    public func evaluateLocally() throws -> Double {
        switch self {
        case .number(let v): return v
        case .negate(let e): return -(try e.evaluateLocally())
        case .binary(let op, let l, let r):
            let a = try l.evaluateLocally()
            let b = try r.evaluateLocally()
            let v = try op.apply(a, b)
            guard v.isFinite else { throw CalcEvaluationError.notFinite(op: op, a: a, b: b) }
            return v
        }
    }
}

/// Evaluation failures that are the expression's fault (HTTP 422 at the front end).
public enum CalcEvaluationError: Error, Equatable, CustomStringConvertible {
    case divisionByZero(a: Double)
    case notFinite(op: CalcOperation, a: Double, b: Double)

    public var description: String {
        switch self {
        case .divisionByZero(let a):
            return "division by zero: \(CalcNumber.format(a)) / 0 has no value; change the divisor"
        case .notFinite(let op, let a, let b):
            return "\(op.rawValue)(\(CalcNumber.format(a)), \(CalcNumber.format(b))) overflows a 64-bit float; use smaller numbers"
        }
    }
}

/// A malformed expression. `position` is 1-based, counted in characters of the expression as sent.
public struct CalcParseError: Error, Equatable, CustomStringConvertible {
    public var position: Int
    public var message: String
    public init(position: Int, message: String) { (self.position, self.message) = (position, message) }
    public var description: String { "malformed expression at position \(position): \(message)" }
}

/// Number formatting shared by the services: integral values without a fraction (`22`, not `22.0`),
/// others in Swift's shortest round-trip form, so a value survives the text hop exactly.
public enum CalcNumber {
    public static func format(_ v: Double) -> String {
        if v.isFinite, v == v.rounded(), abs(v) < 1e15 {
            return String(Int64(v))
        }
        return "\(v)"
    }
}

/// Recursive-descent parser for `+ - * /`, parentheses, unary minus/plus and decimals (`1.5`, `.5`,
/// `2.`), with the usual precedence and left associativity. Whitespace is ignored.
///
/// Grammar: `expr := term (('+'|'-') term)*`, `term := factor (('*'|'/') factor)*`,
/// `factor := ('-'|'+') factor | number | '(' expr ')'`.
public struct CalcParser {
    /// Nesting deeper than this (parentheses and unary signs) is rejected instead of exhausting the stack.
    public static let maxDepth = 256

    private let chars: [Character]
    private var index = 0
    private var depth = 0

    private init(_ text: String) { chars = Array(text) }

    public static func parse(_ text: String) throws -> CalcExpression {
        var p = CalcParser(text)
        p.skipSpaces()
        guard p.index < p.chars.count else {
            throw CalcParseError(position: 1, message: "the expression is empty; send one such as (5+6)*2")
        }
        let e = try p.expression()
        p.skipSpaces()
        if p.index < p.chars.count {
            let c = p.chars[p.index]
            if c == ")" {
                throw CalcParseError(position: p.index + 1, message: "')' has no matching '('")
            }
            throw CalcParseError(position: p.index + 1, message: "unexpected \(Self.quote(c)) after a complete expression; expected an operator + - * /")
        }
        return e
    }

    static func quote(_ c: Character) -> String {
        c.isASCII && !c.isWhitespace && c.asciiValue.map({ $0 >= 0x20 && $0 < 0x7f }) == true
            ? "'\(c)'" : "character U+\(String(c.unicodeScalars.first!.value, radix: 16, uppercase: true))"
    }

    private mutating func skipSpaces() {
        while index < chars.count, chars[index].isWhitespace { index += 1 }
    }

    /// Binary operators by precedence, loosest first (left-associative within a level).
    private static let levels: [[Character: CalcOperation]] = [["+": .sum, "-": .sub], ["*": .mul, "/": .div]]

    private mutating func expression() throws -> CalcExpression { try binary(level: 0) }

    /// operand (op operand)* for the operators of `level`; the operands are the next level's, or factors.
    private mutating func binary(level: Int) throws -> CalcExpression {
        guard level < Self.levels.count else { return try factor() }
        var lhs = try binary(level: level + 1)
        while true {
            skipSpaces()
            guard index < chars.count, let op = Self.levels[level][chars[index]] else { return lhs }
            index += 1
            let rhs = try binary(level: level + 1)
            lhs = .binary(op, lhs, rhs)
        }
    }

    private mutating func factor() throws -> CalcExpression {
        skipSpaces()
        guard index < chars.count else {
            throw CalcParseError(position: index + 1, message: "the expression ends where a number or '(' is expected")
        }
        let c = chars[index]
        if c == "-" || c == "+" {
            let start = index
            index += 1
            try enter(at: start)
            defer { depth -= 1 }
            let inner = try factor()
            return c == "-" ? .negate(inner) : inner
        }
        if c == "(" {
            let open = index
            index += 1
            try enter(at: open)
            defer { depth -= 1 }
            skipSpaces()
            if index < chars.count, chars[index] == ")" {
                throw CalcParseError(position: index + 1, message: "empty parentheses: put an expression between '(' and ')'")
            }
            let inner = try expression()
            skipSpaces()
            guard index < chars.count else {
                throw CalcParseError(position: index + 1, message: "the '(' at position \(open + 1) is never closed; add ')'")
            }
            guard chars[index] == ")" else {
                throw CalcParseError(position: index + 1, message: "unexpected \(Self.quote(chars[index])); expected ')' to close the '(' at position \(open + 1) or an operator")
            }
            index += 1
            return inner
        }
        if c.isASCII, c.isNumber || c == "." {
            return .number(try number())
        }
        if c == ")" {
            throw CalcParseError(position: index + 1, message: "unexpected ')' where a number or '(' is expected")
        }
        if c == "*" || c == "/" {
            throw CalcParseError(position: index + 1, message: "operator '\(c)' has no left operand; expected a number or '('")
        }
        throw CalcParseError(position: index + 1, message: "unexpected \(Self.quote(c)); expected a number or '('")
    }

    private mutating func enter(at position: Int) throws {
        depth += 1
        if depth > Self.maxDepth {
            throw CalcParseError(position: position + 1, message: "nesting deeper than \(Self.maxDepth) levels; simplify the expression")
        }
    }

    private mutating func number() throws -> Double {
        let start = index
        var sawDigit = false
        var sawDot = false
        while index < chars.count {
            let c = chars[index]
            if c.isASCII, c.isNumber {
                sawDigit = true
            } else if c == "." {
                if sawDot {
                    throw CalcParseError(position: index + 1, message: "a second '.' in the number starting at position \(start + 1)")
                }
                sawDot = true
            } else {
                break
            }
            index += 1
        }
        guard sawDigit else {
            throw CalcParseError(position: start + 1, message: "'.' without digits; write a number such as 0.5")
        }
        let text = String(chars[start..<index])
        guard let v = Double(text), v.isFinite else {
            throw CalcParseError(position: start + 1, message: "the number \(text.prefix(20))… is too large for a 64-bit float")
        }
        return v
    }
}
