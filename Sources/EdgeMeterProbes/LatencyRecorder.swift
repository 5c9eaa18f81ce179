import Histogram

/// One thread's latencies (ns) as the load engines record them: a plain array of counts laid out
/// exactly as `Histogram<UInt64>`'s own (lowest discernible value 1, the given significant digits,
/// the same bucket and sub-bucket index for every value), so recording a latency is an index
/// computation and one increment, with no call into the HdrHistogram package (whose generic code is
/// not specialised across the package boundary) and no copy-on-write check.
///
/// `histogram` builds the `Histogram<UInt64>` that recording every value into it directly would
/// have built: the same counts per bucket, the same total, the same exact smallest non-zero and
/// largest values (`min`, `maxRecorded`, the 0th and 100th percentiles), so every figure a report
/// derives from it (percentiles, mean, standard deviation, spectrum, its bucket count) is identical.
/// Values beyond the array's range (`highestTrackableValue`, an hour by default) are kept aside and
/// recorded into that histogram as they came, which grows for them as it would have.
///
/// Touched only on its owner's thread (the fields skip run-time exclusivity checks); read after the
/// thread has ended.
final class LatencyRecorder: @unchecked Sendable {
    let highestTrackableValue: UInt64
    let significantDigits: SignificantDigits
    private let counts: UnsafeMutablePointer<UInt64>
    /// Number of counts in the array (the histogram's own count array length for `highestTrackableValue`).
    let length: Int
    // Layout (HdrHistogram's names), for lowest discernible value 1 (unit magnitude 0).
    private let subBucketHalfCountMagnitude: Int
    private let subBucketHalfCount: Int
    private let subBucketMask: UInt64
    private let leadingZeroCountBase: Int
    /// Values counted in the array, and their smallest non-zero and largest values.
    @exclusivity(unchecked) private(set) var arrayCount: UInt64 = 0
    @exclusivity(unchecked) private var minNonZero = UInt64.max
    @exclusivity(unchecked) private var maxValue: UInt64 = 0
    /// Values past the array's range, in the order recorded (none in any realistic run).
    @exclusivity(unchecked) private var overflow: [UInt64] = []

    /// - Parameters:
    ///   - highestTrackableValue: values up to this are counted in the array (its length is the
    ///     one HdrHistogram uses for this bound); larger ones go into the histogram directly.
    ///   - significantDigits: HdrHistogram's precision (1-5).
    init(highestTrackableValue: UInt64 = 3_600_000_000_000, significantDigits: SignificantDigits = .three) {
        self.highestTrackableValue = highestTrackableValue
        self.significantDigits = significantDigits
        // HdrHistogram's construction, for unit magnitude 0: single-unit resolution up to
        // 2·10^digits, rounded up to a power of two (sub-bucket count); buckets double from there.
        var largestSingleUnit: UInt64 = 2
        for _ in 0..<Int(significantDigits.rawValue) { largestSingleUnit *= 10 }
        let subBucketCountMagnitude = 64 - (largestSingleUnit - 1).leadingZeroBitCount // ceil(log2)
        subBucketHalfCountMagnitude = max(subBucketCountMagnitude, 1) - 1
        let subBucketCount = 1 << subBucketCountMagnitude
        subBucketHalfCount = subBucketCount / 2
        subBucketMask = UInt64(subBucketCount - 1)
        leadingZeroCountBase = 64 - subBucketCountMagnitude
        var smallestUntrackable = UInt64(subBucketCount)
        var buckets = 1
        while smallestUntrackable <= highestTrackableValue {
            if smallestUntrackable > UInt64.max / 2 { buckets += 1; break }
            smallestUntrackable <<= 1
            buckets += 1
        }
        length = (buckets + 1) * subBucketHalfCount
        counts = UnsafeMutablePointer<UInt64>.allocate(capacity: length)
        counts.initialize(repeating: 0, count: length)
    }

    deinit { counts.deallocate() }

    /// HdrHistogram's counts index for `value` (may be past `length`).
    @inline(__always) func index(_ value: UInt64) -> Int {
        let bucket = leadingZeroCountBase - (value | subBucketMask).leadingZeroBitCount
        let subBucket = Int(truncatingIfNeeded: value >> UInt64(truncatingIfNeeded: bucket))
        return ((bucket + 1) << subBucketHalfCountMagnitude) + subBucket - subBucketHalfCount
    }

    /// Counts one latency, in ns.
    @inline(__always) func record(_ value: UInt64) {
        let i = index(value)
        guard i < length else { overflow.append(value); return }
        counts[i] &+= 1
        arrayCount &+= 1
        if value > maxValue { maxValue = value }
        if value != 0 && value < minNonZero { minNonZero = value }
    }

    /// Every latency recorded so far, as a `Histogram<UInt64>` equal to one that recorded each
    /// value itself (see the type's documentation). Leaves the recorder unchanged.
    /// The histogram is configured as the load engines always configured theirs (sized for
    /// `highestTrackableValue`, growing past it).
    var histogram: Histogram<UInt64> {
        var h = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableValue,
                                  numberOfSignificantValueDigits: significantDigits)
        h.autoResize = true
        for v in overflow { h.record(v) }
        guard arrayCount > 0 else { return h }
        let minIndex = minNonZero == .max ? -1 : index(minNonZero)
        let maxIndex = index(maxValue)
        for i in 0..<length where counts[i] != 0 {
            var n = counts[i]
            // Any value of a bucket lands in the bucket; the exact extremes are recorded as
            // themselves, the rest at a value inside the bucket that leaves them extreme.
            if i == minIndex {
                h.record(minNonZero)
                n -= 1
                if n > 0 && i != maxIndex { h.record(minNonZero, count: n); n = 0 }
            }
            if i == maxIndex && n > 0 {
                h.record(maxValue, count: n)
                n = 0
            }
            if n > 0 { h.record(value(at: i), count: n) }
        }
        return h
    }

    /// The lowest value counted at index `i` (HdrHistogram's `valueFromIndex`).
    func value(at i: Int) -> UInt64 {
        var bucket = (i >> subBucketHalfCountMagnitude) - 1
        var subBucket = (i & (subBucketHalfCount - 1)) + subBucketHalfCount
        if bucket < 0 {
            subBucket -= subBucketHalfCount
            bucket = 0
        }
        return UInt64(subBucket) << UInt64(bucket)
    }
}
