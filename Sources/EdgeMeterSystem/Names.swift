/// Naming rules for what edgemeter creates on the host, so that `edgemeter cleanup` can tell its own
/// leftovers from everything else, and so a bad name fails with a sentence instead of an `ip` error.
///
/// - `edgemeter-` starts the names of namespaces, bridges, containers and VMs a run creates
///   (`edgemeter-<tag>-<n>`, `edgemeter-br0`, `edgemeter-oci0`).
/// - `em-` is the short form for network interfaces, whose names the kernel limits to 15 bytes
///   (IFNAMSIZ 16 with the NUL): `em-` + a tag still leaves 12 bytes.
public enum Names {
    public static let prefix = "edgemeter-"
    public static let shortPrefix = "em-"
    /// Longest interface name the kernel accepts (IFNAMSIZ - 1).
    public static let maxInterfaceBytes = 15

    /// Whether `name` carries one of edgemeter's prefixes (something a run made).
    public static func isEdgemeterName(_ name: String) -> Bool {
        name.hasPrefix(prefix) || name.hasPrefix(shortPrefix)
    }

    /// `em-` + the parts joined by `-`, checked as an interface name.
    public static func interfaceName(_ parts: String...) throws -> String {
        let name = shortPrefix + parts.joined(separator: "-")
        try checkInterface(name)
        return name
    }

    /// Throws unless the kernel would accept `name` for a link: 1-15 bytes, no `/`, `:`, whitespace
    /// or control characters, not `.` or `..`.
    public static func checkInterface(_ name: String) throws {
        let bytes = name.utf8.count
        guard bytes > 0 else { throw SystemError("an interface name must not be empty: use an `\(shortPrefix)` name such as em-br0") }
        guard bytes <= maxInterfaceBytes else {
            throw SystemError("interface name \"\(name)\" has \(bytes) bytes; the kernel allows at most \(maxInterfaceBytes): "
                + "shorten it (interfaces use the short prefix `\(shortPrefix)`)")
        }
        try checkCharacters(name, what: "interface name", colon: true)
    }

    /// Throws unless `name` can name a network namespace (a file in /var/run/netns): 1-255 bytes,
    /// no `/`, whitespace or control characters, not `.` or `..`.
    public static func checkNamespace(_ name: String) throws {
        let bytes = name.utf8.count
        guard bytes > 0, bytes <= 255 else {
            throw SystemError("network namespace name \"\(name)\" must have 1 to 255 bytes: use an `\(prefix)` name such as edgemeter-ns1")
        }
        try checkCharacters(name, what: "network namespace name", colon: false)
    }

    private static func checkCharacters(_ name: String, what: String, colon: Bool) throws {
        if name == "." || name == ".." { throw SystemError("\(what) \"\(name)\" is not allowed: pick a name such as \(shortPrefix)x0") }
        if let bad = name.unicodeScalars.first(where: { $0 == "/" || (colon && $0 == ":") || $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7f }) {
            throw SystemError("\(what) \"\(name)\" contains \(bad.escaped(asASCII: true).debugDescription), which `ip` refuses: "
                + "use letters, digits, `-`, `_` and `.` only")
        }
    }
}
