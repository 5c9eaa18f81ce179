import Foundation

/// Builds the minimal local image the startup probes and the calculator services run from (no
/// registry is reachable here): busybox-static with its applet links, optional extra binaries (the
/// edgemeter binary) plus every shared library `ldd` lists for them at the same paths, imported
/// through the Engine API (`POST /images/create?fromSrc=-`, a tar body: what `docker import` does).
public struct ImageBuilder: Sendable {
    public static let defaultReference = "edgemeter-base:latest"
    public var reference: String
    public var busybox: String
    /// Binaries to add: (host path, path inside the image).
    public var binaries: [(source: String, destination: String)]
    /// Dockerfile instructions applied at import besides the label (`ENTRYPOINT [...]`, `USER 65534`,
    /// `EXPOSE 9427/tcp`); `CMD ["/bin/sh"]` when empty.
    public var instructions: [String]

    /// The agent image: `edgemeter agent` as the entrypoint (arguments from `docker run … IMAGE
    /// --config FILE`), run as nobody (65534), its port exposed.
    public static let agentReference = "edgemeter-agent:latest"
    public static func agentInstructions(port: Int) -> [String] {
        ["ENTRYPOINT [\"/usr/local/bin/edgemeter\", \"agent\"]", "CMD [\"--config\", \"/etc/edgemeter/agent.yaml\"]",
         "USER 65534:65534", "EXPOSE \(port)/tcp", "LABEL edgemeter.role=agent"]
    }

    public init(reference: String = ImageBuilder.defaultReference, busybox: String = "/bin/busybox",
                binaries: [(source: String, destination: String)] = [], instructions: [String] = []) {
        (self.reference, self.busybox, self.binaries, self.instructions) = (reference, busybox, binaries, instructions)
    }

    public struct Built: Sendable {
        public var reference: String
        public var imageID: String
        public var tarBytes: Int
        public var files: [String]
        public var milliseconds: Double
    }

    /// Writes the image tar and imports it; returns what went in.
    public func build(client: DockerAPIClient) async throws -> Built {
        let clock = ContinuousClock()
        let t0 = clock.now
        let (tar, files) = try await makeTar()
        let (repo, tag) = Self.split(reference)
        let changes = queryEscape("LABEL edgemeter=image")
        let extra = (instructions.isEmpty ? ["CMD [\"/bin/sh\"]"] : instructions).map { "&changes=" + queryEscape($0) }.joined()
        let r = try await client.request(.POST, "/images/create?fromSrc=-&repo=\(queryEscape(repo))&tag=\(queryEscape(tag))&changes=\(changes)\(extra)",
                                         body: tar, contentType: "application/x-tar", timeout: .seconds(300))
        guard r.status == 200 else {
            throw StartupError("importing \(reference) failed: HTTP \(r.status): \(r.errorMessage)")
        }
        // The import answers a stream of JSON progress objects; the last one carries the image ID or an error.
        var imageID = ""
        for line in r.text.split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            if let e = obj["error"] as? String { throw StartupError("importing \(reference) failed: \(e)") }
            if let s = obj["status"] as? String, s.hasPrefix("sha256:") { imageID = s }
        }
        return Built(reference: reference, imageID: imageID, tarBytes: tar.count, files: files,
                     milliseconds: Double((clock.now - t0).nanoseconds) / 1e6)
    }

    static func split(_ reference: String) -> (String, String) {
        if let colon = reference.lastIndex(of: ":"), !reference[colon...].contains("/") {
            return (String(reference[..<colon]), String(reference[reference.index(after: colon)...]))
        }
        return (reference, "latest")
    }

    /// The image's files as a tar archive, and the list of paths in it.
    func makeTar() async throws -> ([UInt8], [String]) {
        var tar = TarWriter()
        var files: [String] = []
        for dir in ["bin", "sbin", "usr", "usr/bin", "usr/local", "usr/local/bin", "etc", "tmp", "proc", "sys", "dev", "www", "root"] {
            tar.directory(dir, mode: dir == "tmp" ? 0o1777 : 0o755)
        }
        guard FileManager.default.isExecutableFile(atPath: busybox) else {
            throw StartupError("\(busybox) not found: install busybox-static (apt-get install -y busybox-static)")
        }
        try tar.file("bin/busybox", contents: readBytes(busybox), mode: 0o755)
        files.append("/bin/busybox")
        let list = try await runCommand([busybox, "--list"])
        for applet in list.stdout.split(separator: "\n") where applet != "busybox" {
            tar.symlink("bin/\(applet)", target: "/bin/busybox")
        }
        tar.file("etc/passwd", contents: Array("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n".utf8), mode: 0o644)
        tar.file("etc/group", contents: Array("root:x:0:\nnogroup:x:65534:\n".utf8), mode: 0o644)
        tar.file("www/index.html", contents: Array("edgemeter\n".utf8), mode: 0o644)
        var seen = Set<String>()
        var parentsDone = Set<String>(["bin", "sbin", "usr", "usr/bin", "usr/local", "usr/local/bin", "etc", "tmp", "proc", "sys", "dev", "www", "root"])
        func addParents(_ path: String) {
            var comps = path.split(separator: "/").dropLast()
            var prefix: [Substring] = []
            while !comps.isEmpty {
                prefix.append(comps.removeFirst())
                let dir = prefix.joined(separator: "/")
                if parentsDone.insert(dir).inserted { tar.directory(dir, mode: 0o755) }
            }
        }
        for (source, destination) in binaries {
            guard FileManager.default.isReadableFile(atPath: source) else {
                throw StartupError("\(source) not found: build it first (swift build -c release) or give another path")
            }
            let dest = String(destination.drop { $0 == "/" })
            addParents(dest)
            try tar.file(dest, contents: readBytes(source), mode: 0o755)
            files.append("/" + dest)
            for lib in try await Self.sharedLibraries(of: source) where seen.insert(lib).inserted {
                let rel = String(lib.drop { $0 == "/" })
                addParents(rel)
                try tar.file(rel, contents: readBytes(lib), mode: 0o755)
                files.append(lib)
            }
        }
        return (tar.finish(), files)
    }

    /// Absolute paths `ldd` resolves for `binary` (the loader included); empty for a static binary.
    static func sharedLibraries(of binary: String) async throws -> [String] {
        let r = try await runCommand(["ldd", binary])
        if r.combined.contains("not a dynamic executable") || r.combined.contains("statically linked") { return [] }
        guard r.ok else { throw StartupError("ldd \(binary) failed: \(r.combined)") }
        var libs: [String] = []
        for line in r.stdout.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.contains("not found") { throw StartupError("ldd \(binary): \(t): install the missing library first") }
            if let arrow = t.range(of: "=> ") {
                let rest = t[arrow.upperBound...]
                if let path = rest.split(separator: " ").first, path.hasPrefix("/") { libs.append(String(path)) }
            } else if t.hasPrefix("/"), let path = t.split(separator: " ").first {
                libs.append(String(path))
            }
        }
        return libs
    }

    func readBytes(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else { throw StartupError("cannot read \(path)") }
        return Array(d)
    }
}

/// A ustar archive writer: regular files, directories and symlinks, with the name/prefix split
/// for paths over 100 bytes.
struct TarWriter {
    private(set) var bytes: [UInt8] = []

    mutating func directory(_ path: String, mode: Int) {
        header(path.hasSuffix("/") ? path : path + "/", size: 0, mode: mode, type: UInt8(ascii: "5"), link: "")
    }

    mutating func symlink(_ path: String, target: String) {
        header(path, size: 0, mode: 0o777, type: UInt8(ascii: "2"), link: target)
    }

    mutating func file(_ path: String, contents: [UInt8], mode: Int) {
        header(path, size: contents.count, mode: mode, type: UInt8(ascii: "0"), link: "")
        bytes += contents
        let pad = (512 - contents.count % 512) % 512
        bytes += [UInt8](repeating: 0, count: pad)
    }

    mutating func finish() -> [UInt8] {
        bytes += [UInt8](repeating: 0, count: 1024)
        return bytes
    }

    private mutating func header(_ path: String, size: Int, mode: Int, type: UInt8, link: String) {
        var h = [UInt8](repeating: 0, count: 512)
        var name = path, prefix = ""
        if path.utf8.count > 100, let slash = path.utf8.prefix(155).lastIndex(of: UInt8(ascii: "/")) {
            prefix = String(path[..<slash])
            name = String(path[path.index(after: slash)...])
        }
        func put(_ s: String, _ offset: Int, _ length: Int) {
            for (i, b) in s.utf8.prefix(length).enumerated() { h[offset + i] = b }
        }
        func octal(_ v: Int, _ offset: Int, _ length: Int) {
            put(String(repeating: "0", count: max(0, length - 1 - String(v, radix: 8).count)) + String(v, radix: 8), offset, length - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        octal(size, 124, 12)
        octal(Int(Date().timeIntervalSince1970), 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        put("root", 265, 32)
        put("root", 297, 32)
        put(prefix, 345, 155)
        for i in 148..<156 { h[i] = UInt8(ascii: " ") }
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(sum, 148, 7)
        h[154] = 0
        h[155] = UInt8(ascii: " ")
        bytes += h
    }
}
