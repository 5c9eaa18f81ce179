import Foundation

/// RFC 4180 CSV: comma separated, fields quoted when they hold a comma, quote or line break,
/// quotes doubled, `\n` line ends, one header row. pandas' `read_csv` reads it with no options.
public enum CSV {
    public static func escape(_ field: String) -> String {
        if field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return field
    }

    public static func line(_ fields: [String]) -> String {
        fields.map(escape).joined(separator: ",") + "\n"
    }

    /// Parses a whole CSV text into rows of fields. Throws on an unterminated quoted field.
    public static func parse(_ text: String) throws -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var inQuotes = false
        var fieldStarted = false
        var chars = Array(text.unicodeScalars)[...]
        var lineNumber = 1
        while let c = chars.popFirst() {
            if inQuotes {
                if c == "\"" {
                    if chars.first == "\"" { chars.removeFirst(); field.unicodeScalars.append("\"") } else { inQuotes = false }
                } else {
                    if c == "\n" { lineNumber += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where !fieldStarted:
                inQuotes = true
                fieldStarted = true
            case ",":
                row.append(field); field = ""; fieldStarted = false
            case "\r":
                continue
            case "\n":
                row.append(field); field = ""; fieldStarted = false
                rows.append(row); row = []
                lineNumber += 1
            default:
                field.unicodeScalars.append(c)
                fieldStarted = true
            }
        }
        if inQuotes { throw CSVError(line: lineNumber, message: "unterminated quoted field") }
        if fieldStarted || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }

    /// The rows of `text` (the contents of `file`) after its header row, the first of them at line
    /// 2. Throws `damaged(line, message)` on a syntax error, and a `ReportError.badSamples` naming
    /// `file` when the text is empty or its first row is not `header` (`wrongHeader` says what it
    /// then is not, e.g. "not an edgemeter delays header").
    public static func rowsAfterHeader(_ text: String, file: String, header: [String], wrongHeader: String,
                                       damaged: (_ line: Int, _ message: String) -> ReportError) throws -> ArraySlice<[String]> {
        let rows: [[String]]
        do { rows = try parse(text) } catch let e as CSVError { throw damaged(e.line, e.message) }
        guard let head = rows.first else { throw ReportError.badSamples("\(file) is empty: it has no header row") }
        guard head == header else {
            throw ReportError.badSamples("\(file):1: \(wrongHeader); expected: \(header.joined(separator: ","))")
        }
        return rows.dropFirst()
    }
}

public struct CSVError: Error, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// Number formatting shared by every renderer, so golden files are stable: fixed decimals, no
/// locale, no exponent, empty for "no value".
public enum Format {
    public static func fixed(_ v: Double?, _ decimals: Int) -> String {
        guard let v, v.isFinite else { return "" }
        return String(format: "%.\(decimals)f", v)
    }

    nonisolated(unsafe) private static let isoFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()
    private static let isoLock = NSLock()

    /// `2026-11-29T01:40:00.123456Z`: UTC, microseconds.
    public static func timestamp(_ d: Date) -> String {
        let t = d.timeIntervalSince1970
        let secs = t.rounded(.down)
        var micros = Int(((t - secs) * 1e6).rounded())
        var whole = secs
        if micros >= 1_000_000 { micros -= 1_000_000; whole += 1 }
        var tmv = time_t(whole)
        var tmStruct = tm()
        gmtime_r(&tmv, &tmStruct)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                      Int(tmStruct.tm_year) + 1900, Int(tmStruct.tm_mon) + 1, Int(tmStruct.tm_mday),
                      Int(tmStruct.tm_hour), Int(tmStruct.tm_min), Int(tmStruct.tm_sec), micros)
    }

    public static func parseTimestamp(_ s: String) -> Date? {
        isoLock.lock(); defer { isoLock.unlock() }
        if let d = isoFormatter.date(from: s) {
            // ISO8601DateFormatter keeps milliseconds only; restore the microseconds written.
            if let dot = s.firstIndex(of: "."), let z = s.lastIndex(of: "Z"), dot < z {
                let frac = s[s.index(after: dot)..<z]
                if let f = Double("0." + frac) {
                    return Date(timeIntervalSince1970: d.timeIntervalSince1970.rounded(.down) + f)
                }
            }
            return d
        }
        return nil
    }

    /// `a=1;b=2`, keys sorted, so the column is stable and splittable.
    public static func labels(_ labels: [String: String]) -> String {
        labels.keys.sorted().map { "\($0)=\(labels[$0]!)" }.joined(separator: ";")
    }

    public static func parseLabels(_ s: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in s.split(separator: ";") where !part.isEmpty {
            if let eq = part.firstIndex(of: "=") {
                out[String(part[..<eq])] = String(part[part.index(after: eq)...])
            }
        }
        return out
    }
}

/// `samples.csv`: one row per sample, streamed. Column meanings are in reports/README.md.
public enum SampleCSV {
    public static let header = ["run_id", "scenario", "probe", "target", "metric", "phase", "value", "unit",
                                "timestamp", "status", "reason", "labels"]

    public static var headerLine: String { CSV.line(header) }

    public static func row(_ s: Sample) -> String {
        CSV.line([s.runID, s.scenario, s.probe, s.target, s.metric, s.phase, Format.fixed(s.value, 6), s.unit,
                  Format.timestamp(s.timestamp), s.status.rawValue, s.reason.replacingOccurrences(of: "\n", with: " "),
                  Format.labels(s.labels)])
    }

    /// Reads samples back (for `edgemeter report`). Errors name the line and what to do.
    public static func parse(_ text: String, file: String = "samples.csv") throws -> [Sample] {
        let rows = try CSV.rowsAfterHeader(text, file: file, header: header, wrongHeader: "header is not an edgemeter samples header") {
            .badSamples("\(file):\($0): \($1); the file is damaged, re-run the measurement or fix that line")
        }
        var out: [Sample] = []
        for (i, r) in rows.enumerated() {
            let line = i + 2
            if r.count == 1 && r[0].isEmpty { continue }
            guard r.count == header.count else {
                // A run killed mid-write can leave a partial last line; keep everything before it.
                if i == rows.count - 1 { break }
                throw ReportError.badSamples("\(file):\(line): expected \(header.count) fields, got \(r.count)")
            }
            guard let status = SampleStatus(rawValue: r[9]) else {
                throw ReportError.badSamples("\(file):\(line): unknown status \"\(r[9])\"; expected one of: \(SampleStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var value: Double?
            if !r[6].isEmpty {
                guard let v = Double(r[6]) else {
                    throw ReportError.badSamples("\(file):\(line): value \"\(r[6])\" is not a number")
                }
                value = v
            }
            guard let ts = Format.parseTimestamp(r[8]) else {
                throw ReportError.badSamples("\(file):\(line): timestamp \"\(r[8])\" is not ISO 8601 UTC")
            }
            out.append(Sample(runID: r[0], scenario: r[1], probe: r[2], target: r[3], metric: r[4], phase: r[5],
                              value: value, unit: r[7], timestamp: ts, status: status, reason: r[10],
                              labels: Format.parseLabels(r[11])))
        }
        return out
    }
}

public enum ReportError: Error, CustomStringConvertible {
    case badSamples(String)
    public var description: String {
        switch self {
        case .badSamples(let m): return m
        }
    }
}
