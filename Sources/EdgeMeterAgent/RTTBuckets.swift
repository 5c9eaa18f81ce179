import Foundation

/// The latency histogram's bucket upper bounds, in seconds (Prometheus `le`), fitted to network
/// round trips: from a loopback echo (≈ 50 µs) through a LAN and a metro edge (0.2-5 ms) to a cloud
/// region across a continent (20-300 ms), and the probe timeouts above (1-2.5 s).
///
/// Widths: at most 2× between neighbours below 1 ms, at most 1.5× (mostly) from 2 ms to 300 ms,
/// where edge-versus-cloud decisions are taken. `histogram_quantile` interpolates linearly inside a
/// bucket, so a quantile read from Prometheus is exact to within the width of the bucket it falls
/// in (e.g. a true p50 of 12 ms reads between 10 and 15 ms). Values above 2.5 s count in `+Inf`.
public enum RTTBuckets {
    public static let seconds: [Double] = [
        0.000_025, 0.000_05, 0.000_1, 0.000_2, 0.000_5,
        0.001, 0.002, 0.003, 0.005, 0.007_5,
        0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
        0.1, 0.15, 0.2, 0.3, 0.5,
        1, 2.5,
    ]

    /// The bucket a value in seconds falls in: its lower and upper bound (`le`); the upper is
    /// `+Inf` above the last bound. Prometheus buckets are upper-inclusive.
    public static func bucket(of value: Double) -> (lower: Double, upper: Double) {
        var lower = 0.0
        for b in seconds {
            if value <= b { return (lower, b) }
            lower = b
        }
        return (lower, .infinity)
    }
}
