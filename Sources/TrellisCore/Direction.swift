/// Where in the datapath a packet was counted or dropped: C `enum trellis_direction`
/// (bpf/lib/common.h), whose values these are. Stored in pinned maps and events, so stable.
/// `DatapathCodeTests` checks this enum against the C one, both ways.
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

    /// A stable snake_case name (the C name without `TRELLIS_DIR_`), for metric labels and
    /// JSON: part of the user contract, never renamed.
    public var label: String {
        switch self {
        case .fromPod: "from_pod"
        case .toPod: "to_pod"
        case .fromUnderlay: "from_underlay"
        case .toOverlay: "to_overlay"
        case .toUnderlay: "to_underlay"
        }
    }

    /// The label with dashes (`from-pod`), for human-readable lines.
    public var description: String { String(label.map { $0 == "_" ? "-" : $0 }) }
}
