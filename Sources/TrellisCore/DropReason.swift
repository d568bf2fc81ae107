/// Why the datapath dropped a packet: C `enum trellis_drop_reason` (bpf/lib/common.h), whose
/// values these are. Stored in pinned maps and events, so stable. The C enum bounds its codes
/// with `TRELLIS_DROP_REASON_MIN` and `_MAX`; `DatapathCodeTests` fails when a code in that range
/// has no case here, or a case here is outside it.
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

    /// Human words, for `trellisctl monitor` and help texts.
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

    /// A stable snake_case name (the C name without `TRELLIS_DROP_`), for metric labels, JSON
    /// and `trellisctl monitor --reason`: part of the user contract, never renamed.
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

    /// The name of a raw code: the reason's `label`, or `code_N` for one this build does not
    /// know (a newer datapath), so that it is still shown and can be filtered on.
    public static func label(code: Int32) -> String {
        DropReason(rawValue: code)?.label ?? "code_\(code)"
    }
}
