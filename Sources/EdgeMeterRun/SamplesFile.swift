import Foundation
import EdgeMeterCore

/// A run directory's samples.csv read as a stream (`SampleStream`): `read(2)` in chunks of
/// `SampleStream.defaultChunkBytes`, so reading a file of any size takes the chunk buffer's memory.
public enum SamplesFile {
    /// Hands every data row of the samples.csv at `url` to `onRow`, in file order; returns the
    /// number of rows. Errors name the file and, for a damaged row, its line.
    @discardableResult
    public static func read(_ url: URL, onRow: (SampleRow) throws -> Void) throws -> Int {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw RunError.setup("\(url.path) not found or unreadable (\(String(cString: strerror(errno)))): give the run directory that holds samples.csv")
        }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        return try SampleStream.read(file: url.path, from: { buf in
            while true {
                let n = Glibc.read(fd, buf.baseAddress, buf.count)
                if n >= 0 { return n }
                if errno == EINTR { continue }
                throw RunError.setup("cannot read \(url.path): \(String(cString: strerror(errno))); check the disk and the file's permissions")
            }
        }, onRow: onRow)
    }

    /// The summaries of the samples.csv at `url` (what `Summarizer` gives over every sample) and
    /// its row count.
    public static func summarize(_ url: URL) throws -> (summaries: [Summary], rows: Int) {
        var s = SampleStreamSummarizer()
        let n = try read(url) { s.add($0) }
        return (s.summaries, n)
    }

    /// delays.csv's rows for the samples.csv at `url` (what `DelayTable.rows(from:)` gives).
    public static func delays(_ url: URL) throws -> [DelayRow] {
        var d = DelayAccumulator()
        try read(url) { d.add($0) }
        return d.rows
    }
}
