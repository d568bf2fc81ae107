#if canImport(Glibc)
import Glibc
#endif
import Logging
import TrellisCore
import TrellisNet
import TrellisPolicy

/// A `DatapathProgrammer` that programs nothing: it logs every call and keeps the entries in
/// memory, so the agent's logic (reconcilers, handshake, readiness) runs end to end without
/// the eBPF datapath. Development and tests only; it is not persistent, so a restarted agent
/// adopts nothing from it.
public final class InMemoryDatapath: DatapathProgrammer, @unchecked Sendable {
    public struct State: Sendable, Equatable {
        public var nodeConfig: NodeConfig?
        public var underlayIfindex: Int32?
        public var tunnels: [IPNetwork: IPAddress] = [:]
        public var peers: Set<IPAddress> = []
        public var ipcache: [IPNetwork: IPCacheEntry] = [:]
        public var policy: Set<PolicyMapKey> = []
        public var identities: [Identity: UInt64] = [:]
        public var policyGeneration: UInt32 = 0
        public var attached: Set<Int32> = []
        public var endpoints: [IPAddress: EndpointEntry] = [:]
        public var overlay: OverlayDevice?
        public var overlayAttached: Int32?
        public var overlayRoutes: [IPNetwork: IPAddress] = [:]
        public var services: Set<IPAddress> = []
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

    /// Logs the call at debug level and applies it to the state.
    private func record(_ what: String, _ metadata: Logger.Metadata = [:], _ change: (inout State) -> Void) {
        logger.debug("datapath: \(what)", metadata: metadata)
        state.withLock(change)
    }

    public func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: DatapathMode,
                              routers: [IPAddress]) {
        record("set node config", ["node.ip": "\(nodeIP)", "underlay.ifindex": "\(underlayIfindex)", "vni": "\(vni)",
                                   "mode": "\(mode.rawValue)", "routers": "\(routers.map(\.description).joined(separator: ","))"]) {
            $0.nodeConfig = NodeConfig(nodeIP: nodeIP, underlayIfindex: underlayIfindex, vni: vni, mode: mode, routers: routers)
        }
    }
    public func attachUnderlay(ifindex: Int32) {
        record("attach underlay", ["underlay.ifindex": "\(ifindex)"]) { $0.underlayIfindex = ifindex }
    }
    public func ensureOverlayDevice(name: String, mtu: Int, addresses: [IPAddress]) -> OverlayDevice {
        let device = OverlayDevice(ifindex: 1_000_000, name: name, mac: MACAddress(bytes: [2, 0, 0, 0, 0, 1])!)
        record("ensure overlay device", ["overlay.device": "\(name)", "mtu": "\(mtu)",
                                         "addresses": "\(addresses.map(\.description).joined(separator: ","))"]) {
            $0.overlay = device
        }
        return device
    }
    public func attachOverlay(_ device: OverlayDevice) {
        record("attach overlay", ["overlay.ifindex": "\(device.ifindex)"]) { $0.overlayAttached = device.ifindex }
    }
    public func programmedOverlayRoutes(_ device: OverlayDevice) -> [IPNetwork: IPAddress] { state.current.overlayRoutes }
    public func upsertOverlayRoute(_ destination: IPNetwork, source: IPAddress, device: OverlayDevice) {
        record("upsert overlay route", ["route.dst": "\(destination)", "route.src": "\(source)"]) {
            $0.overlayRoutes[destination] = source
        }
    }
    public func deleteOverlayRoute(_ destination: IPNetwork, device: OverlayDevice) {
        record("delete overlay route", ["route.dst": "\(destination)"]) { $0.overlayRoutes[destination] = nil }
    }
    public func upsertService(ip: IPAddress) {
        record("upsert service", ["service.ip": "\(ip)"]) { _ = $0.services.insert(ip) }
    }
    public func deleteService(ip: IPAddress) {
        record("delete service", ["service.ip": "\(ip)"]) { _ = $0.services.remove(ip) }
    }
    public func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) {
        record("upsert tunnel", ["tunnel.cidr": "\(podCIDR)", "tunnel.nodeIP": "\(nodeIP)"]) { $0.tunnels[podCIDR] = nodeIP }
    }
    public func deleteTunnel(podCIDR: IPNetwork) {
        record("delete tunnel", ["tunnel.cidr": "\(podCIDR)"]) { $0.tunnels[podCIDR] = nil }
    }
    public func upsertPeer(nodeIP: IPAddress) {
        record("upsert peer", ["peer.ip": "\(nodeIP)"]) { _ = $0.peers.insert(nodeIP) }
    }
    public func deletePeer(nodeIP: IPAddress) {
        record("delete peer", ["peer.ip": "\(nodeIP)"]) { _ = $0.peers.remove(nodeIP) }
    }
    public func upsertIPCache(prefix: IPNetwork, entry: IPCacheEntry) {
        record("upsert ipcache", ["ipcache.prefix": "\(prefix)", "identity": "\(entry)"]) { $0.ipcache[prefix] = entry }
    }
    public func deleteIPCache(prefix: IPNetwork) {
        record("delete ipcache", ["ipcache.prefix": "\(prefix)"]) { $0.ipcache[prefix] = nil }
    }
    public func upsertPolicy(_ key: PolicyMapKey) {
        record("upsert policy", ["policy.entry": "\(key)"]) { _ = $0.policy.insert(key) }
    }
    public func deletePolicy(_ key: PolicyMapKey) {
        record("delete policy", ["policy.entry": "\(key)"]) { _ = $0.policy.remove(key) }
    }
    public func upsertIdentity(_ id: Identity, fingerprint: UInt64) {
        record("upsert identity", ["identity": "\(id)"]) { $0.identities[id] = fingerprint }
    }
    public func deleteIdentity(_ id: Identity) {
        record("delete identity", ["identity": "\(id)"]) { $0.identities[id] = nil }
    }
    public func bumpPolicyGeneration() {
        record("bump policy generation") { $0.policyGeneration &+= 1 }
    }
    public func attachEndpoint(hostIfindex: Int32) {
        record("attach endpoint", ["endpoint.ifindex": "\(hostIfindex)"]) { _ = $0.attached.insert(hostIfindex) }
    }
    public func detachEndpoint(hostIfindex: Int32) {
        record("detach endpoint", ["endpoint.ifindex": "\(hostIfindex)"]) { _ = $0.attached.remove(hostIfindex) }
    }
    public func upsertEndpoint(ip: IPAddress, _ entry: EndpointEntry) {
        record("upsert endpoint", ["endpoint.ip": "\(ip)", "endpoint.ifindex": "\(entry.hostIfindex)",
                                   "identity": "\(entry.identity)", "policy.id": "\(entry.policyID)"]) {
            $0.endpoints[ip] = entry
        }
    }
    public func deleteEndpoint(ip: IPAddress) {
        record("delete endpoint", ["endpoint.ip": "\(ip)"]) { $0.endpoints[ip] = nil }
    }
    public func programmedEndpoints() -> [IPAddress: EndpointEntry] { state.current.endpoints }
    public func programmedTunnels() -> [IPNetwork: IPAddress] { state.current.tunnels }
    public func programmedPeers() -> Set<IPAddress> { state.current.peers }
    public func programmedIPCache() -> [IPNetwork: IPCacheEntry] { state.current.ipcache }
    public func programmedPolicy() -> Set<PolicyMapKey> { state.current.policy }
    public func programmedIdentities() -> [Identity: UInt64] { state.current.identities }
    public func programmedServices() -> Set<IPAddress> { state.current.services }

    /// No packets, no drops: waits the time asked, so a reader loop does not spin.
    public func readDropEvents(timeoutMs: Int32) throws -> [DatapathDropEvent] {
        usleep(UInt32(max(0, timeoutMs)) * 1000)
        return []
    }
}
