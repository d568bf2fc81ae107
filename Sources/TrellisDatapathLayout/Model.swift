import TrellisCore
import TrellisNet

/// Node-wide settings the programs read on every packet (map `trellis_config`): changing them
/// needs no reload.
public struct NodeConfig: Sendable, Equatable {
    /// The node's IPv4 on the underlay: source of outgoing Geneve, destination of incoming.
    public var nodeIPv4: IPAddress
    /// The underlay device (Geneve leaves through it; `attachUnderlay` goes on it too).
    public var underlayIfindex: Int32
    /// Geneve VNI, 24 bits.
    public var vni: UInt32
    public var mode: DatapathMode
    /// Source address of ICMP errors sent to pods ("fragmentation needed"): the pods' IPv4
    /// gateway. nil: the node IPv4.
    public var routerIPv4: IPAddress?
    /// Source address of ICMPv6 "packet too big" sent to pods: the pods' IPv6 gateway. nil:
    /// oversized IPv6 packets are dropped (and counted) instead of answered.
    public var routerIPv6: IPAddress?
    /// The overlay device (`attachOverlay`): decapsulated replies of flows the node's stack
    /// routed into the overlay re-enter the stack through it. 0: none (they are dropped).
    public var overlayIfindex: Int32
    /// Its MAC: such replies are addressed to it.
    public var overlayMAC: MACAddress?

    public init(nodeIPv4: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: DatapathMode,
                routerIPv4: IPAddress? = nil, routerIPv6: IPAddress? = nil,
                overlayIfindex: Int32 = 0, overlayMAC: MACAddress? = nil) {
        self.nodeIPv4 = nodeIPv4
        self.underlayIfindex = underlayIfindex
        self.vni = vni
        self.mode = mode
        self.routerIPv4 = routerIPv4
        self.routerIPv6 = routerIPv6
        self.overlayIfindex = overlayIfindex
        self.overlayMAC = overlayMAC
    }
}

/// A tracked flow (map `trellis_conntrack`).
public struct ConntrackEntry: Sendable, Equatable {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var proto: UInt8
    public var packets: UInt64
    public var bytes: UInt64
    public var seenReply: Bool
    public var closing: Bool
    /// The node's stack routed it (NAT, the node's own traffic): replies go back through it.
    public var viaStack: Bool
    /// A pod's connection to a Service address (the entry only lets its replies in).
    public var service: Bool
    public var lastSeenNs: UInt64
    /// `trellis_config.policy_gen` when policy last allowed the flow.
    public var policyGeneration: UInt32
}
