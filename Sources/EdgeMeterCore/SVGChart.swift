import Foundation

/// A small SVG writer for the report's charts: a fixed-size canvas with a plot area, axes with
/// "nice" ticks (linear or log10), axis titles with units, a legend, and text escaped for XML.
/// Pure: it builds a string; nothing is read or written. The output is a standalone `<svg>` element
/// (with `xmlns`), valid both inline in HTML and as a `.svg` file.
public struct SVGCanvas {
    public let width: Double
    public let height: Double
    /// The plot area (inside the axes), in canvas coordinates.
    public let plotLeft: Double, plotTop: Double, plotRight: Double, plotBottom: Double
    private var parts: [String] = []

    public init(width: Double = 760, height: Double = 380, left: Double = 72, top: Double = 40, right: Double = 190, bottom: Double = 56) {
        (self.width, self.height) = (width, height)
        (plotLeft, plotTop, plotRight, plotBottom) = (left, top, width - right, height - bottom)
    }

    public var plotWidth: Double { plotRight - plotLeft }
    public var plotHeight: Double { plotBottom - plotTop }

    /// Appends raw SVG markup (callers escape text with `SVGCanvas.escape`).
    public mutating func add(_ element: String) { parts.append(element) }

    public mutating func title(_ text: String) {
        add(#"<text class="title" x="\#(svgNum(width / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\#(Self.escape(text))</text>"#)
    }

    public mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width w: Double = 1, dash: String? = nil) {
        add(#"<line x1="\#(svgNum(x1))" y1="\#(svgNum(y1))" x2="\#(svgNum(x2))" y2="\#(svgNum(y2))" stroke="\#(stroke)" stroke-width="\#(svgNum(w))"\#(dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/>"#)
    }

    public mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, opacity: Double = 1, stroke: String? = nil,
                              tooltip: String? = nil) {
        let s = stroke.map { " stroke=\"\($0)\"" } ?? ""
        let o = opacity < 1 ? " fill-opacity=\"\(svgNum(opacity))\"" : ""
        let t = tooltip.map { "<title>\(Self.escape($0))</title>" } ?? ""
        add(#"<rect x="\#(svgNum(x))" y="\#(svgNum(y))" width="\#(svgNum(max(0, w)))" height="\#(svgNum(max(0, h)))" fill="\#(fill)"\#(o)\#(s)>\#(t)</rect>"#)
    }

    public mutating func circle(_ x: Double, _ y: Double, r: Double, fill: String, tooltip: String? = nil) {
        let t = tooltip.map { "<title>\(Self.escape($0))</title>" } ?? ""
        add(#"<circle cx="\#(svgNum(x))" cy="\#(svgNum(y))" r="\#(svgNum(r))" fill="\#(fill)">\#(t)</circle>"#)
    }

    /// A polyline as a path (`M x y L ...`); nothing for fewer than one point.
    public mutating func path(_ points: [(Double, Double)], stroke: String, width w: Double = 1.8, tooltip: String? = nil) {
        guard let first = points.first else { return }
        var d = "M\(svgNum(first.0)) \(svgNum(first.1))"
        for p in points.dropFirst() { d += " L\(svgNum(p.0)) \(svgNum(p.1))" }
        let t = tooltip.map { "<title>\(Self.escape($0))</title>" } ?? ""
        add(#"<path d="\#(d)" fill="none" stroke="\#(stroke)" stroke-width="\#(svgNum(w))" stroke-linejoin="round">\#(t)</path>"#)
    }

    public mutating func text(_ s: String, x: Double, y: Double, anchor: String = "start", size: Double = 11, fill: String = "#222",
                              rotate: Double? = nil) {
        let r = rotate.map { " transform=\"rotate(\(svgNum($0)) \(svgNum(x)) \(svgNum(y)))\"" } ?? ""
        add(#"<text x="\#(svgNum(x))" y="\#(svgNum(y))" text-anchor="\#(anchor)" font-size="\#(svgNum(size))" fill="\#(fill)"\#(r)>\#(Self.escape(s))</text>"#)
    }

    /// Horizontal axis at the bottom of the plot area: ticks, grid lines, labels and the title.
    public mutating func xAxis(_ scale: AxisScale, title: String, labels: [(Double, String)]? = nil) {
        line(plotLeft, plotBottom, plotRight, plotBottom, stroke: "#444")
        for (v, label) in labels ?? scale.ticks().map({ ($0, scale.label($0)) }) {
            let x = scale.position(v, plotLeft, plotRight)
            line(x, plotTop, x, plotBottom, stroke: "#e4e4e4")
            line(x, plotBottom, x, plotBottom + 5, stroke: "#444")
            text(label, x: x, y: plotBottom + 18, anchor: "middle", size: 10)
        }
        text(title, x: (plotLeft + plotRight) / 2, y: height - 12, anchor: "middle", size: 12)
    }

    /// Vertical axis on the left of the plot area.
    public mutating func yAxis(_ scale: AxisScale, title: String) {
        line(plotLeft, plotTop, plotLeft, plotBottom, stroke: "#444")
        for v in scale.ticks() {
            let y = scale.position(v, plotBottom, plotTop)
            line(plotLeft, y, plotRight, y, stroke: "#e4e4e4")
            line(plotLeft - 5, y, plotLeft, y, stroke: "#444")
            text(scale.label(v), x: plotLeft - 8, y: y + 3.5, anchor: "end", size: 10)
        }
        text(title, x: 16, y: (plotTop + plotBottom) / 2, anchor: "middle", size: 12, rotate: -90)
    }

    /// A legend to the right of the plot area: one swatch and name per entry (names shortened to fit).
    public mutating func legend(_ entries: [(name: String, color: String)], title: String? = nil) {
        var y = plotTop + 4
        if let title { text(title, x: plotRight + 14, y: y + 4, size: 11, fill: "#555"); y += 16 }
        for e in entries {
            rect(plotRight + 14, y - 5, 14, 9, fill: e.color)
            let name = e.name.count > 26 ? String(e.name.prefix(25)) + "…" : e.name
            text(name, x: plotRight + 34, y: y + 3.5, size: 10.5)
            y += 16
        }
    }

    /// The finished element. `role="img"` and `<title>` name the chart for screen readers.
    public func render(label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" width=\"\(svgNum(width))\" height=\"\(svgNum(height))\" viewBox=\"0 0 \(svgNum(width)) \(svgNum(height))\" font-family=\"sans-serif\">"
            + "<title>\(Self.escape(label))</title><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>" + parts.joined() + "</svg>\n"
    }

    /// Escapes `&`, `<`, `>` and quotes for XML text and attribute values.
    public static func escape(_ s: String) -> String { TextEscaping.xmlText(s) }
}

/// Numbers in SVG attributes: two decimals at most, no exponent.
@inline(__always) func svgNum(_ v: Double) -> String {
    guard v.isFinite else { return "0" }
    let r = (v * 100).rounded() / 100
    return r == r.rounded() ? String(Int(r)) : String(format: "%.2f", r)
}

/// A value axis: the domain it shows and how (linear, or log10 for data spanning decades).
public struct AxisScale: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var log: Bool

    /// An axis covering `values` (with a little headroom on a linear axis starting at `zero` when asked).
    /// Log is chosen when asked and every value is positive and the data span at least `logRatio`.
    public static func covering(_ values: [Double], includeZero: Bool = true, preferLog: Bool = false, logRatio: Double = 50) -> AxisScale {
        let finite = values.filter(\.isFinite)
        guard var lo = finite.min(), var hi = finite.max() else { return AxisScale(lower: 0, upper: 1, log: false) }
        if preferLog, lo > 0, hi / lo >= logRatio {
            return AxisScale(lower: pow(10, floor(log10(lo))), upper: pow(10, ceil(log10(hi))), log: true)
        }
        if includeZero { lo = Swift.min(0, lo) }
        if hi == lo { hi = lo + (lo == 0 ? 1 : abs(lo) * 0.1) }
        let step = niceStep((hi - lo) / 5)
        return AxisScale(lower: floor(lo / step) * step, upper: ceil(hi * 1.02 / step) * step, log: false)
    }

    /// Where `v` falls between canvas coordinates `from` (the lower end) and `to` (the upper end).
    public func position(_ v: Double, _ from: Double, _ to: Double) -> Double {
        let f: Double
        if log {
            let lv = log10(Swift.max(v, lower)), l0 = log10(lower), l1 = log10(upper)
            f = l1 > l0 ? (lv - l0) / (l1 - l0) : 0
        } else {
            f = upper > lower ? (v - lower) / (upper - lower) : 0
        }
        return from + (to - from) * Swift.min(1, Swift.max(0, f))
    }

    /// Tick values: powers of ten on a log axis, about five round values on a linear one.
    public func ticks() -> [Double] {
        if log {
            var out: [Double] = []
            var v = lower
            while v <= upper * 1.0001 { out.append(v); v *= 10 }
            return out
        }
        let step = Self.niceStep((upper - lower) / 5)
        var out: [Double] = []
        var v = (lower / step).rounded(.up) * step
        while v <= upper + step * 1e-9 { out.append(v); v += step }
        return out
    }

    /// A tick label: as few digits as the step needs.
    public func label(_ v: Double) -> String {
        if abs(v) < 1e-12 { return "0" }
        if abs(v) >= 1 && v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
        let s = String(format: "%.4g", v)
        return s
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    public static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let p = pow(10, floor(log10(raw)))
        for m in [1.0, 2, 5, 10] where m * p >= raw { return m * p }
        return 10 * p
    }
}

/// Series colours (colour-blind safe, Okabe–Ito order, then darker tones).
public enum ChartPalette {
    public static let series = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
                                "#7f3b08", "#2d004b"]
    public static func color(_ index: Int) -> String { series[index % series.count] }
}
