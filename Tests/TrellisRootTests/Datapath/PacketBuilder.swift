import TrellisNet

/// Builds test frames byte by byte, with correct lengths and checksums: Ethernet, ARP, IPv4,
/// IPv6, UDP, TCP, ICMP, ICMPv6 and Geneve. Also the checksum arithmetic the assertions use.
enum Pkt {
    static let ethIPv4: UInt16 = 0x0800
    static let ethIPv6: UInt16 = 0x86dd
    static let ethARP: UInt16 = 0x0806
    static let protoICMP: UInt8 = 1
    static let protoTCP: UInt8 = 6
    static let protoUDP: UInt8 = 17
    static let protoICMPv6: UInt8 = 58

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    /// The 16-bit one's complement sum of `bytes` (not inverted), continuing from `initial`.
    static func sum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
        var s = initial
        var i = 0
        while i + 1 < bytes.count { s += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]); i += 2 }
        if i < bytes.count { s += UInt32(bytes[i]) << 8 }
        while s > 0xffff { s = (s & 0xffff) + (s >> 16) }
        return s
    }

    /// The Internet checksum of `bytes` (RFC 1071).
    static func checksum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 {
        ~UInt16(sum(bytes, initial: initial))
    }

    /// True when the data, checksum field included, sums to 0xffff.
    static func checksumValid(_ bytes: [UInt8], initial: UInt32 = 0) -> Bool {
        sum(bytes, initial: initial) == 0xffff
    }

    static func pseudoHeaderSum(src: IPAddress, dst: IPAddress, proto: UInt8, length: Int) -> UInt32 {
        var p = src.bytes + dst.bytes
        if src.family == .v4 {
            p += [0, proto] + be16(UInt16(length))
        } else {
            p += be32(UInt32(length)) + [0, 0, 0, proto]
        }
        return sum(p)
    }

    static func ethernet(dst: MACAddress, src: MACAddress, type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        dst.bytes + src.bytes + be16(type) + payload
    }

    static func ipv4(src: IPAddress, dst: IPAddress, proto: UInt8, ttl: UInt8 = 64, tos: UInt8 = 0,
                     df: Bool = true, id: UInt16 = 0x1234, _ payload: [UInt8]) -> [UInt8] {
        var h: [UInt8] = [0x45, tos] + be16(UInt16(20 + payload.count)) + be16(id)
        h += be16(df ? 0x4000 : 0) + [ttl, proto, 0, 0] + src.bytes + dst.bytes
        let c = checksum(h)
        h[10] = UInt8(c >> 8)
        h[11] = UInt8(c & 0xff)
        return h + payload
    }

    static func ipv6(src: IPAddress, dst: IPAddress, nextHeader: UInt8, hopLimit: UInt8 = 64,
                     trafficClass: UInt8 = 0, _ payload: [UInt8]) -> [UInt8] {
        let first: UInt32 = 6 << 28 | UInt32(trafficClass) << 20 | 0x12345
        return be32(first) + be16(UInt16(payload.count)) + [nextHeader, hopLimit] + src.bytes + dst.bytes + payload
    }

    /// A transport segment whose checksum field is at `csumOffset`, filled over the pseudo header.
    private static func withChecksum(_ seg: [UInt8], csumOffset: Int, src: IPAddress, dst: IPAddress,
                                     proto: UInt8) -> [UInt8] {
        var s = seg
        var c = checksum(s, initial: pseudoHeaderSum(src: src, dst: dst, proto: proto, length: s.count))
        if proto == protoUDP, c == 0 { c = 0xffff }
        s[csumOffset] = UInt8(c >> 8)
        s[csumOffset + 1] = UInt8(c & 0xff)
        return s
    }

    static func udp(src: IPAddress, dst: IPAddress, sport: UInt16, dport: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let seg = be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        return withChecksum(seg, csumOffset: 6, src: src, dst: dst, proto: protoUDP)
    }

    static func tcp(src: IPAddress, dst: IPAddress, sport: UInt16, dport: UInt16, flags: UInt8 = 0x02,
                    seq: UInt32 = 1000, ack: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let seg = be16(sport) + be16(dport) + be32(seq) + be32(ack) + [0x50, flags] + be16(64240) + [0, 0, 0, 0] + payload
        return withChecksum(seg, csumOffset: 16, src: src, dst: dst, proto: protoTCP)
    }

    static func icmpEcho(id: UInt16, seq: UInt16, reply: Bool = false, _ payload: [UInt8] = Array(repeating: 0xab, count: 32)) -> [UInt8] {
        var m: [UInt8] = [reply ? 0 : 8, 0, 0, 0] + be16(id) + be16(seq) + payload
        let c = checksum(m)
        m[2] = UInt8(c >> 8)
        m[3] = UInt8(c & 0xff)
        return m
    }

    static func icmp6(src: IPAddress, dst: IPAddress, type: UInt8, code: UInt8 = 0, _ body: [UInt8]) -> [UInt8] {
        withChecksum([type, code, 0, 0] + body, csumOffset: 2, src: src, dst: dst, proto: protoICMPv6)
    }

    static func icmp6Echo(src: IPAddress, dst: IPAddress, id: UInt16, seq: UInt16, reply: Bool = false,
                          _ payload: [UInt8] = Array(repeating: 0xcd, count: 32)) -> [UInt8] {
        icmp6(src: src, dst: dst, type: reply ? 129 : 128, be16(id) + be16(seq) + payload)
    }

    /// An Ethernet/IPv4 ARP packet (op 1 request, 2 reply).
    static func arp(op: UInt16 = 1, sha: MACAddress, spa: IPAddress, tha: MACAddress? = nil, tpa: IPAddress) -> [UInt8] {
        be16(1) + be16(0x0800) + [6, 4] + be16(op) + sha.bytes + spa.bytes
            + (tha?.bytes ?? [0, 0, 0, 0, 0, 0]) + tpa.bytes
    }

    /// A Geneve header (RFC 8926) followed by `inner`.
    static func geneve(vni: UInt32, inner: [UInt8], version: UInt8 = 0, options: [UInt8] = [],
                       flags: UInt8 = 0, proto: UInt16 = 0x6558) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let first = version << 6 | UInt8(options.count / 4)
        return [first, flags] + be16(proto) + [UInt8((vni >> 16) & 0xff), UInt8((vni >> 8) & 0xff), UInt8(vni & 0xff), 0]
            + options + inner
    }

    /// A complete underlay frame carrying `inner` in Geneve from `src` to `dst` (UDP checksum 0).
    static func geneveFrame(outerSrcMAC: MACAddress, outerDstMAC: MACAddress, src: IPAddress, dst: IPAddress,
                            sport: UInt16 = 40000, dport: UInt16 = 6081, vni: UInt32, inner: [UInt8],
                            version: UInt8 = 0, options: [UInt8] = [], flags: UInt8 = 0) -> [UInt8] {
        let g = geneve(vni: vni, inner: inner, version: version, options: options, flags: flags)
        let u = be16(sport) + be16(dport) + be16(UInt16(8 + g.count)) + [0, 0] + g
        return ethernet(dst: outerDstMAC, src: outerSrcMAC, type: ethIPv4, ipv4(src: src, dst: dst, proto: protoUDP, u))
    }
}

extension Array where Element == UInt8 {
    func u16(_ at: Int) -> UInt16 { UInt16(self[at]) << 8 | UInt16(self[at + 1]) }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) << 16 | UInt32(u16(at + 2)) }
    func slice(_ at: Int, _ count: Int) -> [UInt8] { Array(self[at..<(at + count)]) }
}
