import Foundation

// The link-impairment model: what happens to one direction of a link, on injected time. No I/O,
// no clock: the caller passes the arrival time (CLOCK_MONOTONIC nanoseconds in the forwarder and
// the proxy, any number in tests) and gets back the time the frame leaves, or why it was dropped.
// The lab's forwarder (EdgeMeterLab) and `edgemeter proxy` both run their queues on this model.

/// The jitter's distribution around the delay.
public enum JitterDistribution: String, Sendable, Equatable, Codable, CaseIterable {
    /// Each frame's delay is drawn uniformly on [delay − jitter, delay + jitter] (then clamped at 0).
    case uniform
    /// Each frame's delay is delay + X, X normal with mean 0 and σ = jitter, truncated at ±3σ
    /// (values outside are redrawn, so X follows the normal law conditioned on |X| ≤ 3σ), then the
    /// sum clamped at 0.
    case normal
}

/// Which frames are lost before they enter the link.
public enum LossModel: Sendable, Equatable, Codable {
    /// No loss.
    case none
    /// Each frame is lost independently with this probability (percent, 0–100).
    case bernoulli(percent: Double)
    /// Gilbert–Elliott, with netem's `loss gemodel p r 1-h 1-k` parameters, all in percent:
    /// `p` = P(good → bad) and `r` = P(bad → good), drawn once per frame; `lossBad` (1−h) = P(loss)
    /// in the bad state, `lossGood` (1−k) = P(loss) in the good state. Each frame is lost or not
    /// with the probability of the state it finds, then the state moves. The chain starts good.
    /// With lossBad 100 % and lossGood 0 %: bursts of mean length 100/r frames, mean loss p/(p+r).
    case gilbertElliott(p: Double, r: Double, lossBad: Double, lossGood: Double)

    /// The long-run fraction of frames lost (0–1).
    public var meanLossFraction: Double {
        switch self {
        case .none: return 0
        case .bernoulli(let pct): return pct / 100
        case .gilbertElliott(let p, let r, let bad, let good):
            guard p + r > 0 else { return good / 100 }
            let piBad = p / (p + r)
            return (piBad * bad + (1 - piBad) * good) / 100
        }
    }
}

/// The impairment of ONE direction of a link. Durations in nanoseconds.
///
/// A frame arriving at `t` goes through, in order:
/// 1. loss (`loss`): a lost frame is not forwarded, and costs no tokens;
/// 2. rate (`rateBitsPerSecond`, a token bucket of `burstBytes`, filled at the rate, starting full):
///    the frame leaves the rate stage at the first instant ≥ max(t, previous frame's leave time)
///    at which the bucket holds `bytes × 8` bits; a frame that would find more than
///    `queueLimitBytes` bytes still waiting for tokens is dropped (queue full);
/// 3. delay and jitter: leave time + a delay drawn from `distribution` (see `JitterDistribution`);
/// 4. no reordering (unless `reorder`): the release time is raised to the previous frame's release
///    time, so a frame never leaves before the one ahead of it. This raises some delays above
///    delay + jitter when jitter is large relative to the spacing of the frames.
public struct ImpairmentSpec: Sendable, Equatable, Codable {
    public var delayNanoseconds: Int64
    public var jitterNanoseconds: Int64
    public var distribution: JitterDistribution
    public var loss: LossModel
    /// Bits per second; nil = no rate limit.
    public var rateBitsPerSecond: UInt64?
    /// Token bucket depth: how many bytes may leave back to back after an idle period. At least one
    /// frame (a frame larger than the bucket waits for a full bucket and leaves it empty).
    public var burstBytes: Int
    /// Bytes allowed to wait for tokens; a frame that finds more waiting is dropped.
    public var queueLimitBytes: Int
    /// When true, a frame may leave before an earlier one (each frame keeps its own drawn delay).
    public var reorder: Bool

    public init(delayNanoseconds: Int64 = 0, jitterNanoseconds: Int64 = 0, distribution: JitterDistribution = .uniform,
                loss: LossModel = .none, rateBitsPerSecond: UInt64? = nil, burstBytes: Int = 1514,
                queueLimitBytes: Int = 1_000_000, reorder: Bool = false) {
        self.delayNanoseconds = delayNanoseconds
        self.jitterNanoseconds = jitterNanoseconds
        self.distribution = distribution
        self.loss = loss
        self.rateBitsPerSecond = rateBitsPerSecond
        self.burstBytes = burstBytes
        self.queueLimitBytes = queueLimitBytes
        self.reorder = reorder
    }

    /// Nothing to do: every frame leaves at its arrival time.
    public static let none = ImpairmentSpec()
    public var isNone: Bool { delayNanoseconds == 0 && jitterNanoseconds == 0 && loss.meanLossFraction == 0 && rateBitsPerSecond == nil }

    /// The problems with this spec as sentences a user can act on; empty = valid.
    public var problems: [String] {
        var out: [String] = []
        if delayNanoseconds < 0 || delayNanoseconds > 10_000_000_000 { out.append("delay must be between 0 and 10s") }
        if jitterNanoseconds < 0 || jitterNanoseconds > 10_000_000_000 { out.append("jitter must be between 0 and 10s") }
        func pct(_ v: Double, _ name: String) { if !(v >= 0 && v <= 100) { out.append("\(name) must be a percentage 0-100, got \(v)") } }
        switch loss {
        case .none: break
        case .bernoulli(let v): pct(v, "loss")
        case .gilbertElliott(let p, let r, let b, let g): pct(p, "gemodel p"); pct(r, "gemodel r"); pct(b, "gemodel 1-h"); pct(g, "gemodel 1-k")
        }
        if let r = rateBitsPerSecond, r < 8_000 { out.append("rate must be at least 8kbit, got \(r) bit/s") }
        if burstBytes < 1 { out.append("burst must be at least 1 byte") }
        if queueLimitBytes < 0 { out.append("queue limit must not be negative") }
        return out
    }

    /// `10mbit`, `500kbit`, `1gbit`, `64000bit` (tc's units, powers of 10) to bits per second;
    /// nil when the text is not such a rate or is outside 8kbit–100gbit.
    public static func parseRate(_ text: String) -> UInt64? {
        let t = text.lowercased()
        for (suffix, scale) in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)] where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count)), v > 0, v * scale >= 8_000, v * scale <= 100e9 else { return nil }
            return UInt64(v * scale)
        }
        return nil
    }

    /// `5%`, `0.5` (percent) to a percentage 0-100; nil otherwise.
    public static func parsePercent(_ text: String) -> Double? {
        let t = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let v = Double(t.trimmingCharacters(in: .whitespaces)), v >= 0, v <= 100 else { return nil }
        return v
    }

    /// `1%` (Bernoulli) or `gemodel 1% 25% 100% 0%` (Gilbert–Elliott; r, 1-h and 1-k default as in
    /// netem: r = 100 − p, 1-h = 100, 1-k = 0) to a loss model; nil when the text is neither.
    public static func parseLoss(_ text: String) -> LossModel? {
        let words = text.split(separator: " ").map(String.init)
        if words.first == "gemodel" {
            let v = words.dropFirst().map(parsePercent)
            guard (1...4).contains(v.count), v.allSatisfy({ $0 != nil }) else { return nil }
            let p = v[0]!
            return .gilbertElliott(p: p, r: v.count > 1 ? v[1]! : 100 - p, lossBad: v.count > 2 ? v[2]! : 100, lossGood: v.count > 3 ? v[3]! : 0)
        }
        guard words.count == 1, let p = parsePercent(words[0]) else { return nil }
        return p == 0 ? LossModel.none : .bernoulli(percent: p)
    }
}

/// What happened to one frame.
public enum Admission: Sendable, Equatable {
    /// Forward it at this monotonic time (nanoseconds, the clock the arrival was given on).
    case release(atNanoseconds: Int64)
    /// Do not forward it.
    case dropped(DropReason)

    public enum DropReason: String, Sendable, Equatable { case loss, queueFull }

    public var releaseNanoseconds: Int64? { if case .release(let t) = self { return t }; return nil }
}

/// A seeded pseudo-random generator (xoshiro256**, seeded through splitmix64): the same seed gives
/// the same loss and jitter draws, so tests and calibration runs are reproducible.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform on [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box–Muller).
    public mutating func standardNormal() -> Double {
        var u = unit()
        while u <= 0 { u = unit() }
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * unit())
    }
}

/// The state of one direction of an impaired link: feed it each frame's size and arrival time, in
/// arrival order; it answers when the frame leaves (or that it is dropped). Not thread-safe: one
/// owner per direction.
public struct Impairer: Sendable {
    public private(set) var spec: ImpairmentSpec
    private var rng: SeededRandom
    /// Gilbert–Elliott state: true = bad.
    private var geBad = false
    /// Token bucket: bits held at `bucketTime`.
    private var bucketBits: Double
    private var bucketTime: Int64 = .min
    /// Rate-stage leave times and sizes of frames that may still be waiting for tokens.
    private var waiting: [(leave: Int64, bytes: Int)] = []
    private var waitingHead = 0
    private var waitingBytes = 0
    /// Release time of the last forwarded frame (no-reorder floor).
    public private(set) var lastReleaseNanoseconds: Int64 = .min

    /// Counters since creation.
    public private(set) var admitted = 0
    public private(set) var droppedLoss = 0
    public private(set) var droppedQueueFull = 0

    public init(spec: ImpairmentSpec, seed: UInt64 = 1) {
        self.spec = spec
        rng = SeededRandom(seed: seed)
        bucketBits = Double(spec.burstBytes * 8)
    }

    /// Applies a new spec to frames admitted from now on. Frames already admitted keep the release
    /// time they were given (nothing queued is dropped or moved), and, without `reorder`, new frames
    /// still leave after them. The token bucket keeps its fill (capped at the new burst); the
    /// Gilbert–Elliott state is kept when the new loss model is also Gilbert–Elliott.
    public mutating func update(_ newSpec: ImpairmentSpec) {
        if case .gilbertElliott = newSpec.loss, case .gilbertElliott = spec.loss {} else { geBad = false }
        if spec.rateBitsPerSecond == nil && newSpec.rateBitsPerSecond != nil {
            bucketBits = Double(newSpec.burstBytes * 8); bucketTime = .min
        }
        bucketBits = min(bucketBits, Double(newSpec.burstBytes * 8))
        spec = newSpec
    }

    /// Restarts the random draws (loss, jitter) from `seed`, as a new `Impairer` with that seed
    /// would: from here on the same frames meet the same draws, run after run.
    public mutating func reseed(_ seed: UInt64) {
        rng = SeededRandom(seed: seed)
        geBad = false
    }

    /// Decides the fate of a frame of `bytes` bytes arriving at `arrivalNanoseconds` (which must not
    /// be earlier than the previous call's).
    public mutating func admit(bytes: Int, arrivalNanoseconds t: Int64) -> Admission {
        admitted += 1
        if isLost() { droppedLoss += 1; return .dropped(.loss) }

        var leave = t
        if let rate = spec.rateBitsPerSecond, rate > 0 {
            // Frames whose rate-stage leave time has passed are no longer waiting.
            while waitingHead < waiting.count && waiting[waitingHead].leave <= t {
                waitingBytes -= waiting[waitingHead].bytes; waitingHead += 1
            }
            if waitingHead > 1024 && waitingHead * 2 > waiting.count { waiting.removeFirst(waitingHead); waitingHead = 0 }
            if waitingBytes + bytes > spec.queueLimitBytes && waitingBytes > 0 { droppedQueueFull += 1; return .dropped(.queueFull) }

            let burst = Double(spec.burstBytes * 8)
            let need = Double(bytes * 8)
            let start = bucketTime == .min ? t : max(t, bucketTime)
            var tokens = bucketTime == .min ? bucketBits : min(burst, bucketBits + Double(start - bucketTime) * Double(rate) / 1e9)
            // A frame larger than the bucket waits for a full bucket.
            let target = min(need, burst)
            var wait: Int64 = 0
            if tokens < target {
                wait = Int64((((target - tokens) * 1e9) / Double(rate)).rounded(.up))
                tokens += Double(wait) * Double(rate) / 1e9
            }
            leave = start + wait
            bucketBits = max(0, tokens - need)
            bucketTime = leave
            if leave > t { waiting.append((leave, bytes)); waitingBytes += bytes }
        }

        var release = leave + drawDelay()
        if !spec.reorder { release = max(release, lastReleaseNanoseconds) }
        lastReleaseNanoseconds = max(lastReleaseNanoseconds, release)
        return .release(atNanoseconds: release)
    }

    private mutating func isLost() -> Bool {
        switch spec.loss {
        case .none: return false
        case .bernoulli(let pct):
            return pct > 0 && rng.unit() * 100 < pct
        case .gilbertElliott(let p, let r, let lossBad, let lossGood):
            let lost = rng.unit() * 100 < (geBad ? lossBad : lossGood)
            if geBad { if rng.unit() * 100 < r { geBad = false } } else { if rng.unit() * 100 < p { geBad = true } }
            return lost
        }
    }

    /// The delay for one frame: delay ± jitter per the distribution, never negative.
    private mutating func drawDelay() -> Int64 {
        let d = spec.delayNanoseconds, j = spec.jitterNanoseconds
        guard j > 0 else { return d }
        let offset: Double
        switch spec.distribution {
        case .uniform:
            offset = (rng.unit() * 2 - 1) * Double(j)
        case .normal:
            var x = rng.standardNormal()
            while abs(x) > 3 { x = rng.standardNormal() }
            offset = x * Double(j)
        }
        return max(0, d + Int64(offset.rounded()))
    }
}
