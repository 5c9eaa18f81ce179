import Foundation

/// One named set of values for a chart (e.g. the echo RTTs of one target, in ms).
public struct ChartSeries: Sendable, Equatable {
    public var name: String
    public var values: [Double]
    public init(name: String, values: [Double]) { (self.name, self.values) = (name, values) }
}

/// One round of a smoke graph: when it started (seconds from the first round), the successful
/// values it measured, and how many attempts it made (failed ones are the loss).
public struct SmokeRound: Sendable, Equatable {
    public var index: Int
    public var startSeconds: Double
    public var values: [Double]
    public var attempts: Int
    public init(index: Int, startSeconds: Double, values: [Double], attempts: Int) {
        (self.index, self.startSeconds, self.values, self.attempts) = (index, startSeconds, values, attempts)
    }
    /// Failed attempts as a percentage of attempts (0 when none were made).
    public var lossPercent: Double { attempts == 0 ? 0 : Double(attempts - values.count) / Double(attempts) * 100 }
}

/// One cell of a reachability matrix: how many probes from a source to a target got through.
public struct MatrixCell: Sendable, Equatable {
    public var reachable: Int
    public var total: Int
    /// Shown on hover: the probes and why the failed ones failed.
    public var detail: String
    public init(reachable: Int, total: Int, detail: String) { (self.reachable, self.total, self.detail) = (reachable, total, detail) }
}

/// One request of a migration run's timeline (the vehicle's CSV): when it was due (s from the
/// first), its delay (ms, due → last byte), the node that answered, whether it failed.
public struct TimelinePoint: Sendable, Equatable {
    public var seconds: Double
    public var delayMilliseconds: Double?
    public var node: String
    public var failed: Bool
    public init(seconds: Double, delayMilliseconds: Double?, node: String, failed: Bool) {
        (self.seconds, self.delayMilliseconds, self.node, self.failed) = (seconds, delayMilliseconds, node, failed)
    }
}

/// The report's chart types, each rendered to a standalone SVG element with axis titles and units.
/// Pure functions of their inputs.
public enum Charts {
    /// Most points drawn per CDF curve; larger series are drawn at evenly spaced ranks (the
    /// curve's shape is kept, the file stays small).
    public static let cdfMaxPoints = 600

    /// Empirical CDF, one step curve per series: x = value in `unit` (log10 when the data span two
    /// decades or more), y = fraction of successful samples ≤ x, in %.
    public static func cdf(title: String, quantity: String, unit: String, series: [ChartSeries]) -> String {
        var c = SVGCanvas()
        c.title(title)
        let all = series.flatMap(\.values)
        let x = AxisScale.covering(all, includeZero: false, preferLog: true, logRatio: 100)
        let y = AxisScale(lower: 0, upper: 100, log: false)
        c.xAxis(x, title: "\(quantity) (\(unit))\(x.log ? ", log scale" : "")")
        c.yAxis(y, title: "samples ≤ x (%)")
        for (i, s) in series.enumerated() where !s.values.isEmpty {
            let sorted = s.values.sorted()
            let count = sorted.count
            let step = (count + cdfMaxPoints - 1) / cdfMaxPoints
            var pts: [(Double, Double)] = [(c.plotLeft, c.plotBottom)]
            var k = 0
            while k < count {
                let px = x.position(sorted[k], c.plotLeft, c.plotRight)
                let before = y.position(Double(k) / Double(count) * 100, c.plotBottom, c.plotTop)
                let after = y.position(Double(min(count, k + step)) / Double(count) * 100, c.plotBottom, c.plotTop)
                pts.append((px, before))
                pts.append((px, after))
                k += step
            }
            pts.append((c.plotRight, c.plotTop))
            c.path(pts, stroke: ChartPalette.color(i), tooltip: "\(s.name): n=\(count), median \(fmt(sorted[count / 2])) \(unit)")
        }
        c.legend(series.enumerated().map { ("\($0.element.name) (n=\($0.element.values.count))", ChartPalette.color($0.offset)) })
        return c.render(label: title)
    }

    /// Box plots: x = categories (startup phases), one box per group (backend) in each category.
    /// Box = quartiles, line = median, whiskers = the furthest values within 1.5 IQR, dots = the
    /// values beyond. y in `unit`, log10 when the values span three decades or more.
    public static func boxPlot(title: String, unit: String, categories: [String], groups: [String],
                               values: [String: [String: [Double]]]) -> String {
        var c = SVGCanvas(width: max(760, Double(categories.count * max(1, groups.count)) * 22 + 262))
        c.title(title)
        let all = values.values.flatMap { $0.values.flatMap { $0 } }
        let y = AxisScale.covering(all, includeZero: true, preferLog: all.allSatisfy { $0 > 0 }, logRatio: 1000)
        c.yAxis(y, title: "duration (\(unit))\(y.log ? ", log scale" : "")")
        let slot = c.plotWidth / Double(max(1, categories.count))
        let boxWidth = min(28, slot * 0.8 / Double(max(1, groups.count)))
        var labels: [(Double, String)] = []
        for (ci, cat) in categories.enumerated() {
            let center = c.plotLeft + slot * (Double(ci) + 0.5)
            labels.append((Double(ci), cat))
            for (gi, g) in groups.enumerated() {
                guard let vs = values[cat]?[g], !vs.isEmpty else { continue }
                let s = vs.sorted()
                let q1 = quantile(s, 0.25), med = quantile(s, 0.5), q3 = quantile(s, 0.75)
                let iqr = q3 - q1
                let lowW = s.first { $0 >= q1 - 1.5 * iqr } ?? s[0]
                let highW = s.last { $0 <= q3 + 1.5 * iqr } ?? s[s.count - 1]
                let x0 = center - boxWidth * Double(groups.count) / 2 + boxWidth * Double(gi)
                let mid = x0 + boxWidth / 2
                let color = ChartPalette.color(gi)
                let py = { (v: Double) in y.position(v, c.plotBottom, c.plotTop) }
                c.line(mid, py(lowW), mid, py(q1), stroke: color)
                c.line(mid, py(q3), mid, py(highW), stroke: color)
                c.line(mid - boxWidth / 4, py(lowW), mid + boxWidth / 4, py(lowW), stroke: color)
                c.line(mid - boxWidth / 4, py(highW), mid + boxWidth / 4, py(highW), stroke: color)
                c.rect(x0 + 2, py(q3), boxWidth - 4, max(1, py(q1) - py(q3)), fill: color, opacity: 0.35, stroke: color,
                       tooltip: "\(g) \(cat): n=\(s.count), median \(fmt(med)) \(unit), IQR \(fmt(q1))–\(fmt(q3)) \(unit)")
                c.line(x0 + 2, py(med), x0 + boxWidth - 2, py(med), stroke: color, width: 2.2)
                for v in s where v < lowW || v > highW { c.circle(mid, py(v), r: 2.2, fill: color) }
            }
        }
        // Category labels under each slot.
        c.line(c.plotLeft, c.plotBottom, c.plotRight, c.plotBottom, stroke: "#444")
        for (ci, label) in labels { c.text(label, x: c.plotLeft + slot * (ci + 0.5), y: c.plotBottom + 18, anchor: "middle", size: 10.5) }
        c.text("phase", x: (c.plotLeft + c.plotRight) / 2, y: c.height - 12, anchor: "middle", size: 12)
        c.legend(groups.enumerated().map { ($0.element, ChartPalette.color($0.offset)) })
        return c.render(label: title)
    }

    /// Loss colours of the smoke graph's median line (SmokePing's idea: the line's colour says
    /// how much of the round was lost).
    public static let lossColors: [(upTo: Double, label: String, color: String)] = [
        (0, "0 % loss", "#1a9641"), (5, "≤ 5 %", "#2c7bb6"), (20, "≤ 20 %", "#7b3294"), (50, "≤ 50 %", "#e66101"), (100, "> 50 %", "#d7191c"),
    ]

    static func lossColor(_ percent: Double) -> String {
        lossColors.first { percent <= $0.upTo + 1e-9 }?.color ?? "#d7191c"
    }

    /// SmokePing-style graph: for each round, its spread as smoke (min–max lightest, p10–p90,
    /// p25–p75 darkest) across the round's slot, and the median as a line coloured by the round's
    /// loss; a round with every attempt lost is a red mark at the top. x = time since the first
    /// round started, y = the quantity in `unit`.
    public static func smoke(title: String, quantity: String, unit: String, rounds: [SmokeRound]) -> String {
        var c = SVGCanvas()
        c.title(title)
        let span = rounds.map(\.startSeconds).max() ?? 0
        let (timeUnit, divisor) = span > 36_000 ? ("h", 3600.0) : span > 600 ? ("min", 60.0) : ("s", 1.0)
        let starts = rounds.map { $0.startSeconds / divisor }
        let slotWidth: Double = {
            let sorted = starts.sorted()
            let gaps = zip(sorted.dropFirst(), sorted).map { $0 - $1 }.filter { $0 > 0 }
            return gaps.min() ?? 1
        }()
        let x = AxisScale.covering(starts + [(starts.max() ?? 0) + slotWidth], includeZero: true)
        let y = AxisScale.covering(rounds.flatMap(\.values), includeZero: true)
        c.xAxis(x, title: "time since the first round (\(timeUnit)); \(rounds.count) rounds")
        c.yAxis(y, title: "\(quantity) (\(unit))")
        let px = { (v: Double) in x.position(v, c.plotLeft, c.plotRight) }
        let py = { (v: Double) in y.position(v, c.plotBottom, c.plotTop) }
        var medianPoints: [(x0: Double, x1: Double, y: Double, color: String)] = []
        for (r, start) in zip(rounds, starts) {
            let x0 = px(start), x1 = px(start + slotWidth)
            let w = max(1, x1 - x0)
            guard !r.values.isEmpty else {
                c.rect(x0, c.plotTop, w, 6, fill: "#d7191c", tooltip: "round \(r.index): all \(r.attempts) attempts lost")
                continue
            }
            let s = r.values.sorted()
            for (lo, hi, opacity) in [(0.0, 1.0, 0.18), (0.1, 0.9, 0.25), (0.25, 0.75, 0.35)] {
                let top = py(quantile(s, hi)), bottom = py(quantile(s, lo))
                c.rect(x0, top, w, max(0.8, bottom - top), fill: "#555", opacity: opacity)
            }
            let med = quantile(s, 0.5)
            let color = lossColor(r.lossPercent)
            c.rect(x0, py(med) - 1.2, w, 2.4, fill: color,
                   tooltip: "round \(r.index): median \(fmt(med)) \(unit), min \(fmt(s[0])), max \(fmt(s[s.count - 1])), loss \(fmt(r.lossPercent)) % of \(r.attempts)")
            medianPoints.append((x0, x1, py(med), color))
        }
        // Thin connectors between successive medians, so the trend reads as a line.
        for (a, b) in zip(medianPoints, medianPoints.dropFirst()) {
            c.line(a.x1, a.y, b.x0, b.y, stroke: b.color, width: 1)
        }
        c.legend(lossColors.map { ($0.label, $0.color) } + [("spread: min–max, p10–p90, p25–p75", "#999")], title: "median line: loss")
        return c.render(label: title)
    }

    /// Reachability matrix: rows = sources, columns = targets, each cell green (every probe got
    /// through), amber (some), red (none) or grey (not probed), with `reachable/total`.
    public static func matrix(title: String, rows: [String], columns: [String], cells: [String: [String: MatrixCell]]) -> String {
        let cellW = 64.0, cellH = 26.0
        let left = 16 + min(170, Double((rows.map(\.count).max() ?? 4)) * 6.5 + 12)
        let top = 44 + min(150, Double((columns.map(\.count).max() ?? 4)) * 6 + 14)
        let width = max(420, left + cellW * Double(columns.count) + 180)
        let height = top + cellH * Double(rows.count) + 40
        var c = SVGCanvas(width: width, height: height, left: left, top: top, right: width - left - cellW * Double(columns.count), bottom: 40)
        c.title(title)
        for (j, col) in columns.enumerated() {
            let cx = left + cellW * (Double(j) + 0.5)
            c.text(col, x: cx, y: top - 8, anchor: "start", size: 10.5, rotate: -40)
        }
        for (i, row) in rows.enumerated() {
            let y0 = top + cellH * Double(i)
            c.text(row, x: left - 8, y: y0 + cellH / 2 + 4, anchor: "end", size: 10.5)
            for (j, col) in columns.enumerated() {
                let x0 = left + cellW * Double(j)
                guard let cell = cells[row]?[col], cell.total > 0 else {
                    c.rect(x0 + 1, y0 + 1, cellW - 2, cellH - 2, fill: "#eeeeee", tooltip: "\(row) → \(col): not probed")
                    continue
                }
                let fill = cell.reachable == cell.total ? "#a6dba0" : cell.reachable == 0 ? "#f4a582" : "#fee08b"
                c.rect(x0 + 1, y0 + 1, cellW - 2, cellH - 2, fill: fill, tooltip: "\(row) → \(col): \(cell.detail)")
                c.text("\(cell.reachable)/\(cell.total)", x: x0 + cellW / 2, y: y0 + cellH / 2 + 4, anchor: "middle", size: 11)
            }
        }
        c.text("rows: from (source node); columns: to (target); cell: probes that got through / probes", x: 16, y: height - 14, size: 11, fill: "#555")
        c.legend([("all reachable", "#a6dba0"), ("some", "#fee08b"), ("none", "#f4a582"), ("not probed", "#eeeeee")])
        return c.render(label: title)
    }

    /// Migration timeline: each request's delay (ms, y) at its due time (s since the first, x),
    /// coloured by the node that answered; failed requests as red marks at the top; dashed
    /// vertical lines where the answering node changed (the switch).
    public static func timeline(title: String, points: [TimelinePoint]) -> String {
        var c = SVGCanvas()
        c.title(title)
        let x = AxisScale.covering(points.map(\.seconds), includeZero: true)
        let y = AxisScale.covering(points.compactMap(\.delayMilliseconds), includeZero: true)
        c.xAxis(x, title: "time since the first request was due (s)")
        c.yAxis(y, title: "delay, due → last byte (ms)")
        var nodes: [String] = []
        for p in points where !p.failed && !nodes.contains(p.node) { nodes.append(p.node) }
        var last: String?
        for p in points.sorted(by: { $0.seconds < $1.seconds }) where !p.failed {
            if let l = last, l != p.node {
                let sx = x.position(p.seconds, c.plotLeft, c.plotRight)
                c.line(sx, c.plotTop, sx, c.plotBottom, stroke: "#333", width: 1.2, dash: "5 3")
                c.text("→ \(p.node)", x: sx + 3, y: c.plotTop + 12, size: 10)
            }
            last = p.node
        }
        let step = max(1, points.count / 4000)
        for (k, p) in points.enumerated() where k % step == 0 || p.failed {
            let px = x.position(p.seconds, c.plotLeft, c.plotRight)
            if p.failed || p.delayMilliseconds == nil {
                c.rect(px - 1, c.plotTop - 6, 2, 6, fill: "#d7191c")
            } else if let d = p.delayMilliseconds {
                let color = ChartPalette.color(nodes.firstIndex(of: p.node) ?? 0)
                c.circle(px, y.position(d, c.plotBottom, c.plotTop), r: 1.8, fill: color)
            }
        }
        let failed = points.filter(\.failed).count
        c.legend(nodes.enumerated().map { ("answered by \($0.element)", ChartPalette.color($0.offset)) }
                 + [("failed (\(failed))", "#d7191c")])
        return c.render(label: title)
    }

    /// Linear interpolation between closest ranks of a sorted array (R type 7).
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let h = Double(sorted.count - 1) * q
        let lo = Int(h.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    static func fmt(_ v: Double) -> String { String(format: "%.3g", v) }
}
