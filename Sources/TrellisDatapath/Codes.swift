import TrellisNet

/// Where in the datapath a packet was counted or dropped (C `enum trellis_direction`).
public enum Direction: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// tc ingress of a pod's host veth: what pods send.
    case fromPod = 1
    /// tc egress of a pod's host veth: what the kernel delivers to pods.
    case toPod = 2
    /// tc ingress of the underlay device.
    case fromUnderlay = 3
    /// tc egress of the overlay device: what the node's stack sends to pods on other nodes.
    case toOverlay = 4
    /// tc egress of the underlay device: pods' Service traffic leaving the node.
    case toUnderlay = 5

    /// A stable snake_case name, for metric labels and JSON (e.g. `from_pod`).
    public var label: String {
        switch self {
        case .fromPod: "from_pod"
        case .toPod: "to_pod"
        case .fromUnderlay: "from_underlay"
        case .toOverlay: "to_overlay"
        case .toUnderlay: "to_underlay"
        }
    }

    public var description: String {
        switch self {
        case .fromPod: "from-pod"
        case .toPod: "to-pod"
        case .fromUnderlay: "from-underlay"
        case .toOverlay: "to-overlay"
        case .toUnderlay: "to-underlay"
        }
    }
}

/// What the datapath did with a packet it let through (C `enum trellis_forward`).
public enum ForwardKind: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case localRedirect = 1
    case localBridge = 2
    case encap = 3
    case decap = 4
    case stack = 5
    case fragNeeded = 6
    case notGeneve = 7
    case toPod = 8
    /// Decapsulated and handed to the node's stack (the reply of a flow it routed).
    case decapToStack = 9
    /// A pod's packet to a Service address, left to the stack's translation.
    case service = 10

    public var description: String {
        switch self {
        case .localRedirect: "local-redirect"
        case .localBridge: "local-bridge"
        case .encap: "encap"
        case .decap: "decap"
        case .stack: "to-stack"
        case .fragNeeded: "frag-needed-answered"
        case .notGeneve: "underlay-not-geneve"
        case .toPod: "to-pod"
        case .decapToStack: "decap-to-stack"
        case .service: "to-service"
        }
    }

    /// A stable snake_case name, for metric labels and JSON (e.g. `local_redirect`).
    public var label: String {
        switch self {
        case .localRedirect: "local_redirect"
        case .localBridge: "local_bridge"
        case .encap: "encap"
        case .decap: "decap"
        case .stack: "stack"
        case .fragNeeded: "frag_needed"
        case .notGeneve: "not_geneve"
        case .toPod: "to_pod"
        case .decapToStack: "decap_stack"
        case .service: "service"
        }
    }
}

/// Why the datapath dropped a packet. Mirrors C `enum trellis_drop_reason` (bpf/lib/common.h);
/// the values are stable, they are stored in pinned maps and events.
public enum DropReason: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case invalidPacket = -130
    case unsupportedL3 = -131
    case spoofedIP = -132
    case spoofedMAC = -133
    case spoofedARP = -134
    case linkLocal = -135
    case unknownPeer = -136
    case wrongVNI = -137
    case badGeneve = -138
    case geneveUnsupported = -139
    case unknownEndpoint = -140
    case innerNotIP = -141
    case fragNeeded = -142
    case encapFailed = -143
    case decapFailed = -144
    case noConfig = -145
    case policyEgress = -146
    case policyIngress = -147
    case noTunnel = -148

    public var description: String {
        switch self {
        case .invalidPacket: "invalid packet"
        case .unsupportedL3: "unsupported L3 protocol from pod"
        case .spoofedIP: "source IP not the pod's"
        case .spoofedMAC: "source MAC not the pod's"
        case .spoofedARP: "ARP sender not the pod's"
        case .linkLocal: "IPv6 link-local source outside neighbour discovery"
        case .unknownPeer: "Geneve from unknown peer"
        case .wrongVNI: "Geneve VNI mismatch"
        case .badGeneve: "malformed Geneve"
        case .geneveUnsupported: "Geneve OAM or critical options"
        case .unknownEndpoint: "decapsulated packet for no local endpoint"
        case .innerNotIP: "decapsulated frame not IP"
        case .fragNeeded: "too big for the tunnel"
        case .encapFailed: "encapsulation failed"
        case .decapFailed: "decapsulation failed"
        case .noConfig: "node config not set"
        case .policyEgress: "denied by the source pod's egress policy"
        case .policyIngress: "denied by the destination pod's ingress policy"
        case .noTunnel: "routed into the overlay for an address no peer node hosts"
        }
    }

    /// A stable snake_case name, for metric labels and JSON (e.g. `unknown_peer`).
    public var label: String {
        switch self {
        case .invalidPacket: "invalid_packet"
        case .unsupportedL3: "unsupported_l3"
        case .spoofedIP: "spoofed_ip"
        case .spoofedMAC: "spoofed_mac"
        case .spoofedARP: "spoofed_arp"
        case .linkLocal: "link_local"
        case .unknownPeer: "unknown_peer"
        case .wrongVNI: "wrong_vni"
        case .badGeneve: "bad_geneve"
        case .geneveUnsupported: "geneve_unsupported"
        case .unknownEndpoint: "unknown_endpoint"
        case .innerNotIP: "inner_not_ip"
        case .fragNeeded: "frag_needed"
        case .encapFailed: "encap_failed"
        case .decapFailed: "decap_failed"
        case .noConfig: "no_config"
        case .policyEgress: "policy_egress"
        case .policyIngress: "policy_ingress"
        case .noTunnel: "no_tunnel"
        }
    }
}

/// A counter of `trellis_metrics`: a direction and either a forward kind or a drop reason.
/// Codes unknown to this build (a newer datapath) are kept raw.
public struct MetricKey: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: UInt8, Sendable { case forward = 1, drop = 2 }
    public var direction: Direction
    public var kind: Kind
    /// `ForwardKind` or `DropReason` raw value.
    public var code: Int32

    public init(direction: Direction, kind: Kind, code: Int32) {
        self.direction = direction
        self.kind = kind
        self.code = code
    }
    public static func forward(_ k: ForwardKind, _ d: Direction) -> MetricKey {
        MetricKey(direction: d, kind: .forward, code: k.rawValue)
    }
    public static func drop(_ r: DropReason, _ d: Direction) -> MetricKey {
        MetricKey(direction: d, kind: .drop, code: r.rawValue)
    }
    public var forwardKind: ForwardKind? { kind == .forward ? ForwardKind(rawValue: code) : nil }
    public var dropReason: DropReason? { kind == .drop ? DropReason(rawValue: code) : nil }

    public var description: String {
        switch kind {
        case .forward: "\(direction) forward \(forwardKind.map { "\($0)" } ?? "#\(code)")"
        case .drop: "\(direction) drop \(dropReason.map { "\($0)" } ?? "#\(code)")"
        }
    }
}

/// Packets and bytes, summed over CPUs.
public struct PacketCount: Sendable, Equatable {
    public var packets: UInt64
    public var bytes: UInt64
    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }
}

/// A dropped packet, as reported on the `trellis_events` ring buffer.
public struct DropEvent: Sendable, Equatable {
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
    public var timestampNs: UInt64
    /// The raw code; `reason` when this build knows it.
    public var code: Int32
    public var reason: DropReason? { DropReason(rawValue: code) }
    public var ifindex: UInt32
    public var direction: Direction?
    /// IPPROTO_* (0 when not parsed).
    public var proto: UInt8
    /// Source and destination, when the packet was IP and parsed that far.
    public var source: IPAddress?
    public var destination: IPAddress?
    /// Host order; 0 when not parsed (ICMP echo: the identifier).
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var length: UInt32
}
