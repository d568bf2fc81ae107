import TrellisNet

/// One local endpoint as the datapath holds it (the endpoint map's value), keyed by pod IP.
public struct EndpointEntry: Sendable, Equatable, Hashable {
    /// The host-side veth of the pod.
    public var hostIfindex: Int32
    public var podMAC: MACAddress
    public var hostMAC: MACAddress
    public var identity: UInt32

    public init(hostIfindex: Int32, podMAC: MACAddress, hostMAC: MACAddress, identity: UInt32) {
        self.hostIfindex = hostIfindex
        self.podMAC = podMAC
        self.hostMAC = hostMAC
        self.identity = identity
    }
}

/// What the agent asks of the datapath: node-wide settings, the overlay (tunnel and peer
/// maps), the ipcache (prefix -> identity) and local endpoints (tc programs on host veths plus
/// the endpoint map). The agent owns the decisions; an implementation only writes what it is
/// told, and reads back what is pinned so that a restarted agent adopts it instead of
/// rebuilding it (traffic keeps flowing across agent restarts).
///
/// Rules for implementations:
/// * Every call is made from one actor, never two at once, so an implementation needs no
///   locking of its own for these calls; `metrics()` is the exception (see there).
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
    /// Attaches (or replaces) the decapsulation program at tc ingress of the underlay device.
    func attachUnderlay(ifindex: Int32) throws

    /// Remote pod CIDR -> the node IP that owns it (the LPM map the encap program reads).
    func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) throws
    func deleteTunnel(podCIDR: IPNetwork) throws
    /// Node IPs whose Geneve packets are accepted by the decap program.
    func upsertPeer(nodeIP: IPAddress) throws
    func deletePeer(nodeIP: IPAddress) throws

    /// Address prefix (a pod's /32 or /128) -> security identity.
    func upsertIPCache(prefix: IPNetwork, identity: UInt32) throws
    func deleteIPCache(prefix: IPNetwork) throws

    /// Attaches (or replaces) the endpoint programs on a pod's host veth.
    func attachEndpoint(hostIfindex: Int32) throws
    /// Removes them; only called while the device exists (a deleted device takes its tc hooks
    /// with it).
    func detachEndpoint(hostIfindex: Int32) throws
    /// One pod IP of a local endpoint.
    func upsertEndpoint(ip: IPAddress, hostIfindex: Int32, podMAC: MACAddress, hostMAC: MACAddress, identity: UInt32) throws
    func deleteEndpoint(ip: IPAddress) throws

    /// What the pinned maps hold now, read once at start for adoption.
    func programmedEndpoints() throws -> [IPAddress: EndpointEntry]
    func programmedTunnels() throws -> [IPNetwork: IPAddress]
    func programmedPeers() throws -> Set<IPAddress>
    func programmedIPCache() throws -> [IPNetwork: UInt32]

    /// Extra Prometheus samples (full metric name -> value), e.g. datapath drop counters.
    /// Called from the health server's own thread, concurrently with the other calls: an
    /// implementation that has any must make this one thread-safe.
    func metrics() -> [String: Double]
}

extension DatapathProgrammer {
    public func metrics() -> [String: Double] { [:] }
}
