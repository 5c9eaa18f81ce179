import Foundation

/// report.html and report.md of a run. Pure: the texts from the sections.
///
/// report.html is one self-contained file: inline CSS, the charts as inline `<svg>` elements, no
/// script, no font, no image and no link to anything outside the file, so it opens offline and
/// fetches nothing. report.md shows the same charts as files (`plots/<id>.svg`, written beside it).
public enum ReportHTML {
    static let css = """
        body{font-family:sans-serif;margin:24px auto;max-width:1100px;color:#222;line-height:1.4}
        h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
        figure{margin:16px 0}figcaption{font-size:13px;color:#555;max-width:760px}
        svg.chart{max-width:100%;height:auto;border:1px solid #ddd}
        table{border-collapse:collapse;font-size:12px;margin:8px 0 20px;display:block;overflow-x:auto;max-width:100%}
        th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f2f2f2}
        td.num{text-align:right;font-variant-numeric:tabular-nums}
        dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:13px}dl.meta dt{color:#555}
        .note{font-size:13px;color:#8a4b00}
        """

    /// The HTML page. `meta` is shown as a definition list under the title (run id, host, ...).
    public static func html(title: String, meta: [(String, String)], sections: [ReportSection]) -> String {
        let e = SVGCanvas.escape
        var s = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>\(e(title))</title>\n<style>\n\(css)\n</style>\n</head>\n<body>\n"
        s += "<h1>\(e(title))</h1>\n"
        if !meta.isEmpty {
            s += "<dl class=\"meta\">" + meta.map { "<dt>\(e($0.0))</dt><dd>\(e($0.1))</dd>" }.joined() + "</dl>\n"
        }
        if sections.isEmpty { s += "<p class=\"note\">This run recorded nothing that can be charted.</p>\n" }
        s += render(sections, SectionMarkup(
            open: { "<section>\n<h2>\(e($0.heading))</h2>\n" + ($0.note.map { "<p class=\"note\">\(e($0))</p>\n" } ?? "") },
            chart: { "<figure id=\"\(e($0.id))\">\n\($0.svg)<figcaption>\(e($0.caption))</figcaption>\n</figure>\n" },
            table: { t in
                let rows = t.rows.map { r in
                    "<tr>" + r.map { cell in Double(cell) != nil ? "<td class=\"num\">\(e(cell))</td>" : "<td>\(e(cell))</td>" }.joined() + "</tr>\n"
                }
                return "<h3>\(e(t.title))</h3>\n<table>\n<thead><tr>" + t.header.map { "<th>\(e($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
                    + rows.joined() + "</tbody>\n</table>\n"
            },
            close: "</section>\n"))
        return s + "</body>\n</html>\n"
    }

    /// report.md: the same sections, each chart as `![title](plots/<id>.svg)` with its caption,
    /// tables as Markdown tables.
    public static func markdown(title: String, meta: [(String, String)], sections: [ReportSection], plotsDirectory: String = "plots") -> String {
        func cell(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
        var s = "# \(title)\n\n"
        for (k, v) in meta { s += "- \(k): \(v)\n" }
        if !meta.isEmpty { s += "\n" }
        s += "The same charts, inline, are in report.html (one file, opens offline).\n"
        return s + render(sections, SectionMarkup(
            open: { "\n## \($0.heading)\n\n" + ($0.note.map { "\($0)\n\n" } ?? "") },
            chart: { "![\(cell($0.title))](\(plotsDirectory)/\($0.id).svg)\n\n\($0.caption)\n\n" },
            table: { t in
                var table = MarkdownTable(header: t.header.map(cell))
                for r in t.rows { table.add(r.map(cell)) }
                return "### \(t.title)\n\n" + table.text + "\n"
            },
            close: ""))
    }

    /// How one format writes the parts of a section: its opening (heading and note), a chart, a
    /// table, its closing.
    struct SectionMarkup {
        var open: (ReportSection) -> String
        var chart: (ReportChart) -> String
        var table: (ReportTable) -> String
        var close: String
    }

    /// The sections in one format. Both pages are written by this one walk, so report.md holds
    /// what report.html holds, in the same order: per section its opening, charts, tables, closing.
    static func render(_ sections: [ReportSection], _ m: SectionMarkup) -> String {
        sections.map { m.open($0) + $0.charts.map(m.chart).joined() + $0.tables.map(m.table).joined() + m.close }.joined()
    }
}
