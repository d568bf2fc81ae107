import Logging
import TrellisNet

/// A `DatapathProgrammer` that programs nothing: it logs every call and keeps the entries in
/// memory, so the agent's logic (reconcilers, handshake, readiness) runs end to end without
/// the eBPF datapath. The executable uses it until the real datapath is wired in; it is not
/// persistent, so a restarted agent adopts nothing from it.
public final class InMemoryDatapath: DatapathProgrammer, @unchecked Sendable {
    public struct State: Sendable, Equatable {
        public var nodeConfig: NodeConfig?
        public var underlayIfindex: Int32?
        public var tunnels: [IPNetwork: IPAddress] = [:]
        public var peers: Set<IPAddress> = []
        public var ipcache: [IPNetwork: UInt32] = [:]
        public var attached: Set<Int32> = []
        public var endpoints: [IPAddress: EndpointEntry] = [:]
    }

    public struct NodeConfig: Sendable, Equatable {
        public var nodeIP: IPAddress
        public var underlayIfindex: Int32
        public var vni: UInt32
        public var mode: DatapathMode
        public var routers: [IPAddress]
    }

    private let logger: Logger
    // Locked because `metrics()` reads it from the health server's thread.
    private let state = Locked(State())

    public init(logger: Logger) {
        var l = logger
        l[metadataKey: "datapath"] = "in-memory"
        self.logger = l
    }

    public var snapshot: State { state.current }

    public func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: DatapathMode,
                              routers: [IPAddress]) {
        logger.debug("datapath: set node config", metadata: [
            "node.ip": "\(nodeIP)", "underlay.ifindex": "\(underlayIfindex)", "vni": "\(vni)", "mode": "\(mode.rawValue)",
            "routers": "\(routers.map(\.description).joined(separator: ","))"])
        state.withLock {
            $0.nodeConfig = NodeConfig(nodeIP: nodeIP, underlayIfindex: underlayIfindex, vni: vni, mode: mode, routers: routers)
        }
    }
    public func attachUnderlay(ifindex: Int32) {
        logger.debug("datapath: attach underlay", metadata: ["underlay.ifindex": "\(ifindex)"])
        state.withLock { $0.underlayIfindex = ifindex }
    }
    public func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) {
        logger.debug("datapath: upsert tunnel", metadata: ["tunnel.cidr": "\(podCIDR)", "tunnel.nodeIP": "\(nodeIP)"])
        state.withLock { $0.tunnels[podCIDR] = nodeIP }
    }
    public func deleteTunnel(podCIDR: IPNetwork) {
        logger.debug("datapath: delete tunnel", metadata: ["tunnel.cidr": "\(podCIDR)"])
        state.withLock { $0.tunnels[podCIDR] = nil }
    }
    public func upsertPeer(nodeIP: IPAddress) {
        logger.debug("datapath: upsert peer", metadata: ["peer.ip": "\(nodeIP)"])
        state.withLock { _ = $0.peers.insert(nodeIP) }
    }
    public func deletePeer(nodeIP: IPAddress) {
        logger.debug("datapath: delete peer", metadata: ["peer.ip": "\(nodeIP)"])
        state.withLock { _ = $0.peers.remove(nodeIP) }
    }
    public func upsertIPCache(prefix: IPNetwork, identity: UInt32) {
        logger.debug("datapath: upsert ipcache", metadata: ["ipcache.prefix": "\(prefix)", "identity": "\(identity)"])
        state.withLock { $0.ipcache[prefix] = identity }
    }
    public func deleteIPCache(prefix: IPNetwork) {
        logger.debug("datapath: delete ipcache", metadata: ["ipcache.prefix": "\(prefix)"])
        state.withLock { $0.ipcache[prefix] = nil }
    }
    public func attachEndpoint(hostIfindex: Int32) {
        logger.debug("datapath: attach endpoint", metadata: ["endpoint.ifindex": "\(hostIfindex)"])
        state.withLock { _ = $0.attached.insert(hostIfindex) }
    }
    public func detachEndpoint(hostIfindex: Int32) {
        logger.debug("datapath: detach endpoint", metadata: ["endpoint.ifindex": "\(hostIfindex)"])
        state.withLock { _ = $0.attached.remove(hostIfindex) }
    }
    public func upsertEndpoint(ip: IPAddress, hostIfindex: Int32, podMAC: MACAddress, hostMAC: MACAddress, identity: UInt32) {
        logger.debug("datapath: upsert endpoint", metadata: [
            "endpoint.ip": "\(ip)", "endpoint.ifindex": "\(hostIfindex)", "identity": "\(identity)"])
        state.withLock { $0.endpoints[ip] = EndpointEntry(hostIfindex: hostIfindex, podMAC: podMAC, hostMAC: hostMAC, identity: identity) }
    }
    public func deleteEndpoint(ip: IPAddress) {
        logger.debug("datapath: delete endpoint", metadata: ["endpoint.ip": "\(ip)"])
        state.withLock { $0.endpoints[ip] = nil }
    }
    public func programmedEndpoints() -> [IPAddress: EndpointEntry] { state.current.endpoints }
    public func programmedTunnels() -> [IPNetwork: IPAddress] { state.current.tunnels }
    public func programmedPeers() -> Set<IPAddress> { state.current.peers }
    public func programmedIPCache() -> [IPNetwork: UInt32] { state.current.ipcache }
}
