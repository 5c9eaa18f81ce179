/// The exact sum of a series of doubles, rounded once at the end (Shewchuk's non-overlapping
/// partials, the algorithm of Python's `math.fsum`): the result is the correctly rounded value of
/// the true sum, so it does not depend on the order the values came in. Two sums merged
/// (`add(_ other:)`) give bit for bit what one sum over both series gives: `Summarizer` relies on
/// this to summarise a file in parallel parts.
///
/// Memory: a few doubles (the partials; two or three for measured values). A sum whose partials
/// overflow (values near `Double.greatestFiniteMagnitude`) gives the plain running sum (±inf or nan),
/// as adding the values in order does.
public struct ExactSum: Sendable, Equatable {
    private var partials: [Double] = []
    /// The plain running sum, used only when a partial overflowed.
    private var plain = 0.0
    private var overflowed = false

    public init() {}

    public mutating func add(_ value: Double) {
        plain += value
        guard !overflowed else { return }
        var x = value
        var i = 0
        let n = partials.count
        var bad = false
        partials.withUnsafeMutableBufferPointer { p in
            for j in 0..<n {
                var y = p[j]
                if Swift.abs(x) < Swift.abs(y) { swap(&x, &y) }
                let hi = x + y
                let lo = y - (hi - x)
                if lo != 0 { p[i] = lo; i += 1 }
                x = hi
            }
            if i < n { p[i] = x }
        }
        if !x.isFinite { bad = true }
        if i < n {
            if i + 1 < n { partials.removeLast(n - i - 1) }
        } else {
            partials.append(x)
        }
        if bad { overflowed = true }
    }

    /// Adds every value of `other` (exactly: the partials are added one by one).
    public mutating func add(_ other: ExactSum) {
        let plainTotal = plain + other.plain
        if other.overflowed { overflowed = true }
        if !overflowed { for p in other.partials { add(p) } }
        plain = plainTotal
    }

    /// The sum, correctly rounded (round half to even) from the exact value.
    public var value: Double {
        if overflowed { return plain }
        var n = partials.count
        guard n > 0 else { return 0 }
        n -= 1
        var hi = partials[n]
        var lo = 0.0
        while n > 0 {
            let x = hi
            n -= 1
            let y = partials[n]
            hi = x + y
            let yr = hi - x
            lo = y - yr
            if lo != 0 { break }
        }
        // Round half to even: when the rest below `lo` has its sign, `hi + 2·lo` is the nearer value.
        if n > 0 && ((lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0)) {
            let y = lo * 2
            let x = hi + y
            if y == x - hi { hi = x }
        }
        return hi
    }
}
