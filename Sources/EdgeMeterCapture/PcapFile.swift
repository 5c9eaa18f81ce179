import Foundation

/// Link-layer header types of the pcap format (https://www.tcpdump.org/linktypes.html) that the
/// decoder understands.
public enum LinkType {
    public static let null: UInt32 = 0          // BSD loopback: 4-byte host-order address family
    public static let ethernet: UInt32 = 1      // DLT_EN10MB
    public static let raw: UInt32 = 101         // LINKTYPE_RAW: bare IPv4/IPv6
    public static let loop: UInt32 = 108        // OpenBSD loopback: 4-byte network-order family
    public static let linuxSLL: UInt32 = 113    // Linux cooked capture v1 (`any` on old libpcap)
    public static let ipv4: UInt32 = 228
    public static let ipv6: UInt32 = 229
    public static let linuxSLL2: UInt32 = 276   // Linux cooked capture v2 (`any` on libpcap >= 1.10)

    public static func name(_ t: UInt32) -> String {
        switch t {
        case null: return "NULL"
        case ethernet: return "EN10MB"
        case raw: return "RAW"
        case loop: return "LOOP"
        case linuxSLL: return "LINUX_SLL"
        case ipv4: return "IPV4"
        case ipv6: return "IPV6"
        case linuxSLL2: return "LINUX_SLL2"
        default: return "linktype \(t)"
        }
    }
}

/// Errors reading or writing pcap files. Each message says what was wrong and what to do next.
public enum CaptureError: Error, CustomStringConvertible, Equatable {
    case file(String)
    case format(String)
    case capture(String)
    case permission(String)
    case usage(String)

    public var description: String {
        switch self {
        case .file(let m), .format(let m), .capture(let m), .permission(let m), .usage(let m): return m
        }
    }
}

/// One record of a pcap file or of a live capture. `data` is only valid inside the callback that
/// receives it.
public struct PcapRecord {
    /// Capture time, nanoseconds since the Unix epoch (CLOCK_REALTIME of the capturing kernel). With a
    /// microsecond file the last three digits are zero.
    public var timestampNs: Int64
    /// Bytes on the wire (`orig_len`); `data.count` is what was captured (at most the snap length).
    public var originalLength: Int
    public var data: UnsafeRawBufferPointer
}

/// What a pcap file's header said and how reading it went.
public struct PcapFileInfo: Sendable, Equatable {
    public var linkType: UInt32
    public var snapLength: UInt32
    /// True for the nanosecond magic 0xa1b23c4d, false for microseconds (0xa1b2c3d4).
    public var nanosecond: Bool
    public var bigEndian: Bool
    public var records = 0
    /// Records cut short by the end of the file (a capture killed mid-write, a truncated copy):
    /// counted and skipped.
    public var truncatedRecords = 0
    /// Set when a record header was implausible (captured length above 256 KiB or above orig_len
    /// by more than the snap length): reading stops there because the next record cannot be found.
    public var corruptAtOffset: Int?

    public var timestampPrecision: String { nanosecond ? "nano" : "micro" }
}

/// Reader of the classic pcap format (both byte orders, microsecond and nanosecond magic). It maps
/// the file and hands out records without copying packet bytes.
public enum PcapReader {
    /// Largest captured length accepted in a record header (libpcap's MAXIMUM_SNAPLEN).
    static let maxRecordLength = 262_144

    /// Reads `path` and calls `body` for every complete record in file order.
    /// Throws only when the file cannot be opened or is not a pcap file at all; damaged records are
    /// counted in the returned info.
    @discardableResult
    public static func read(path: String, onHeader: ((PcapFileInfo) throws -> Void)? = nil,
                            _ body: (PcapRecord) throws -> Void) throws -> PcapFileInfo {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CaptureError.file("\(path): no such file; give the path of a .pcap file written by `edgemeter capture -w`, tcpdump -w or dumpcap -F pcap")
        }
        // Read in 8 MiB pieces (one copy from the page cache, no page-table work for a mapping).
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CaptureError.file("cannot read \(path): \(String(cString: strerror(errno))); check the path and its permissions")
        }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        let capacity = 8 << 20
        let base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { base.deallocate() }
        var have = 0
        var eof = false
        func fill() throws {
            while have < capacity && !eof {
                let n = Foundation.read(fd, base + have, capacity - have)
                if n == 0 { eof = true } else if n < 0 {
                    if errno == EINTR { continue }
                    throw CaptureError.file("reading \(path) failed: \(String(cString: strerror(errno)))")
                } else { have += n }
            }
        }
        try fill()
        var info = try header(UnsafeRawBufferPointer(start: base, count: have), name: path)
        try onHeader?(info)
        var start = 24
        var fileOffset = 0
        while true {
            let (consumed, stop) = try records(UnsafeRawBufferPointer(start: base + start, count: have - start), &info,
                                               atEOF: eof, baseOffset: fileOffset + start, body)
            if stop || eof { break }
            start += consumed
            let left = have - start
            memmove(base, base + start, left)
            fileOffset += start
            have = left
            start = 0
            try fill()
        }
        return info
    }

    /// Same as `read(path:)` over bytes already in memory.
    @discardableResult
    public static func read(bytes raw: UnsafeRawBufferPointer, name: String = "pcap data",
                            onHeader: ((PcapFileInfo) throws -> Void)? = nil, _ body: (PcapRecord) throws -> Void) throws -> PcapFileInfo {
        var info = try header(raw, name: name)
        try onHeader?(info)
        _ = try records(UnsafeRawBufferPointer(rebasing: raw[24...]), &info, atEOF: true, baseOffset: 24, body)
        return info
    }

    /// Validates the 24-byte file header.
    static func header(_ raw: UnsafeRawBufferPointer, name: String) throws -> PcapFileInfo {
        guard raw.count >= 4 else {
            throw CaptureError.format("\(name) is \(raw.count) bytes long, shorter than a pcap file header (24 bytes): it is empty or was cut off; capture again")
        }
        let magicLE = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        var swapped = false
        var nano = false
        switch magicLE {
        case 0xa1b2_c3d4: break
        case 0xd4c3_b2a1: swapped = true
        case 0xa1b2_3c4d: nano = true
        case 0x4d3c_b2a1: swapped = true; nano = true
        case 0x0a0d_0d0a:
            throw CaptureError.format("\(name) is a pcapng file; convert it to pcap first: `editcap -F pcap \(name) out.pcap` (or capture with `edgemeter capture -w` / `tcpdump -w`)")
        default:
            throw CaptureError.format("\(name) is not a pcap file (magic 0x\(String(magicLE, radix: 16)) instead of a1b2c3d4 or a1b23c4d); give a file written by `edgemeter capture -w` or `tcpdump -w`")
        }
        guard raw.count >= 24 else {
            throw CaptureError.format("\(name) is \(raw.count) bytes long, shorter than a pcap file header (24 bytes): it was cut off; capture again")
        }
        func u32(_ off: Int) -> UInt32 {
            let v = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: off, as: UInt32.self))
            return swapped ? v.byteSwapped : v
        }
        return PcapFileInfo(linkType: u32(20) & 0x0fff_ffff, snapLength: u32(16), nanosecond: nano, bigEndian: swapped)
    }

    /// Hands every complete record of `raw` to `body`. Returns the bytes consumed and whether
    /// reading must stop (a corrupt record header, or the end of the file). A record cut by the end
    /// of the data counts as truncated only when `atEOF`; otherwise the caller supplies more bytes.
    static func records(_ raw: UnsafeRawBufferPointer, _ info: inout PcapFileInfo, atEOF: Bool, baseOffset: Int,
                        _ body: (PcapRecord) throws -> Void) throws -> (consumed: Int, stop: Bool) {
        let swapped = info.bigEndian
        let nano = info.nanosecond
        @inline(__always) func u32(_ off: Int) -> UInt32 {
            let v = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: off, as: UInt32.self))
            return swapped ? v.byteSwapped : v
        }
        var off = 0
        let fracScale: Int64 = nano ? 1 : 1000
        let limit = max(maxRecordLength, Int(info.snapLength))
        while off < raw.count {
            if raw.count - off < 16 {
                if atEOF { info.truncatedRecords += 1; return (off, true) }
                return (off, false)
            }
            let sec = Int64(u32(off))
            let frac = Int64(u32(off + 4))
            let incl = Int(u32(off + 8))
            let orig = Int(u32(off + 12))
            if incl > limit || (nano ? frac >= 1_000_000_000 : frac >= 1_000_000) {
                info.corruptAtOffset = baseOffset + off
                return (off, true)
            }
            if raw.count - off - 16 < incl {
                if atEOF { info.truncatedRecords += 1; return (off, true) }
                return (off, false)
            }
            let rec = PcapRecord(timestampNs: sec * 1_000_000_000 + frac * fracScale, originalLength: max(orig, incl),
                                 data: UnsafeRawBufferPointer(rebasing: raw[(off + 16)..<(off + 16 + incl)]))
            info.records += 1
            try body(rec)
            off += 16 + incl
        }
        return (off, atEOF)
    }
}

/// Writer of the classic pcap format, little-endian, with the nanosecond magic (0xa1b23c4d) when
/// `nanosecond` is true. Files are created with mode 0600 because they hold packet payloads.
/// Records are buffered (64 KiB) and written with write(2); call `flush()` to push them to the file
/// and `close()` at the end.
public final class PcapWriter {
    public let path: String
    public let linkType: UInt32
    public let snapLength: UInt32
    public let nanosecond: Bool
    private var fd: Int32
    private var buffer: [UInt8] = []
    public private(set) var recordsWritten = 0

    public init(path: String, linkType: UInt32, snapLength: UInt32 = 262_144, nanosecond: Bool = true) throws {
        self.path = path
        self.linkType = linkType
        self.snapLength = snapLength
        self.nanosecond = nanosecond
        let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard f >= 0 else {
            let e = String(cString: strerror(errno))
            throw CaptureError.file("cannot create \(path): \(e); choose a writable path for -w")
        }
        // O_CREAT's mode does not apply to an existing file: force 0600 either way.
        _ = fchmod(f, 0o600)
        fd = f
        buffer.reserveCapacity(1 << 16)
        append32(nanosecond ? 0xa1b2_3c4d : 0xa1b2_c3d4)
        append16(2); append16(4)
        append32(0); append32(0)
        append32(snapLength)
        append32(linkType)
        try flush()
    }

    deinit { if fd >= 0 { try? flush(); Foundation.close(fd) } }

    /// The open descriptor (to fchown the file to the user a capture drops privileges to).
    public var fileDescriptor: Int32 { fd }

    @inline(__always) private func append32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
    }
    @inline(__always) private func append16(_ v: UInt16) {
        withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) }
    }

    /// Appends one record. `originalLength` defaults to the captured length.
    public func write(timestampNs: Int64, data: UnsafeRawBufferPointer, originalLength: Int? = nil) throws {
        let sec = timestampNs >= 0 ? timestampNs / 1_000_000_000 : (timestampNs - 999_999_999) / 1_000_000_000
        let rem = timestampNs - sec * 1_000_000_000
        append32(UInt32(truncatingIfNeeded: sec))
        append32(UInt32(nanosecond ? rem : rem / 1000))
        let incl = min(data.count, Int(snapLength))
        append32(UInt32(incl))
        append32(UInt32(max(originalLength ?? data.count, incl)))
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[0..<incl]))
        recordsWritten += 1
        if buffer.count >= 1 << 16 { try flush() }
    }

    public func write(timestampNs: Int64, bytes: [UInt8], originalLength: Int? = nil) throws {
        try bytes.withUnsafeBytes { try write(timestampNs: timestampNs, data: $0, originalLength: originalLength) }
    }

    /// Writes buffered records to the file.
    public func flush() throws {
        guard fd >= 0 else { return }
        var off = 0
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = String(cString: strerror(errno))
                buffer.removeAll(keepingCapacity: true)
                throw CaptureError.file("writing \(path) failed: \(e); free disk space or choose another -w path")
            }
            off += n
        }
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() throws {
        guard fd >= 0 else { return }
        defer { Foundation.close(fd); fd = -1 }
        try flush()
    }
}
