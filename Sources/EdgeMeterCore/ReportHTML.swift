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
        for sec in sections {
            s += "<section>\n<h2>\(e(sec.heading))</h2>\n"
            if let note = sec.note { s += "<p class=\"note\">\(e(note))</p>\n" }
            for c in sec.charts {
                s += "<figure id=\"\(e(c.id))\">\n\(c.svg)<figcaption>\(e(c.caption))</figcaption>\n</figure>\n"
            }
            for t in sec.tables {
                s += "<h3>\(e(t.title))</h3>\n<table>\n<thead><tr>" + t.header.map { "<th>\(e($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
                for r in t.rows {
                    s += "<tr>" + r.map { cell in Double(cell) != nil ? "<td class=\"num\">\(e(cell))</td>" : "<td>\(e(cell))</td>" }.joined() + "</tr>\n"
                }
                s += "</tbody>\n</table>\n"
            }
            s += "</section>\n"
        }
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
        for sec in sections {
            s += "\n## \(sec.heading)\n\n"
            if let note = sec.note { s += "\(note)\n\n" }
            for c in sec.charts {
                s += "![\(cell(c.title))](\(plotsDirectory)/\(c.id).svg)\n\n\(c.caption)\n\n"
            }
            for t in sec.tables {
                s += "### \(t.title)\n\n| " + t.header.map(cell).joined(separator: " | ") + " |\n|" + t.header.map { _ in "---" }.joined(separator: "|") + "|\n"
                for r in t.rows { s += "| " + r.map(cell).joined(separator: " | ") + " |\n" }
                s += "\n"
            }
        }
        return s
    }
}
