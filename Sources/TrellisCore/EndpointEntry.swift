import TrellisNet

/// A pod address on this node as the datapath holds it: the value of map `trellis_endpoints`
/// (keyed by pod IP, `struct endpoint_info` in bpf/). The agent decides it, the datapath
/// writes and reads it back.
public struct EndpointEntry: Sendable, Equatable, Hashable {
    /// The pod's host-side veth.
    public var hostIfindex: Int32
    /// MAC of the pod's interface: the only source MAC the pod may send with.
    public var podMAC: MACAddress
    /// MAC of the host-side veth: the pod's gateway neighbour, source of frames delivered to it.
    public var hostMAC: MACAddress
    /// The pod's label identity (informational: policy resolves addresses through the ipcache).
    public var identity: UInt32
    /// The key of the pod's entries in `trellis_policy`; 0: none, so all its traffic is denied.
    /// No default: an entry written without thinking about it would cut the pod off.
    public var policyID: UInt32

    public init(hostIfindex: Int32, podMAC: MACAddress, hostMAC: MACAddress, identity: UInt32, policyID: UInt32) {
        self.hostIfindex = hostIfindex
        self.podMAC = podMAC
        self.hostMAC = hostMAC
        self.identity = identity
        self.policyID = policyID
    }
}
