import Foundation

/// samples.csv read as a stream: bytes in large chunks from a caller-supplied `read` function (the
/// file I/O stays with the caller), rows cut and checked in place, no whole-file `String`, no
/// `Sample` or label dictionary per row. Memory is the chunk buffer (grown only for a row longer
/// than it) whatever the file's size.
///
/// It reads exactly what `SampleCSV.parse` reads and rejects what it rejects, with the same
/// messages (RFC 4180 as `CSV.parse` reads it: fields opened by a quote, quotes doubled inside,
/// `\r` dropped outside quotes; empty lines skipped; a last line with the wrong number of fields,
/// left by a run killed mid-write, dropped). One difference: a damaged row is reported as soon as
/// it is read, so a file with two faults names the first one in the file, where `SampleCSV.parse`
/// named an unterminated quote (which it finds first) before any other fault.
public enum SampleStream {
    /// Bytes asked of `read` at a time.
    public static let defaultChunkBytes = 4 << 20

    /// Reads every data row of a samples.csv, in file order, and hands it to `onRow`.
    ///
    /// - `read` fills the buffer it is given (from the start) and returns the number of bytes
    ///   written, 0 at the end of the file; its errors are passed on.
    /// - The `SampleRow` given to `onRow` points into the buffer: use it inside `onRow` only.
    /// - Returns the number of data rows read. Errors are `ReportError.badSamples` naming
    ///   `file`, the row's line and what to do.
    @discardableResult
    public static func read(file: String = "samples.csv", chunkBytes: Int = defaultChunkBytes,
                            from read: (UnsafeMutableRawBufferPointer) throws -> Int,
                            onRow: (SampleRow) throws -> Void) throws -> Int {
        try SampleStream.read(file: file, chunkBytes: chunkBytes, part: .whole, from: read, onRow: onRow)
    }

    /// Which part of a samples.csv a read covers, for reading one file in parallel parts cut at
    /// line breaks (`SamplesFile.pass`).
    public enum Part: Sendable, Equatable {
        /// The whole file.
        case whole
        /// The file's start, up to a cut just after a line break (the reader stops there): the
        /// header is checked; its end must be a row's end (a short last row, or a quoted field
        /// still open, is an error here).
        case first
        /// The rest of the file, from byte `startOffset` (just after a line break) to its end: no
        /// header. Line numbers in its errors are not the file's: read the whole file again to name
        /// the line (any error in a part should be answered that way).
        case rest(startOffset: Int)
    }

    /// `read` over one `Part` of a file (`read` hands over that part's bytes only).
    @discardableResult
    public static func read(file: String = "samples.csv", chunkBytes: Int = defaultChunkBytes, part: Part,
                            from read: (UnsafeMutableRawBufferPointer) throws -> Int,
                            onRow: (SampleRow) throws -> Void) throws -> Int {
        var scanner = RowScanner(capacity: Swift.max(64, chunkBytes))
        defer { scanner.deallocate() }
        if case .rest(let start) = part { scanner.consumed = start }
        let headerFields = SampleCSV.header.map { Array($0.utf8) }
        // Rows read, the header and empty lines included (1-based line of a row); a later part
        // starts after a header it does not see.
        var rowNumber = { if case .rest = part { return 1 } else { return 0 } }()
        var pending: ReportError?   // a short row: an error unless it is the file's last row
        var dataRows = 0
        var newlines = 0
        var timestamps = TimestampCache()
        func bad(_ line: Int, _ why: String) -> ReportError { .badSamples("\(file):\(line): \(why)") }
        while true {
            switch try scanner.next(read: read) {
            case .end:
                if scanner.inQuotesAtEnd {
                    throw ReportError.badSamples("\(file):\(newlines + scanner.lineBreaksAtEnd + 1): unterminated quoted field; the file is damaged, re-run the measurement or fix that line")
                }
                if rowNumber == 0 { throw ReportError.badSamples("\(file) is empty: it has no header row") }
                if part == .first, let p = pending { throw p }
                return dataRows
            case .row(let lineBreaks):
                newlines += lineBreaks
                rowNumber += 1
                if let p = pending { throw p }
                let row = SampleRow(scanner: scanner, line: rowNumber)
                if rowNumber == 1 {
                    guard scanner.fieldCount == headerFields.count,
                          headerFields.indices.allSatisfy({ row.bytesEqual($0, headerFields[$0]) }) else {
                        throw ReportError.badSamples("\(file):1: header is not an edgemeter samples header; expected: \(SampleCSV.header.joined(separator: ","))")
                    }
                    continue
                }
                if scanner.fieldCount == 1 && scanner.fieldLength(0) == 0 { continue }
                guard scanner.fieldCount == SampleCSV.header.count else {
                    pending = bad(rowNumber, "expected \(SampleCSV.header.count) fields, got \(scanner.fieldCount)")
                    continue
                }
                var r = row
                guard let status = r.parseStatus() else {
                    throw bad(rowNumber, "unknown status \"\(r.string(SampleRow.statusField))\"; expected one of: \(SampleStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                r.status = status
                if scanner.fieldLength(SampleRow.valueField) > 0 {
                    guard let v = r.parseValue() else {
                        throw bad(rowNumber, "value \"\(r.string(SampleRow.valueField))\" is not a number")
                    }
                    r.rawValue = v
                }
                guard let ts = r.parseTimestamp(&timestamps) else {
                    throw bad(rowNumber, "timestamp \"\(r.string(SampleRow.timestampField))\" is not ISO 8601 UTC")
                }
                r.timestampSeconds = ts
                dataRows += 1
                try onRow(r)
            }
        }
    }

    /// Reads samples.csv held in memory (tests, small files), handing at most `readBytes` bytes
    /// to the reader at a time (so tests can put chunk boundaries anywhere).
    @discardableResult
    public static func read(text: String, file: String = "samples.csv", chunkBytes: Int = defaultChunkBytes,
                            readBytes: Int = .max, onRow: (SampleRow) throws -> Void) throws -> Int {
        let bytes = Array(text.utf8)
        var offset = 0
        return try read(file: file, chunkBytes: chunkBytes, from: { buf in
            let n = Swift.min(buf.count, bytes.count - offset, readBytes)
            bytes.withUnsafeBytes { src in
                if n > 0 { buf.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n) }
            }
            offset += n
            return n
        }, onRow: onRow)
    }
}

/// One data row of samples.csv as `SampleStream` hands it over: status, value and timestamp already
/// checked and parsed; every other field read on demand from the bytes. Valid only inside the
/// `onRow` call that received it.
public struct SampleRow {
    public static let runIDField = 0, scenarioField = 1, probeField = 2, targetField = 3, metricField = 4, phaseField = 5
    static let valueField = 6, unitField = 7, timestampField = 8, statusField = 9, reasonField = 10, labelsField = 11

    let base: UnsafeMutablePointer<UInt8>
    let starts: UnsafeMutablePointer<Int>
    let lengths: UnsafeMutablePointer<Int>
    /// 1-based row number in the file (the header is 1), as `SampleCSV.parse` names rows in errors.
    public let line: Int
    public fileprivate(set) var status: SampleStatus = .ok
    /// The value column as written (set for failed samples too; `value` hides those).
    public fileprivate(set) var rawValue: Double?
    /// `timestamp` in seconds since 1970.
    public fileprivate(set) var timestampSeconds: Double = 0
    /// Byte offset of the row's first byte in the file: identifies the row whichever part of the
    /// file it was read in (the report's CDF sampling keys on it).
    public let offset: Int

    fileprivate init(scanner: RowScanner, line: Int) {
        (self.base, self.starts, self.lengths, self.line) = (scanner.buffer, scanner.starts, scanner.lengths, line)
        offset = scanner.rowOffset
    }

    /// `Sample.value`: the value of an `ok` row, nil otherwise.
    public var value: Double? { status == .ok ? rawValue : nil }
    public var timestamp: Date { Date(timeIntervalSince1970: timestampSeconds) }

    /// Field `i` (0 ... 11, in `SampleCSV.header` order) as raw UTF-8 bytes, quotes removed.
    public func bytes(_ i: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base + starts[i], count: lengths[i])
    }

    /// Field `i` as a String (invalid UTF-8 repaired, as `String(decoding:)` does).
    public func string(_ i: Int) -> String { String(decoding: bytes(i), as: UTF8.self) }

    public var scenario: String { string(Self.scenarioField) }
    public var probe: String { string(Self.probeField) }
    public var target: String { string(Self.targetField) }
    public var metric: String { string(Self.metricField) }
    public var phase: String { string(Self.phaseField) }
    public var unit: String { string(Self.unitField) }

    func bytesEqual(_ i: Int, _ other: [UInt8]) -> Bool {
        lengths[i] == other.count && other.withUnsafeBufferPointer { memcmp(base + starts[i], $0.baseAddress!, other.count) == 0 }
    }

    public func bytesEqual(_ i: Int, _ s: StaticString) -> Bool {
        lengths[i] == s.utf8CodeUnitCount && memcmp(base + starts[i], s.utf8Start, s.utf8CodeUnitCount) == 0
    }

    /// Whether the labels field holds `key=` (as a whole key).
    public func hasLabel(_ key: String) -> Bool {
        lengths[Self.labelsField] > key.utf8.count && label(key) != nil
    }

    /// Whether the labels field holds `key=` at a label's start (`key` ends with `=`): no String,
    /// a `memchr` for its first byte then a `memcmp` (the per-row check for the `round` label).
    public func hasLabelPrefix(_ key: StaticString) -> Bool {
        let n = lengths[Self.labelsField]
        let k = key.utf8CodeUnitCount
        guard n > k else { return false }
        let field = base + starts[Self.labelsField]
        let first = Int32(key.utf8Start[0])
        var from = 0
        while from + k <= n, let hit = memchr(field + from, first, n - from - k + 1) {
            let at = field.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if (at == 0 || field[at - 1] == UInt8(ascii: ";")) && memcmp(field + at, key.utf8Start, k) == 0 { return true }
            from = at + 1
        }
        return false
    }

    /// The value of label `key` (`labels` is `k=v;k=v`; the last `key=` wins, as `Format.parseLabels`).
    public func label(_ key: String) -> String? {
        let field = bytes(Self.labelsField)
        let k = Array(key.utf8)
        var found: String?
        var partStart = 0
        var i = 0
        while i <= field.count {
            if i == field.count || field[i] == UInt8(ascii: ";") {
                let part = UnsafeBufferPointer(rebasing: field[partStart..<i])
                if let eq = part.firstIndex(of: UInt8(ascii: "=")), eq == k.count, k.elementsEqual(part[0..<eq]) {
                    found = String(decoding: UnsafeBufferPointer(rebasing: part[(eq + 1)...]), as: UTF8.self)
                }
                partStart = i + 1
            }
            i += 1
        }
        return found
    }

    /// The whole row as a `Sample` (labels parsed): for consumers that need every field.
    public var sample: Sample {
        Sample(runID: string(Self.runIDField), scenario: scenario, probe: probe, target: target, metric: metric, phase: phase,
               value: rawValue, unit: unit, timestamp: timestamp, status: status,
               reason: string(Self.reasonField), labels: Format.parseLabels(string(Self.labelsField)))
    }

    func parseStatus() -> SampleStatus? {
        let i = Self.statusField
        switch lengths[i] {
        case 2 where bytesEqual(i, "ok"): return .ok
        case 5 where bytesEqual(i, "error"): return .error
        case 7 where bytesEqual(i, "timeout"): return .timeout
        case 7 where bytesEqual(i, "refused"): return .refused
        case 11 where bytesEqual(i, "unreachable"): return .unreachable
        default: return nil
        }
    }

    /// Powers of ten that are exact doubles.
    private static let powersOfTen: [Double] = (0...22).map { pow(10, Double($0)) }

    /// `Double(field)`, fast for `-?digits(.digits)?` with at most 15 digits: the integer of
    /// the digits divided by 10^k is one correctly rounded IEEE division of two exact doubles, so
    /// it equals the correctly rounded decimal parse `Double(String)` does. Anything else (exponents,
    /// `nan`, more digits) goes to `Double(String)` itself.
    func parseValue() -> Double? {
        let f = bytes(Self.valueField)
        var i = 0
        var negative = false
        if i < f.count && f[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var fractionDigits = 0
        var intDigits = 0
        while i < f.count, f[i] &- 48 < 10 { mantissa = mantissa &* 10 &+ UInt64(f[i] &- 48); i += 1; digits += 1; intDigits += 1 }
        var ok = intDigits > 0
        if ok && i < f.count && f[i] == UInt8(ascii: ".") {
            i += 1
            while i < f.count, f[i] &- 48 < 10 { mantissa = mantissa &* 10 &+ UInt64(f[i] &- 48); i += 1; digits += 1; fractionDigits += 1 }
            ok = fractionDigits > 0
        }
        if ok && i == f.count && digits <= 15 {
            let v = Double(mantissa) / Self.powersOfTen[fractionDigits]
            return negative ? -v : v
        }
        return Double(string(Self.valueField))
    }

    /// Seconds since 1970 of the timestamp field. Fast for the form edgemeter writes
    /// (`2026-11-29T01:40:00.123456Z`, a valid date from 1971 on, seconds 0-59), computed as
    /// `Format.parseTimestamp` does (whole seconds, plus the six fraction digits as a decimal);
    /// anything else goes to `Format.parseTimestamp` itself.
    func parseTimestamp() -> Double? {
        let f = bytes(Self.timestampField)
        if f.count == 27, let s = Self.fastTimestamp(f) { return s }
        return Format.parseTimestamp(string(Self.timestampField))?.timeIntervalSince1970
    }

    /// `parseTimestamp()`, reusing the previous row's date and hour (`cache`) when the first 13
    /// bytes (`2026-11-29T01`) are the same: then only minutes, seconds and micros are read. The
    /// same value as `parseTimestamp()` (the same integer seconds plus the same micros / 1e6).
    func parseTimestamp(_ cache: inout TimestampCache) -> Double? {
        let f = bytes(Self.timestampField)
        if f.count == 27 {
            let p = UnsafeRawPointer(f.baseAddress!)
            let a = p.loadUnaligned(as: UInt64.self), b = p.loadUnaligned(fromByteOffset: 5, as: UInt64.self)
            if cache.valid && a == cache.head0 && b == cache.head5 {
                if f[13] == UInt8(ascii: ":"), f[16] == UInt8(ascii: ":"), f[19] == UInt8(ascii: "."), f[26] == UInt8(ascii: "Z") {
                    var bad: UInt8 = 0
                    @inline(__always) func d(_ i: Int) -> Int {
                        let x = f[i] &- 48
                        bad |= x >= 10 ? 1 : 0
                        return Int(x)
                    }
                    let minute = d(14) * 10 + d(15), second = d(17) * 10 + d(18)
                    var micros = d(20)
                    for i in 21...25 { micros = micros * 10 + d(i) }
                    if bad == 0 && minute < 60 && second < 60 {
                        return Double(cache.hourSeconds + minute * 60 + second) + Double(micros) / 1e6
                    }
                }
            } else if let parts = Self.fastParts(f) {
                let (seconds, micros) = parts
                // The fast form checked: the first 13 bytes are a valid date and hour.
                let minute = Int(f[14] - 48) * 10 + Int(f[15] - 48), second = Int(f[17] - 48) * 10 + Int(f[18] - 48)
                cache = TimestampCache(valid: true, head0: a, head5: b, hourSeconds: seconds - minute * 60 - second)
                return Double(seconds) + Double(micros) / 1e6
            }
        }
        return parseTimestamp()
    }

    static func fastTimestamp(_ f: UnsafeBufferPointer<UInt8>) -> Double? {
        guard let parts = fastParts(f) else { return nil }
        return Double(parts.0) + Double(parts.1) / 1e6
    }

    /// The whole seconds since 1970 and the micros of a timestamp in the fast form, nil otherwise.
    static func fastParts(_ f: UnsafeBufferPointer<UInt8>) -> (Int, Int)? {
        func num(_ from: Int, _ count: Int) -> Int? {
            var v = 0
            for j in from..<(from + count) {
                let d = f[j] &- 48
                guard d < 10 else { return nil }
                v = v * 10 + Int(d)
            }
            return v
        }
        guard f[4] == UInt8(ascii: "-"), f[7] == UInt8(ascii: "-"), f[10] == UInt8(ascii: "T"), f[13] == UInt8(ascii: ":"),
              f[16] == UInt8(ascii: ":"), f[19] == UInt8(ascii: "."), f[26] == UInt8(ascii: "Z"),
              let year = num(0, 4), let month = num(5, 2), let day = num(8, 2), let hour = num(11, 2), let minute = num(14, 2),
              let second = num(17, 2), let micros = num(20, 6),
              year >= 1971, (1...12).contains(month), day >= 1, hour < 24, minute < 60, second < 60 else { return nil }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let monthDays = month == 2 ? (leap ? 29 : 28) : (month == 4 || month == 6 || month == 9 || month == 11) ? 30 : 31
        guard day <= monthDays else { return nil }
        // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let seconds = days * 86400 + hour * 3600 + minute * 60 + second
        return (seconds, micros)
    }
}

/// The date and hour of the last timestamp parsed the slow way (`SampleRow.parseTimestamp(_:)`).
struct TimestampCache {
    var valid = false
    var head0: UInt64 = 0, head5: UInt64 = 0
    var hourSeconds = 0
}

/// A row's key fields as bytes (each field's length, 4 bytes, then its bytes), kept to compare
/// later rows with in place: no String and no array per row.
public struct RowKeyBytes: Hashable, Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    /// The key of `row`'s fields `fields`.
    public init(_ row: SampleRow, _ fields: ClosedRange<Int>) {
        bytes.reserveCapacity(64)
        for f in fields {
            let b = row.bytes(f)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: b.count)) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: b)
        }
    }

    public var isEmpty: Bool { bytes.isEmpty }

    /// Appends `row`'s field `field`.
    public mutating func append(_ row: SampleRow, _ field: Int) {
        let b = row.bytes(field)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: b.count)) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: b)
    }

    /// Whether `row`'s fields `fields`, then field `last`, are this key's, compared in place.
    public func matches(_ row: SampleRow, _ fields: ClosedRange<Int>, then last: Int) -> Bool {
        bytes.withUnsafeBufferPointer { k in
            guard let kb = k.baseAddress else { return false }
            var at = 0
            for f in fields {
                guard Self.field(kb, k.count, &at, row, f) else { return false }
            }
            return Self.field(kb, k.count, &at, row, last) && at == k.count
        }
    }

    @inline(__always)
    private static func field(_ kb: UnsafePointer<UInt8>, _ count: Int, _ at: inout Int, _ row: SampleRow, _ f: Int) -> Bool {
        let n = row.lengths[f]
        guard at + 4 + n <= count,
              UnsafeRawPointer(kb + at).loadUnaligned(as: UInt32.self) == UInt32(truncatingIfNeeded: n),
              n == 0 || memcmp(kb + at + 4, row.base + row.starts[f], n) == 0 else { return false }
        at += 4 + n
        return true
    }

    /// Whether `row`'s fields `fields` are this key's, compared in place.
    public func matches(_ row: SampleRow, _ fields: ClosedRange<Int>) -> Bool {
        bytes.withUnsafeBufferPointer { k in
            guard let kb = k.baseAddress else { return false }
            var at = 0
            for f in fields {
                guard Self.field(kb, k.count, &at, row, f) else { return false }
            }
            return at == k.count
        }
    }
}

/// Cuts rows out of the byte stream: the state machine of `CSV.parse`, on bytes (the four bytes it
/// acts on are ASCII, which never occur inside a multi-byte UTF-8 sequence).
struct RowScanner {
    enum Step { case row(lineBreaks: Int), end }

    private(set) var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Unread bytes are `buffer[position..<filled]`.
    private var position = 0
    private var filled = 0
    private var atEOF = false
    /// Up to `maxFields` field positions of the current row; `fieldCount` counts them all.
    static let maxFields = 16
    let starts: UnsafeMutablePointer<Int>
    let lengths: UnsafeMutablePointer<Int>
    private(set) var fieldCount = 0
    private var decodeMask: UInt32 = 0
    private(set) var inQuotesAtEnd = false
    /// Line breaks inside the unterminated quoted field, when `inQuotesAtEnd`.
    private(set) var lineBreaksAtEnd = 0
    /// File offset of `buffer[0]`: the bytes dropped from the buffer's front so far (plus the
    /// offset a part of the file starts at).
    var consumed = 0
    /// File offset of the current row's first byte.
    private(set) var rowOffset = 0

    init(capacity: Int) {
        self.capacity = capacity
        buffer = .allocate(capacity: capacity)
        starts = .allocate(capacity: Self.maxFields)
        lengths = .allocate(capacity: Self.maxFields)
    }

    func deallocate() {
        buffer.deallocate()
        starts.deallocate()
        lengths.deallocate()
    }

    func fieldLength(_ i: Int) -> Int { lengths[i] }

    /// The next row (its fields in `starts`/`lengths`, unquoted in place), or the end of the data.
    mutating func next(read: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Step {
        while true {
            if let step = scan() { return step }
            // The row is incomplete: keep its bytes, read more after them.
            if position > 0 {
                if filled > position { memmove(buffer, buffer + position, filled - position) }
                filled -= position
                consumed += position
                position = 0
            }
            if filled == capacity {
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                bigger.update(from: buffer, count: filled)
                buffer.deallocate()
                buffer = bigger
                capacity *= 2
            }
            let n = try read(UnsafeMutableRawBufferPointer(start: buffer + filled, count: capacity - filled))
            if n <= 0 { atEOF = true } else { filled += n }
        }
    }

    /// Records a field; one to unquote is only marked (`decodeMask`): the bytes are rewritten once
    /// the row is known to be complete (`finishRow`), since an incomplete row is scanned again
    /// after the next read.
    private mutating func addField(_ start: Int, _ end: Int, decode: Bool) {
        if fieldCount < Self.maxFields {
            starts[fieldCount] = start
            lengths[fieldCount] = end - start
            if decode { decodeMask |= 1 << UInt32(fieldCount) }
        }
        fieldCount += 1
    }

    private mutating func finishRow() {
        guard decodeMask != 0 else { return }
        for i in 0..<Swift.min(fieldCount, Self.maxFields) where decodeMask & (1 << UInt32(i)) != 0 {
            lengths[i] = unquote(starts[i], starts[i] + lengths[i])
        }
        decodeMask = 0
    }

    /// Rewrites `buffer[start..<end]` in place as `CSV.parse` reads a field (quotes removed,
    /// doubled quotes halved, `\r` outside quotes dropped); returns the new length.
    private func unquote(_ start: Int, _ end: Int) -> Int {
        var w = start
        var r = start
        var started = false
        var inQuotes = false
        while r < end {
            let c = buffer[r]
            if inQuotes {
                if c == quote {
                    if r + 1 < end && buffer[r + 1] == quote { buffer[w] = quote; w += 1; r += 2; continue }
                    inQuotes = false
                } else {
                    buffer[w] = c; w += 1
                }
            } else if c == quote && !started {
                inQuotes = true
                started = true
            } else if c != cr {
                buffer[w] = c; w += 1
                started = true
            }
            r += 1
        }
        return w - start
    }

    /// One complete row from `position`, or nil when more bytes are needed (`position` is then
    /// unchanged). At the end of the data, the last line without a line break is a row when it has
    /// a character or a comma (as in `CSV.parse`).
    private mutating func scan() -> Step? {
        let end = filled
        var p = position
        rowOffset = consumed + position
        fieldCount = 0
        decodeMask = 0
        var lineBreaks = 0
        row: while true {
            let fieldStart = p
            var started = false   // CSV.parse's fieldStarted: a quote opened or a character kept
            var decode = false    // quotes or CRs to take out
            var inQuotes = false
            while true {
                if p == end {
                    guard atEOF else { return nil }
                    position = end
                    if inQuotes { inQuotesAtEnd = true; lineBreaksAtEnd = lineBreaks; return .end }
                    if started || fieldCount > 0 {
                        addField(fieldStart, p, decode: decode)
                        finishRow()
                        return .row(lineBreaks: lineBreaks)
                    }
                    return .end
                }
                if inQuotes {
                    let c = buffer[p]
                    if c == quote {
                        if p + 1 == end && !atEOF { return nil }
                        if p + 1 < end && buffer[p + 1] == quote { p += 2; continue }
                        inQuotes = false
                    } else if c == newline {
                        lineBreaks += 1
                    }
                    p += 1
                    continue
                }
                if started {
                    // The hot loop: an unquoted field's bytes (quotes included: they are literal
                    // once the field has started) up to a comma, a line break or a CR.
                    p = Self.specialByte(buffer, from: p, end: end)
                    if p == end { continue }
                }
                let c = buffer[p]
                if c == comma {
                    addField(fieldStart, p, decode: decode)
                    p += 1
                    continue row
                }
                if c == newline {
                    addField(fieldStart, p, decode: decode)
                    finishRow()
                    position = p + 1
                    return .row(lineBreaks: lineBreaks + 1)
                }
                if c == cr {
                    decode = true
                } else if c == quote && !started {
                    inQuotes = true
                    started = true
                    decode = true
                } else {
                    started = true
                }
                p += 1
            }
        }
    }
}

extension RowScanner {
    /// The first position in `buffer[from..<end]` of a comma, a line break or a CR (`end` when
    /// none), 8 bytes at a time (SWAR: a byte equal to `c` is a zero byte of `word ^ c·0x01…01`).
    @inline(__always)
    static func specialByte(_ buffer: UnsafeMutablePointer<UInt8>, from: Int, end: Int) -> Int {
        var p = from
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func zeroBytes(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        while p + 8 <= end {
            let w = UnsafeRawPointer(buffer + p).loadUnaligned(as: UInt64.self)
            // Below the first zero byte the mask is exact, so its lowest bit is the first match.
            let m = zeroBytes(w ^ (ones &* 0x2C)) | zeroBytes(w ^ (ones &* 0x0A)) | zeroBytes(w ^ (ones &* 0x0D))
            if m != 0 { return p + m.trailingZeroBitCount >> 3 }
            p += 8
        }
        while p < end {
            let b = buffer[p]
            if b == comma || b == newline || b == cr { break }
            p += 1
        }
        return p
    }
}

private let quote = UInt8(ascii: "\"")
private let comma = UInt8(ascii: ",")
private let newline = UInt8(ascii: "\n")
private let cr = UInt8(ascii: "\r")
