/// How pods are connected on a node: the CNI config's `mode`, the agent's `datapathMode`, the
/// datapath's node config and `trellisctl lab up --datapath` all name one of these.
public enum DatapathMode: String, Sendable, CaseIterable, Hashable, Codable {
    /// Host veths are bridge ports: same-node traffic is switched by the bridge; `from_pod` lets
    /// it through and `to_pod` (egress of the host veth) sees what the bridge delivers.
    case bridge
    /// No bridge: `from_pod` routes same-node traffic itself with `bpf_redirect_peer`; per-pod
    /// host routes, the gateway addresses on the plugin's `hostDevice`.
    case ebpf

    /// "bridge, ebpf": for help texts and for errors that name the allowed values.
    public static var allowedValues: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
