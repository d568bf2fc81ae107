#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, stored as its network-order bytes.
///
/// Pure value type: parsing and formatting go through `inet_pton`/`inet_ntop`, which touch no
/// kernel state, so everything built on it stays unit-testable without root.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4(UInt32)                      // host-order integer of the 4 bytes
    case v6(UInt64, UInt64)              // high and low halves, host-order

    public enum Family: Sendable, Hashable { case v4, v6 }

    public var family: Family {
        switch self { case .v4: .v4; case .v6: .v6 }
    }
    public var bitWidth: Int { family == .v4 ? 32 : 128 }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; nil when it is neither.
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if s.contains(":") {
            var raw = in6_addr()
            guard inet_pton(AF_INET6, s, &raw) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            self.init(bytes: bytes)
        } else {
            var raw = in_addr()
            guard inet_pton(AF_INET, s, &raw) == 1 else { return nil }
            self = .v4(UInt32(bigEndian: raw.s_addr))
        }
    }

    /// From 4 or 16 network-order bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let hi = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let lo = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(hi, lo)
        default:
            return nil
        }
    }

    /// 169.254.0.0/16 or fe80::/10: addresses the kernel gives links itself.
    public var isLinkLocal: Bool {
        switch self {
        case .v4(let v): v >> 16 == 0xA9FE
        case .v6(let hi, _): hi >> 54 == 0x3FA
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let v):
            return (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
        case .v6(let hi, let lo):
            return (0..<8).map { UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64($0))) }
                + (0..<8).map { UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64($0))) }
        }
    }

    public var description: String {
        var b = bytes
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let af = family == .v4 ? AF_INET : AF_INET6
        _ = inet_ntop(af, &b, &out, socklen_t(out.count))
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address `n` steps further (negative: back); nil when that leaves the family's space.
    public func advanced(by n: Int64) -> IPAddress? {
        switch self {
        case .v4(let v):
            let r = Int64(v) + n
            guard r >= 0, r <= Int64(UInt32.max) else { return nil }
            return .v4(UInt32(r))
        case .v6(let hi, let lo):
            if n >= 0 {
                let (nlo, carry) = lo.addingReportingOverflow(UInt64(n))
                if carry { guard hi < .max else { return nil }; return .v6(hi + 1, nlo) }
                return .v6(hi, nlo)
            } else {
                let (nlo, borrow) = lo.subtractingReportingOverflow(UInt64(-n))
                if borrow { guard hi > 0 else { return nil }; return .v6(hi - 1, nlo) }
                return .v6(hi, nlo)
            }
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        switch (a, b) {
        case (.v4(let x), .v4(let y)): x < y
        case (.v6(let xh, let xl), .v6(let yh, let yl)): (xh, xl) < (yh, yl)
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }
}
