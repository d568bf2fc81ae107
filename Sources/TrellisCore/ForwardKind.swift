/// What the datapath did with a packet it let through: C `enum trellis_forward`
/// (bpf/lib/common.h), whose values these are. Stored in the pinned counters, so stable.
/// `DatapathCodeTests` checks this enum against the C one, both ways.
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

    /// A stable snake_case name (the C name without `TRELLIS_FWD_`), for metric labels: part
    /// of the user contract, never renamed.
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
