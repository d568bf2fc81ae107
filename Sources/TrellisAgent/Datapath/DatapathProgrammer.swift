import TrellisCore
import TrellisNet
import TrellisPolicy

/// One local endpoint as the datapath holds it (the endpoint map's value), keyed by pod IP.
public struct EndpointEntry: Sendable, Equatable, Hashable {
    /// The host-side veth of the pod.
    public var hostIfindex: Int32
    public var podMAC: MACAddress
    public var hostMAC: MACAddress
    /// The pod's label identity (informational: policy resolves addresses through the ipcache).
    public var identity: UInt32
    /// The key of the pod's entries in the policy map; 0: none (all its traffic is denied).
    public var policyID: UInt32

    public init(hostIfindex: Int32, podMAC: MACAddress, hostMAC: MACAddress, identity: UInt32, policyID: UInt32) {
        self.hostIfindex = hostIfindex
        self.podMAC = podMAC
        self.hostMAC = hostMAC
        self.identity = identity
        self.policyID = policyID
    }
}

/// The node's overlay device: a veth pair whose first end the node's stack routes the other
/// nodes' pod CIDRs into (its tc egress encapsulates) and through which decapsulated replies to
/// flows the stack routed re-enter the stack.
public struct OverlayDevice: Sendable, Equatable {
    public var ifindex: Int32
    public var name: String
    public var mac: MACAddress

    public init(ifindex: Int32, name: String, mac: MACAddress) {
        self.ifindex = ifindex
        self.name = name
        self.mac = mac
    }
}

/// What the agent asks of the datapath: node-wide settings, the overlay (tunnel and peer
/// maps), the ipcache (prefix -> identities), the local pods' policy entries, local endpoints
/// (tc programs on host veths plus the endpoint map) and its drop events. The agent owns the decisions; an implementation only writes what it is
/// told, and reads back what is pinned so that a restarted agent adopts it instead of
/// rebuilding it (traffic keeps flowing across agent restarts).
///
/// Rules for implementations:
/// * Every call is made from one actor, never two at once, so an implementation needs no
///   locking of its own for these calls; `metrics()` and `readDropEvents` are the exceptions
///   (see there).
/// * Calls are synchronous and short (a map update, a tc attach): the agent makes them from
///   its actor and does not expect them to block for long.
/// * "upsert" writes or overwrites one entry; "delete" of an absent entry is not an error.
/// * `attachEndpoint` on a device that already has our programs replaces them (a restarted or
///   upgraded agent re-attaches); `detachEndpoint` is only called for devices that still exist.
/// * Errors are thrown with a message that names the object (the prefix, the ifindex).
/// * Nothing is ever torn down on agent shutdown: the agent simply stops calling.
public protocol DatapathProgrammer: AnyObject, Sendable {
    /// Node-wide settings the programs read: this node's underlay IP (the outer source of
    /// Geneve packets), the underlay device, the VNI, the forwarding mode, and the pods'
    /// gateway addresses on this node (`routers`: one per pod CIDR, the first address after
    /// the network address, as the plugin configures them; the source of ICMP errors the
    /// datapath sends to pods).
    func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: DatapathMode,
                       routers: [IPAddress]) throws
    /// Attaches (or replaces) the programs of the underlay device: decapsulation at its tc
    /// ingress, the egress check of pods' Service traffic at its egress.
    func attachUnderlay(ifindex: Int32) throws

    /// Creates the overlay device when missing and brings it to what it must be: a veth pair
    /// `name` (and its peer), no ARP, `mtu`, up, holding `addresses` (host prefixes: the pods'
    /// gateways on this node, so that what the stack sends into the overlay, masqueraded or not,
    /// has a source the other nodes route back here). Returns it.
    func ensureOverlayDevice(name: String, mtu: Int, addresses: [IPAddress]) throws -> OverlayDevice
    /// Attaches (or replaces) the encapsulation program at its tc egress and tells the programs
    /// where it is.
    func attachOverlay(_ device: OverlayDevice) throws
    /// The routes of remote pod CIDRs into the overlay device that the agent added:
    /// destination -> preferred source.
    func programmedOverlayRoutes(_ device: OverlayDevice) throws -> [IPNetwork: IPAddress]
    /// Adds or replaces (in place) the route of a remote pod CIDR into the overlay device.
    func upsertOverlayRoute(_ destination: IPNetwork, source: IPAddress, device: OverlayDevice) throws
    func deleteOverlayRoute(_ destination: IPNetwork, device: OverlayDevice) throws

    /// Addresses the node's stack translates (Services' ClusterIPs, external and load-balancer
    /// IPs): the datapath hands pods' traffic to them to the stack, and checks their egress
    /// policy after the translation.
    func upsertService(ip: IPAddress) throws
    func deleteService(ip: IPAddress) throws

    /// Remote pod CIDR -> the node IP that owns it (the LPM map the encap program reads).
    func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) throws
    func deleteTunnel(podCIDR: IPNetwork) throws
    /// Node IPs whose Geneve packets are accepted by the decap program.
    func upsertPeer(nodeIP: IPAddress) throws
    func deletePeer(nodeIP: IPAddress) throws

    /// Address prefix -> identities (a pod's /32 or /128, this node's addresses, ipBlock prefixes).
    func upsertIPCache(prefix: IPNetwork, entry: IPCacheEntry) throws
    func deleteIPCache(prefix: IPNetwork) throws
    /// One allow entry of a local pod's policy (`PolicyMapLayout`).
    func upsertPolicy(_ key: PolicyMapKey) throws
    func deletePolicy(_ key: PolicyMapKey) throws
    /// What an identity number stands for (a fingerprint of its labels): the agent's record,
    /// pinned with the maps, read back by a restarted agent to keep its numbers.
    func upsertIdentity(_ id: Identity, fingerprint: UInt64) throws
    func deleteIdentity(_ id: Identity) throws
    /// Starts a new policy generation once a change of the policy or ipcache maps is written:
    /// tracked flows are checked against policy again on their next packet.
    func bumpPolicyGeneration() throws

    /// Attaches (or replaces) the endpoint programs on a pod's host veth.
    func attachEndpoint(hostIfindex: Int32) throws
    /// Removes them; only called while the device exists (a deleted device takes its tc hooks
    /// with it).
    func detachEndpoint(hostIfindex: Int32) throws
    /// One pod IP of a local endpoint.
    func upsertEndpoint(ip: IPAddress, _ entry: EndpointEntry) throws
    func deleteEndpoint(ip: IPAddress) throws

    /// What the pinned maps hold now, read once at start for adoption.
    func programmedEndpoints() throws -> [IPAddress: EndpointEntry]
    func programmedTunnels() throws -> [IPNetwork: IPAddress]
    func programmedPeers() throws -> Set<IPAddress>
    func programmedIPCache() throws -> [IPNetwork: IPCacheEntry]
    func programmedPolicy() throws -> Set<PolicyMapKey>
    func programmedIdentities() throws -> [Identity: UInt64]
    func programmedServices() throws -> Set<IPAddress>

    /// Waits up to `timeoutMs` for drop events and returns them (empty when the datapath reports
    /// none). Called from one dedicated thread only.
    func readDropEvents(timeoutMs: Int32) throws -> [DatapathDropEvent]

    /// Extra Prometheus samples (full metric name -> value), e.g. datapath drop counters.
    /// Called from the health server's own thread, concurrently with the other calls: an
    /// implementation that has any must make this one thread-safe.
    func metrics() -> [String: Double]
}

extension DatapathProgrammer {
    public func metrics() -> [String: Double] { [:] }
}
