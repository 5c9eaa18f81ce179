/// Names that become one component of a file name in a run directory.
public enum FileName {
    /// `text` with every character other than a letter, a digit, `-`, `_` or `.` replaced by
    /// `replacement` (so a scenario or interface name cannot add a directory or a space to a path,
    /// nor a character a container name may not hold).
    public static func safe(_ text: String, replacement: Character = "_") -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : replacement })
    }
}
