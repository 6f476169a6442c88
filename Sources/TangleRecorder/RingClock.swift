import CTangleSupport

/// Turns the times in the recording threads' rings into CLOCK_MONOTONIC ns (see "The ring's clock"
/// in trace_support.h). With TSC ticks in the ring, the writer samples (ticks, ns) pairs — at start
/// and at every drain, after reading the rings' heads, so every record it drains lies before the
/// newest pair — and interpolates between the two pairs around each record. Each pair is within
/// about ±10 ns of the kernel's own mapping, so is every converted time; ticks outside the pairs
/// kept (a thread preempted for long between its timestamp and its publication) are extrapolated
/// with the slope over all pairs kept.
struct RingClock {
    private(set) var tsc: Bool
    private var ticks: [UInt64] = []
    private var nanos: [UInt64] = []
    /// Pairs closer than this (10 µs) would give a slope dominated by the pairs' own error.
    private var minSpacing: UInt64 = 0
    /// ns per tick as 32.32 fixed point: over the last segment, and over every pair kept. (A
    /// 128-bit division per event cost more than formatting the event.)
    private var lastSlope: UInt64 = 0
    private var longSlope: UInt64 = 0
    static let maxPairs = 4096

    init() {
        tsc = tangle_trace_clock_tsc != 0
        guard tsc else { return }
        var c: UInt64 = 0, m: UInt64 = 0
        _ = tangle_clock_pair(&c, &m)
        ticks.append(c)
        nanos.append(m)
        // A second pair 10 µs later gives the first slope (spent once per file).
        var c2: UInt64 = 0, m2: UInt64 = 0
        repeat { _ = tangle_clock_pair(&c2, &m2) } while (m2 &- m < 10_000 || c2 <= c) && m2 &- m < 1_000_000
        if c2 <= c {
            // A TSC that does not advance cannot time anything: back to clock_gettime (no record
            // has been taken yet — the writer exists before the first one).
            tangle_trace_clock_tsc = 0
            tsc = false
            ticks = []
            nanos = []
            return
        }
        ticks.append(c2)
        nanos.append(m2)
        minSpacing = c2 - c
        updateSlopes()
    }

    private static func slope(_ dn: UInt64, _ dt: UInt64) -> UInt64 {
        guard dn >> 32 < dt else { return UInt64.max }
        return dt.dividingFullWidth((high: dn >> 32, low: dn << 32)).quotient
    }

    private mutating func updateSlopes() {
        let n = ticks.count
        lastSlope = RingClock.slope(nanos[n - 1] - nanos[n - 2], ticks[n - 1] - ticks[n - 2])
        longSlope = RingClock.slope(nanos[n - 1] - nanos[0], ticks[n - 1] - ticks[0])
    }

    /// `d` ticks in ns at a 32.32 slope.
    @inline(__always) private static func scale(_ d: UInt64, _ slope: UInt64) -> UInt64 {
        let p = d.multipliedFullWidth(by: slope)
        return p.high << 32 | p.low >> 32
    }

    /// Samples a new pair (call after reading the heads of the rings about to be drained).
    mutating func sample() {
        guard tsc else { return }
        var c: UInt64 = 0, m: UInt64 = 0
        _ = tangle_clock_pair(&c, &m)
        guard let lastC = ticks.last, let lastM = nanos.last, c > lastC &+ minSpacing, m > lastM else { return }
        if ticks.count >= RingClock.maxPairs {
            ticks.removeFirst(RingClock.maxPairs / 2)
            nanos.removeFirst(RingClock.maxPairs / 2)
        }
        ticks.append(c)
        nanos.append(m)
        updateSlopes()
    }

    /// CLOCK_MONOTONIC ns of a ring time.
    @inline(__always) func nanoseconds(_ t: UInt64) -> UInt64 {
        guard tsc else { return t }
        let n = ticks.count
        // The common cases: a record from the last segment, or after the last pair (by less than
        // the 10 µs spacing, or a little more; < 2^32 ticks keeps the fixed point exact).
        let last = ticks[n - 1]
        if t >= last {
            if t - last < 1 << 32 { return nanos[n - 1] &+ RingClock.scale(t - last, longSlope) }
        } else if t >= ticks[n - 2] {
            return nanos[n - 2] &+ RingClock.scale(t - ticks[n - 2], lastSlope)
        } else if n >= 3 && t >= ticks[n - 3] {
            // Recorded between the previous round's head read and its pair: common while the
            // writer follows a busy thread round after round.
            return interpolate(n - 3, t)
        }
        return slowPath(t)
    }

    @inline(never) private func slowPath(_ t: UInt64) -> UInt64 {
        if t >= ticks[ticks.count - 1] { return extrapolate(from: ticks.count - 1, t) }
        if t < ticks[0] { return extrapolate(from: 0, t) }
        // The last pair at or before t (ticks are strictly increasing).
        var lo = 0, hi = ticks.count - 2
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if ticks[mid] <= t { lo = mid } else { hi = mid - 1 }
        }
        return interpolate(lo, t)
    }

    /// Between pair i and pair i + 1 (ticks[i] <= t < ticks[i + 1]).
    @inline(__always) private func interpolate(_ i: Int, _ t: UInt64) -> UInt64 {
        let dt = ticks[i + 1] - ticks[i]
        let dn = nanos[i + 1] - nanos[i]
        let p = (t - ticks[i]).multipliedFullWidth(by: dn)
        return nanos[i] + dt.dividingFullWidth(p).quotient
    }

    /// From pair i with the slope over every pair kept.
    private func extrapolate(from i: Int, _ t: UInt64) -> UInt64 {
        let n = ticks.count
        let dt = ticks[n - 1] - ticks[0]
        let dn = nanos[n - 1] - nanos[0]
        if t >= ticks[i] {
            let p = (t - ticks[i]).multipliedFullWidth(by: dn)
            guard p.high < dt else { return UInt64.max }  // (centuries away: cannot happen)
            return nanos[i] &+ dt.dividingFullWidth(p).quotient
        }
        let p = (ticks[i] - t).multipliedFullWidth(by: dn)
        guard p.high < dt else { return 0 }
        let back = dt.dividingFullWidth(p).quotient
        return back < nanos[i] ? nanos[i] - back : 0
    }
}
