import TrellisNet

/// A closed interval of addresses of one family.
struct AddressInterval: Equatable {
    var lower: IPAddress
    var upper: IPAddress
}

/// Sorts and merges intervals, joining those that overlap or touch.
func mergeIntervals(_ intervals: [AddressInterval]) -> [AddressInterval] {
    let sorted = intervals.sorted { $0.lower < $1.lower }
    var out: [AddressInterval] = []
    out.reserveCapacity(sorted.count)
    for iv in sorted {
        if let last = out.last {
            // Touching: iv.lower is last.upper + 1. When last.upper is the top of the address
            // space nothing can follow it, so everything after overlaps.
            let touches = last.upper.advanced(by: 1).map { iv.lower <= $0 } ?? true
            if touches {
                if iv.upper > last.upper { out[out.count - 1].upper = iv.upper }
                continue
            }
        }
        out.append(iv)
    }
    return out
}

/// The first address in `from...to` outside every interval of `blocked` (sorted, merged);
/// steps at most once per interval, whatever the size of the range.
func firstFree(from: IPAddress, to: IPAddress, blocked: [AddressInterval]) -> IPAddress? {
    guard from <= to else { return nil }
    var x = from
    // Binary search for the first interval whose upper bound is >= x.
    var lo = 0, hi = blocked.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if blocked[mid].upper < x { lo = mid + 1 } else { hi = mid }
    }
    var i = lo
    while i < blocked.count, blocked[i].lower <= x {
        guard let next = blocked[i].upper.advanced(by: 1) else { return nil }
        x = next
        i += 1
    }
    return x <= to ? x : nil
}

/// Picks the next address of `range` round-robin: the first free one after `cursor` (the last
/// one handed out), wrapping to `rangeStart`. `used` holds the allocated addresses (any range,
/// any family); `reserved` the networks never handed out.
func pickAddress(in range: IPAMRange, cursor: IPAddress?, used: [IPAddress],
                 reserved: [IPNetwork], gateways: [IPAddress]) throws(IPAMError) -> IPAddress {
    let family = range.subnet.family
    func inRange(_ a: IPAddress) -> Bool { a >= range.rangeStart && a <= range.rangeEnd }

    var excluded: [AddressInterval] = []
    for a in [range.networkAddress, range.broadcastAddress].compactMap({ $0 }) + gateways
    where a.family == family && inRange(a) {
        excluded.append(AddressInterval(lower: a, upper: a))
    }
    for r in reserved where r.family == family {
        let lower = max(r.first, range.rangeStart), upper = min(r.last, range.rangeEnd)
        if lower <= upper { excluded.append(AddressInterval(lower: lower, upper: upper)) }
    }
    let usedInRange = Set(used.filter { $0.family == family && inRange($0) })
    let blocked = mergeIntervals(excluded + usedInRange.map { AddressInterval(lower: $0, upper: $0) })

    var start = range.rangeStart
    if let c = cursor, c.family == family, inRange(c), let next = c.advanced(by: 1), next <= range.rangeEnd {
        start = next
    }
    if let a = firstFree(from: start, to: range.rangeEnd, blocked: blocked) { return a }
    if start > range.rangeStart, let a = firstFree(from: range.rangeStart, to: range.rangeEnd, blocked: blocked) {
        return a
    }

    // Exhausted: every address is used or excluded. Report the allocated ones that are not
    // also excluded (reserved after they were handed out) as in use, the rest as excluded.
    let mergedExcluded = mergeIntervals(excluded)
    let inUse = usedInRange.filter { a in firstFree(from: a, to: a, blocked: mergedExcluded) != nil }.count
    let size = UInt128Count.distance(range.rangeStart, range.rangeEnd).plusOneSaturating()
    let rest = size.minus(UInt64(inUse))
    throw .exhausted(subnet: range.subnet, rangeStart: range.rangeStart, rangeEnd: range.rangeEnd,
                     inUse: inUse, excluded: rest.description)
}

/// A 128-bit unsigned count, enough to size any address range (saturating at 2^128 - 1).
struct UInt128Count: CustomStringConvertible {
    var hi: UInt64
    var lo: UInt64

    static func value(_ a: IPAddress) -> UInt128Count {
        switch a {
        case .v4(let v): UInt128Count(hi: 0, lo: UInt64(v))
        case .v6(let h, let l): UInt128Count(hi: h, lo: l)
        }
    }

    /// `b - a` for `a <= b`.
    static func distance(_ a: IPAddress, _ b: IPAddress) -> UInt128Count {
        let x = value(a), y = value(b)
        let (lo, borrow) = y.lo.subtractingReportingOverflow(x.lo)
        return UInt128Count(hi: y.hi &- x.hi &- (borrow ? 1 : 0), lo: lo)
    }

    func plusOneSaturating() -> UInt128Count {
        let (l, carry) = lo.addingReportingOverflow(1)
        if !carry { return UInt128Count(hi: hi, lo: l) }
        if hi == .max { return self }
        return UInt128Count(hi: hi + 1, lo: l)
    }

    /// Saturates at zero.
    func minus(_ n: UInt64) -> UInt128Count {
        let (l, borrow) = lo.subtractingReportingOverflow(n)
        if !borrow { return UInt128Count(hi: hi, lo: l) }
        if hi == 0 { return UInt128Count(hi: 0, lo: 0) }
        return UInt128Count(hi: hi - 1, lo: l)
    }

    var description: String {
        if hi == 0 { return String(lo) }
        var digits: [Character] = []
        var h = hi, l = lo
        while h != 0 || l != 0 {
            let (qh, rh) = h.quotientAndRemainder(dividingBy: 10)
            let (ql, rl) = UInt64(10).dividingFullWidth((high: rh, low: l))
            digits.append(Character(String(rl)))
            h = qh
            l = ql
        }
        return String(digits.reversed())
    }
}
