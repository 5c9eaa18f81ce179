import Foundation

/// Text escaped for the formats edgemeter writes by hand: one loop over Unicode scalars, one table
/// per format.
public enum TextEscaping {
    /// `s` with every scalar `replacement` returns a text for replaced by that text.
    @inline(__always)
    static func replacing(_ s: String, _ replacement: (Unicode.Scalar) -> String?) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            if let r = replacement(u) { out += r } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    /// JSON string escapes (RFC 8259 §7): the quote, the backslash, `\n`, `\r`, `\t`; other control
    /// characters as `\u00XX`.
    static let json: [Unicode.Scalar: String] = ["\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"]

    /// XML's five predefined entities (text and attribute values).
    static let xml: [Unicode.Scalar: String] = ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"]

    /// `s` as a JSON string literal, quotes included. Also a YAML double-quoted scalar: YAML 1.2
    /// reads JSON strings as they are.
    public static func jsonString(_ s: String) -> String {
        "\"" + replacing(s) { u in json[u] ?? (u.value < 0x20 ? String(format: "\\u%04x", u.value) : nil) } + "\""
    }

    /// `s` for XML/HTML text and attribute values: `&`, `<`, `>` and both quotes as entities.
    public static func xmlText(_ s: String) -> String { replacing(s) { xml[$0] } }
}
