import CTrellisBPF
import TrellisCore
import TrellisNet
import TrellisPolicy

// Conversions between the Swift model and the C structs of bpf/lib/common.h (imported through
// CTrellisBPF, so sizes and offsets are the C compiler's). Addresses are network-order bytes.

package func familyTag(_ f: IPAddress.Family) -> UInt8 {
    UInt8(f == .v4 ? TRELLIS_FAMILY_IPV4.rawValue : TRELLIS_FAMILY_IPV6.rawValue)
}

/// Writes `bytes` at the start of a fixed-size C array (a Swift tuple).
package func store<T>(_ bytes: [UInt8], into field: inout T) {
    withUnsafeMutableBytes(of: &field) { raw in
        for (i, b) in bytes.prefix(raw.count).enumerated() { raw[i] = b }
    }
}

/// The first `count` bytes of a fixed-size C array (a Swift tuple).
package func load<T>(_ field: T, count: Int) -> [UInt8] {
    withUnsafeBytes(of: field) { Array($0.prefix(count)) }
}

package func address(family: UInt8, bytes: [UInt8]) -> IPAddress? {
    switch UInt32(family) {
    case TRELLIS_FAMILY_IPV4.rawValue: IPAddress(bytes: Array(bytes.prefix(4)))
    case TRELLIS_FAMILY_IPV6.rawValue: IPAddress(bytes: Array(bytes.prefix(16)))
    default: nil
    }
}

extension trellis_ip_key {
    package init(_ ip: IPAddress) {
        self = zeroed(trellis_ip_key.self)
        family = familyTag(ip.family)
        store(ip.bytes, into: &addr)
    }
    package var ipAddress: IPAddress? { address(family: family, bytes: load(addr, count: 16)) }
}

extension trellis_lpm_key {
    /// The trie matches the family tag and padding (32 bits) before the address bits.
    package init(_ net: IPNetwork) {
        self = zeroed(trellis_lpm_key.self)
        prefixlen = UInt32(TRELLIS_LPM_TAG_BITS) + UInt32(net.prefixLength)
        family = familyTag(net.family)
        store(net.first.bytes, into: &addr)
    }
    package var ipNetwork: IPNetwork? {
        guard let a = address(family: family, bytes: load(addr, count: 16)) else { return nil }
        return IPNetwork(address: a, prefixLength: Int(prefixlen) - Int(TRELLIS_LPM_TAG_BITS))
    }
}

extension trellis_endpoint {
    package init(_ e: EndpointEntry) {
        self = zeroed(trellis_endpoint.self)
        host_ifindex = UInt32(bitPattern: e.hostIfindex)
        identity = e.identity
        policy_id = e.policyID
        store(e.podMAC.bytes, into: &pod_mac)
        store(e.hostMAC.bytes, into: &host_mac)
    }
    package var entry: EndpointEntry {
        EndpointEntry(hostIfindex: Int32(bitPattern: host_ifindex),
                      podMAC: MACAddress(bytes: load(pod_mac, count: 6))!,
                      hostMAC: MACAddress(bytes: load(host_mac, count: 6))!,
                      identity: identity, policyID: policy_id)
    }
}

/// An IPv4 address as the programs store it: the 4 network-order bytes in a native UInt32.
package func networkOrderV4(_ ip: IPAddress) -> UInt32? {
    guard case .v4(let v) = ip else { return nil }
    return v.bigEndian
}

package func ipv4(networkOrder v: UInt32) -> IPAddress { .v4(UInt32(bigEndian: v)) }

extension trellis_config {
    /// The node settings; `policy_gen` is left 0 (`Datapath.setNodeConfig` keeps the current one).
    package init(_ c: NodeConfig) {
        self = zeroed(trellis_config.self)
        node_ipv4 = networkOrderV4(c.nodeIPv4) ?? 0
        underlay_ifindex = UInt32(bitPattern: c.underlayIfindex)
        vni = c.vni & 0xff_ffff
        flags = c.mode == .bridge ? UInt32(TRELLIS_CONFIG_F_BRIDGE_MODE.rawValue) : 0
        router_ipv4 = c.routerIPv4.flatMap(networkOrderV4) ?? 0
        if let r6 = c.routerIPv6, r6.family == .v6 { store(r6.bytes, into: &router_ipv6) }
        overlay_ifindex = UInt32(bitPattern: c.overlayIfindex)
        if let mac = c.overlayMAC { store(mac.bytes, into: &overlay_mac) }
    }
    package var nodeConfig: NodeConfig {
        let r6 = IPAddress(bytes: load(router_ipv6, count: 16))
        return NodeConfig(
            nodeIPv4: ipv4(networkOrder: node_ipv4),
            underlayIfindex: Int32(bitPattern: underlay_ifindex), vni: vni,
            mode: flags & UInt32(TRELLIS_CONFIG_F_BRIDGE_MODE.rawValue) != 0 ? .bridge : .ebpf,
            routerIPv4: router_ipv4 == 0 ? nil : ipv4(networkOrder: router_ipv4),
            routerIPv6: r6 == .v6(0, 0) ? nil : r6,
            overlayIfindex: Int32(bitPattern: overlay_ifindex),
            overlayMAC: overlay_ifindex == 0 ? nil : MACAddress(bytes: load(overlay_mac, count: 6)))
    }
}

extension trellis_drop_event {
    package var event: DatapathDropEvent {
        let s = address(family: family, bytes: load(saddr, count: 16))
        let d = address(family: family, bytes: load(daddr, count: 16))
        return DatapathDropEvent(timestampNs: timestamp_ns, code: reason, directionCode: direction, ifindex: ifindex,
                                 proto: proto, source: s, destination: d,
                                 sourcePort: UInt16(bigEndian: sport), destinationPort: UInt16(bigEndian: dport),
                                 length: len)
    }
}

extension trellis_ct_key {
    package func conntrackEntry(_ v: trellis_ct_entry) -> ConntrackEntry? {
        guard let s = address(family: family, bytes: load(saddr, count: 16)),
              let d = address(family: family, bytes: load(daddr, count: 16)) else { return nil }
        return ConntrackEntry(source: s, destination: d,
                              sourcePort: UInt16(bigEndian: sport), destinationPort: UInt16(bigEndian: dport),
                              proto: proto, packets: v.packets, bytes: v.bytes,
                              seenReply: v.flags & UInt32(TRELLIS_CT_F_SEEN_REPLY.rawValue) != 0,
                              closing: v.flags & UInt32(TRELLIS_CT_F_CLOSING.rawValue) != 0,
                              viaStack: v.flags & UInt32(TRELLIS_CT_F_VIA_STACK.rawValue) != 0,
                              service: v.flags & UInt32(TRELLIS_CT_F_SERVICE.rawValue) != 0,
                              lastSeenNs: v.last_seen_ns, policyGeneration: v.policy_gen)
    }
}

extension trellis_ipcache_entry {
    package init(_ e: IPCacheEntry) {
        self = zeroed(trellis_ipcache_entry.self)
        identity = e.identity
        cidr_identity = e.cidrIdentity
    }
    package var entry: IPCacheEntry { IPCacheEntry(identity: identity, cidrIdentity: cidr_identity) }
}

extension trellis_policy_key {
    // The trie matches `prefixlen` bits of what follows `prefixlen`, so an entry's prefix
    // length is an offset in this struct: taken from the C layout, not restated.

    /// Every entry matches `policy_id`, `peer` and `direction` (an entry for every protocol).
    package static let fixedBits = matchedBits(upTo: MemoryLayout<trellis_policy_key>.offset(of: \.proto)!)
    /// Plus `proto` (every port of it); the first n bits of `dport` add n.
    package static let protoBits = matchedBits(upTo: MemoryLayout<trellis_policy_key>.offset(of: \.dport)!)
    /// Every bit (one port): `TRELLIS_POLICY_FULL_BITS`, what the programs look up.
    package static let fullBits = matchedBits(upTo: MemoryLayout<trellis_policy_key>.size)

    private static func matchedBits(upTo offset: Int) -> UInt32 {
        UInt32(8 * (offset - MemoryLayout<trellis_policy_key>.offset(of: \.policy_id)!))
    }

    /// The LPM key of an allow entry: ids in host order, the port in network order, the bits
    /// past `prefixlen` zero.
    package init(_ k: PolicyMapKey) {
        self = zeroed(trellis_policy_key.self)
        policy_id = k.endpoint
        peer = k.peer
        direction = UInt8(k.direction == .ingress ? TRELLIS_POLICY_INGRESS.rawValue : TRELLIS_POLICY_EGRESS.rawValue)
        switch k.ports {
        case .anyProtocol:
            prefixlen = Self.fixedBits
        case .ports(let p, let prefix):
            prefixlen = Self.protoBits + UInt32(prefix.bits)
            proto = p.rawValue
            dport = prefix.base.bigEndian
        }
    }

    /// The entry this key stands for; nil for keys the compiler never writes.
    package var policyMapKey: PolicyMapKey? {
        let dir: PolicyDirection
        switch UInt32(direction) {
        case TRELLIS_POLICY_INGRESS.rawValue: dir = .ingress
        case TRELLIS_POLICY_EGRESS.rawValue: dir = .egress
        default: return nil
        }
        let ports: PortMatch
        switch prefixlen {
        case Self.fixedBits:
            ports = .anyProtocol
        case Self.protoBits...Self.fullBits:
            let bits = UInt8(prefixlen - Self.protoBits)
            ports = .ports(Proto(rawValue: proto), PortPrefix(base: UInt16(bigEndian: dport), bits: bits))
        default:
            return nil
        }
        return PolicyMapKey(endpoint: policy_id, direction: dir, peer: peer, ports: ports)
    }
}

/// A value of a C struct type with every byte zero (the C structs have no Swift initialiser
/// that guarantees zeroed padding).
package func zeroed<T: BitwiseCopyable>(_: T.Type) -> T {
    withUnsafeTemporaryAllocation(of: T.self, capacity: 1) { buf in
        UnsafeMutableRawBufferPointer(buf).initializeMemory(as: UInt8.self, repeating: 0)
        return buf[0]
    }
}
