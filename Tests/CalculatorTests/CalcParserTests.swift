import XCTest
@testable import Calculator

final class CalcParserTests: XCTestCase {
    func value(_ s: String) throws -> Double { try CalcParser.parse(s).evaluateLocally() }

    func testPrecedenceAssociativityAndParentheses() throws {
        XCTAssertEqual(try value("(5+6)*2"), 22)
        XCTAssertEqual(try value("5+6*2"), 17)
        XCTAssertEqual(try value("10-4-3"), 3, "left associative")
        XCTAssertEqual(try value("100/10/5"), 2, "left associative")
        XCTAssertEqual(try value(" 2 * ( 3 + 4 ) - 1 "), 13)
        XCTAssertEqual(try value("((((7))))"), 7)
    }

    func testDecimalsAndUnaryMinus() throws {
        XCTAssertEqual(try value("1.5*2"), 3)
        XCTAssertEqual(try value(".5+2."), 2.5)
        XCTAssertEqual(try value("-3+5"), 2)
        XCTAssertEqual(try value("-(2+3)*2"), -10)
        XCTAssertEqual(try value("4*-2"), -8)
        XCTAssertEqual(try value("--4"), 4)
        XCTAssertEqual(try value("+4"), 4)
        XCTAssertEqual(try value("0.1+0.2"), 0.1 + 0.2)
    }

    func testCallsOneOperationServicePerBinaryOperationInOrder() throws {
        XCTAssertEqual(try CalcParser.parse("(5+6)*2").operations, [.sum, .mul])
        XCTAssertEqual(try CalcParser.parse("8/2-3*-1").operations, [.div, .mul, .sub])
        XCTAssertEqual(try CalcParser.parse("-7").operations, [], "unary minus is applied by the front end")
        XCTAssertEqual(try CalcParser.parse("1+2").operations, [.sum])
    }

    func testEveryErrorNamesItsPosition() {
        let cases: [(String, Int, String)] = [
            ("", 1, "empty"),
            ("   ", 1, "empty"),
            ("5+", 3, "ends where a number or '(' is expected"),
            ("(5+6", 5, "'(' at position 1 is never closed"),
            ("(5+6 2", 6, "expected ')' to close the '(' at position 1"),
            ("5+6)", 4, "')' has no matching '('"),
            ("5 6", 3, "after a complete expression"),
            ("5+x", 3, "unexpected 'x'"),
            ("*5", 1, "has no left operand"),
            ("5+)", 3, "unexpected ')'"),
            ("()", 2, "empty parentheses"),
            ("1.2.3", 4, "a second '.'"),
            (".", 1, "'.' without digits"),
            ("2+é", 3, "U+E9"),
            (String(repeating: "(", count: 300) + "1" + String(repeating: ")", count: 300), 257, "nesting deeper than 256"),
            (String(repeating: "9", count: 400), 1, "too large"),
        ]
        for (expr, position, text) in cases {
            XCTAssertThrowsError(try CalcParser.parse(expr), expr) { error in
                guard let e = error as? CalcParseError else { return XCTFail("\(expr): \(error)") }
                XCTAssertEqual(e.position, position, "\(expr): \(e)")
                XCTAssertTrue(e.description.contains(text), "\(expr): \(e)")
                XCTAssertTrue(e.description.contains("position \(position)"), "\(expr): \(e)")
            }
        }
    }

    func testEvaluationErrors() {
        XCTAssertThrowsError(try value("1/(2-2)")) { e in
            XCTAssertEqual(e as? CalcEvaluationError, .divisionByZero(a: 1))
            XCTAssertTrue("\(e)".contains("division by zero"))
        }
        XCTAssertThrowsError(try value("1\(String(repeating: "0", count: 300))*1\(String(repeating: "0", count: 300))"))
    }

    func testNumberFormatting() {
        XCTAssertEqual(CalcNumber.format(22), "22")
        XCTAssertEqual(CalcNumber.format(-3), "-3")
        XCTAssertEqual(CalcNumber.format(2.5), "2.5")
        XCTAssertEqual(Double(CalcNumber.format(0.1 + 0.2)), 0.1 + 0.2, "round trips exactly")
        XCTAssertEqual(ServiceEndpoint(parsing: "http://10.0.0.2:50001/"), ServiceEndpoint(host: "10.0.0.2", port: 50001))
        XCTAssertNil(ServiceEndpoint(parsing: "10.0.0.2"))
    }
}
