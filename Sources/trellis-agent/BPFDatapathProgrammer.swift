import Logging
import TrellisAgent
import TrellisCore
import TrellisDatapath
import TrellisNet
import TrellisPolicy

/// The agent's `DatapathProgrammer` on the real eBPF datapath: every call is a map write or a
/// tc attach through `TrellisDatapath.Datapath`. The agent runs inside its node's network
/// namespace, so tc attach (netlink in the calling thread's namespace) needs no namespace hop.
final class BPFDatapathProgrammer: DatapathProgrammer, @unchecked Sendable {
    // `datapath` is immutable and thread-safe per call. `events` is only touched by the one
    // thread that reads drop events (the protocol's rule for readDropEvents).
    private let datapath: Datapath
    private let logger: Logger
    private var events: DropEventReader?
    private let host = OverlayDeviceNetlink()

    init(datapath: Datapath, logger: Logger) {
        self.datapath = datapath
        self.logger = logger
        if !datapath.replacedMaps.isEmpty {
            // An incompatible pinned map (an upgrade changed its layout) was recreated empty:
            // the reconcilers rewrite its content from the agent's state.
            logger.warning("pinned maps recreated with a new layout", metadata: ["maps": "\(datapath.replacedMaps)"])
        }
    }

    func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: DatapathMode,
                       routers: [IPAddress]) throws {
        try datapath.setNodeConfig(NodeConfig(
            nodeIPv4: nodeIP, underlayIfindex: underlayIfindex, vni: vni, mode: mode,
            routerIPv4: routers.first { $0.family == .v4 }, routerIPv6: routers.first { $0.family == .v6 }))
    }

    func attachUnderlay(ifindex: Int32) throws { try datapath.attachUnderlay(ifindex: ifindex) }

    func ensureOverlayDevice(name: String, mtu: Int, addresses: [IPAddress]) throws -> OverlayDevice {
        try host.ensure(name: name, mtu: mtu, addresses: addresses)
    }
    func attachOverlay(_ device: OverlayDevice) throws {
        // The config first: a reply may come back as soon as the first packet went out.
        try datapath.setOverlay(ifindex: device.ifindex, mac: device.mac)
        try datapath.attachOverlay(ifindex: device.ifindex)
    }
    func programmedOverlayRoutes(_ device: OverlayDevice) throws -> [IPNetwork: IPAddress] { try host.routes(device) }
    func upsertOverlayRoute(_ destination: IPNetwork, source: IPAddress, device: OverlayDevice) throws {
        try host.upsertRoute(destination, source: source, device: device)
    }
    func deleteOverlayRoute(_ destination: IPNetwork, device: OverlayDevice) throws {
        try host.deleteRoute(destination, device: device)
    }
    func upsertService(ip: IPAddress) throws { try datapath.upsertService(ip) }
    func deleteService(ip: IPAddress) throws { _ = try datapath.deleteService(ip) }

    func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) throws { try datapath.upsertTunnel(podCIDR, nodeIP: nodeIP) }
    func deleteTunnel(podCIDR: IPNetwork) throws { _ = try datapath.deleteTunnel(podCIDR) }
    func upsertPeer(nodeIP: IPAddress) throws { try datapath.upsertPeer(nodeIP) }
    func deletePeer(nodeIP: IPAddress) throws { _ = try datapath.deletePeer(nodeIP) }

    func upsertIPCache(prefix: IPNetwork, entry: IPCacheEntry) throws { try datapath.upsertIPCache(prefix, entry) }
    func deleteIPCache(prefix: IPNetwork) throws { _ = try datapath.deleteIPCache(prefix) }
    func upsertPolicy(_ key: PolicyMapKey) throws { try datapath.upsertPolicy(key) }
    func deletePolicy(_ key: PolicyMapKey) throws { _ = try datapath.deletePolicy(key) }
    func upsertIdentity(_ id: Identity, fingerprint: UInt64) throws { try datapath.upsertIdentity(id, fingerprint: fingerprint) }
    func deleteIdentity(_ id: Identity) throws { _ = try datapath.deleteIdentity(id) }
    func bumpPolicyGeneration() throws { _ = try datapath.bumpPolicyGeneration() }

    func attachEndpoint(hostIfindex: Int32) throws { try datapath.attachEndpoint(hostIfindex: hostIfindex) }
    func detachEndpoint(hostIfindex: Int32) throws { try datapath.detachEndpoint(hostIfindex: hostIfindex) }
    func upsertEndpoint(ip: IPAddress, _ e: EndpointEntry) throws { try datapath.upsertEndpoint(ip, e) }
    func deleteEndpoint(ip: IPAddress) throws { _ = try datapath.deleteEndpoint(ip) }

    func programmedEndpoints() throws -> [IPAddress: EndpointEntry] {
        Dictionary(try datapath.endpoints(), uniquingKeysWith: { a, _ in a })
    }
    func programmedTunnels() throws -> [IPNetwork: IPAddress] {
        Dictionary(try datapath.tunnels(), uniquingKeysWith: { a, _ in a })
    }
    func programmedPeers() throws -> Set<IPAddress> { Set(try datapath.peers()) }
    func programmedIPCache() throws -> [IPNetwork: IPCacheEntry] {
        Dictionary(try datapath.ipcache(), uniquingKeysWith: { a, _ in a })
    }
    func programmedPolicy() throws -> Set<PolicyMapKey> { Set(try datapath.policyEntries()) }
    func programmedIdentities() throws -> [Identity: UInt64] { try datapath.identities() }
    func programmedServices() throws -> Set<IPAddress> { Set(try datapath.services()) }

    func readDropEvents(timeoutMs: Int32) throws -> [DatapathDropEvent] {
        if events == nil { events = try DropEventReader(datapath) }
        return try events!.poll(timeoutMs: timeoutMs)
    }

    /// Forward and drop counters, summed over CPUs, as Prometheus counters.
    func metrics() -> [String: Double] {
        guard let counts = try? datapath.metrics() else { return [:] }
        var out: [String: Double] = [:]
        for (key, count) in counts {
            let direction = key.direction.label
            if let reason = key.dropReason {
                out["trellis_datapath_drops_total{direction=\"\(direction)\",reason=\"\(reason.label)\"}", default: 0] += Double(count.packets)
            } else if let kind = key.forwardKind {
                out["trellis_datapath_forwards_total{direction=\"\(direction)\",kind=\"\(kind.label)\"}", default: 0] += Double(count.packets)
            }
        }
        return out
    }
}
