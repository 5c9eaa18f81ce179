/// A Markdown (GFM) table as text: the header row, the alignment row, then one line per row, each
/// line `| a | b |` ending in a newline. Cells are written as given: a cell that may hold `|` or a
/// newline is escaped by the caller first (`ReportHTML.markdown` does).
public struct MarkdownTable: Sendable {
    /// How a column's cells line up: `---` (left, the renderer's default) or `---:` (right, for figures).
    public enum Alignment: String, Sendable {
        case left = "---"
        case right = "---:"
    }

    /// The table so far, header and alignment rows included.
    public private(set) var text: String

    /// `alignments`: one per column, in order; a column without one is left-aligned.
    public init(header: [String], alignments: [Alignment] = []) {
        let marks = header.indices.map { alignments.indices.contains($0) ? alignments[$0].rawValue : Alignment.left.rawValue }
        text = Self.line(header) + "|" + marks.joined(separator: "|") + "|\n"
    }

    /// Adds one row; it should have as many cells as the header.
    public mutating func add(_ cells: [String]) {
        text += Self.line(cells)
    }

    static func line(_ cells: [String]) -> String {
        "| " + cells.joined(separator: " | ") + " |\n"
    }
}
