import Foundation
import EdgeMeterCore

/// A run directory's samples.csv read as a stream (`SampleStream`): `read(2)` in chunks of
/// `SampleStream.defaultChunkBytes`, so reading a file of any size takes the chunk buffer's memory.
public enum SamplesFile {
    /// Hands every data row of the samples.csv at `url` to `onRow`, in file order; returns the
    /// number of rows. Errors name the file and, for a damaged row, its line.
    @discardableResult
    public static func read(_ url: URL, onRow: (SampleRow) throws -> Void) throws -> Int {
        let fd = try openSamples(url)
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        return try SampleStream.read(file: url.path, from: reader(fd, url, from: 0, to: nil), onRow: onRow)
    }

    /// Files smaller than this are read by one thread (splitting costs more than it saves).
    public static let parallelMinimumBytes = 32 << 20

    /// One read of samples.csv feeding `pass` (summaries, charts, delays: `SamplePass`).
    ///
    /// With `parts` 2 and a file of at least `parallelMinimumBytes`, the file is cut at the first
    /// line break after its middle and the two parts are read by two threads at once, each into its
    /// own pass (its own 4 MiB buffer), merged in file order: the result is the one reading the file
    /// whole gives, figure for figure (histograms add bucket by bucket, sums are exact, the chart
    /// sampling keys on byte offsets). When the cut is not at a row's end (a quoted field spanning
    /// lines across the middle) or a part meets any fault, the file is read again whole, so a
    /// damaged file gets the same error, naming the same line, as the serial read.
    ///
    /// `minimumBytes`: the smallest file read in parts (tests lower it).
    public static func pass(_ url: URL, _ pass: SamplePass, parts: Int = defaultParts,
                            minimumBytes: Int = parallelMinimumBytes) throws -> PassResult {
        let fd = try openSamples(url)
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        var st = stat()
        if parts >= 2, fstat(fd, &st) == 0, Int(st.st_size) >= minimumBytes, let cut = lineBreak(after: Int(st.st_size) / 2, fd),
           cut < Int(st.st_size) {
            if let r = parallel(url, fd, pass, cut: cut, size: Int(st.st_size)) { return r }
        }
        var p = pass
        let rows = try SampleStream.read(file: url.path, from: reader(fd, url, from: 0, to: nil)) { p.add($0) }
        return PassResult(pass: p, rows: rows, parts: 1)
    }

    /// What `pass` read: the fed pass, the data rows, and in how many parts the file was read
    /// (1 when it was read whole, also after a part met a fault).
    public struct PassResult: Sendable {
        public var pass: SamplePass
        public var rows: Int
        public var parts: Int
    }

    /// 2 when the process may use two CPUs or more, else 1.
    public static var defaultParts: Int { ProcessInfo.processInfo.activeProcessorCount >= 2 ? 2 : 1 }

    /// The summaries of the samples.csv at `url` (what `Summarizer` gives over every sample) and
    /// its row count.
    public static func summarize(_ url: URL) throws -> (summaries: [Summary], rows: Int) {
        let r = try pass(url, SamplePass(summaries: true, charts: false))
        return (r.pass.summarizer!.summaries, r.rows)
    }

    /// delays.csv's rows for the samples.csv at `url` (what `DelayTable.rows(from:)` gives).
    public static func delays(_ url: URL) throws -> [DelayRow] {
        try pass(url, SamplePass(summaries: false, charts: false, delays: true)).pass.delays!.rows
    }

    /// The two parts read at once; nil when the serial read must decide (see `pass`).
    private static func parallel(_ url: URL, _ fd: Int32, _ pass: SamplePass, cut: Int, size: Int) -> PassResult? {
        final class Part: @unchecked Sendable {
            var pass: SamplePass
            var rows = 0
            var failed = false
            init(_ p: SamplePass) { pass = p }
        }
        let parts = [Part(pass), Part(pass)]
        let path = url.path
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let part = parts[i]
            do {
                let (from, to) = i == 0 ? (0, cut) : (cut, size)
                part.rows = try SampleStream.read(file: path, part: i == 0 ? .first : .rest(startOffset: cut),
                                                  from: reader(fd, url, from: from, to: to)) { part.pass.add($0) }
            } catch {
                part.failed = true
            }
        }
        guard !parts[0].failed, !parts[1].failed else { return nil }
        var merged = parts[0].pass
        merged.merge(parts[1].pass)
        return PassResult(pass: merged, rows: parts[0].rows + parts[1].rows, parts: 2)
    }

    /// The offset just after the first line break at or after `offset`; nil when there is none.
    static func lineBreak(after offset: Int, _ fd: Int32) -> Int? {
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        var at = offset
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(at)) }
            if n <= 0 { return nil }
            if let i = buf[0..<n].firstIndex(of: UInt8(ascii: "\n")) { return at + i + 1 }
            at += n
        }
    }

    private static func openSamples(_ url: URL) throws -> Int32 {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw RunError.setup("\(url.path) not found or unreadable (\(String(cString: strerror(errno)))): give the run directory that holds samples.csv")
        }
        return fd
    }

    /// A `SampleStream` reader of bytes `from ..< to` (`to` nil: to the end) by pread(2).
    private static func reader(_ fd: Int32, _ url: URL, from: Int, to: Int?) -> (UnsafeMutableRawBufferPointer) throws -> Int {
        var at = from
        return { buf in
            let want = to.map { Swift.min(buf.count, $0 - at) } ?? buf.count
            if want <= 0 { return 0 }
            while true {
                let n = pread(fd, buf.baseAddress, want, off_t(at))
                if n >= 0 { at += n; return n }
                if errno == EINTR { continue }
                throw RunError.setup("cannot read \(url.path): \(String(cString: strerror(errno))); check the disk and the file's permissions")
            }
        }
    }
}
