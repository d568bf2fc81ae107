import Logging
import TrellisAgent
import TrellisDatapath
import TrellisNet

/// The agent's `DatapathProgrammer` on the real eBPF datapath: every call is a map write or a
/// tc attach through `TrellisDatapath.Datapath`. The agent runs inside its node's network
/// namespace, so tc attach (netlink in the calling thread's namespace) needs no namespace hop.
final class BPFDatapathProgrammer: DatapathProgrammer, @unchecked Sendable {
    // `datapath` is immutable and thread-safe per call; `mode` is written by setNodeConfig,
    // which the agent calls before any attach, from its single actor.
    private let datapath: Datapath
    private var mode: TrellisDatapath.DatapathMode = .ebpf
    private let logger: Logger

    init(datapath: Datapath, logger: Logger) {
        self.datapath = datapath
        self.logger = logger
        if !datapath.replacedMaps.isEmpty {
            // An incompatible pinned map (an upgrade changed its layout) was recreated empty:
            // the reconcilers rewrite its content from the agent's state.
            logger.warning("pinned maps recreated with a new layout", metadata: ["maps": "\(datapath.replacedMaps)"])
        }
    }

    func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: TrellisAgent.DatapathMode,
                       routers: [IPAddress]) throws {
        let m: TrellisDatapath.DatapathMode = mode == .bridge ? .bridge : .ebpf
        self.mode = m
        try datapath.setNodeConfig(NodeConfig(
            nodeIPv4: nodeIP, underlayIfindex: underlayIfindex, vni: vni, mode: m,
            routerIPv4: routers.first { $0.family == .v4 }, routerIPv6: routers.first { $0.family == .v6 }))
    }

    func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: TrellisAgent.DatapathMode) throws {
        try setNodeConfig(nodeIP: nodeIP, underlayIfindex: underlayIfindex, vni: vni, mode: mode, routers: [])
    }

    func attachUnderlay(ifindex: Int32) throws { try datapath.attachUnderlay(ifindex: ifindex) }

    func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) throws { try datapath.upsertTunnel(podCIDR, nodeIP: nodeIP) }
    func deleteTunnel(podCIDR: IPNetwork) throws { _ = try datapath.deleteTunnel(podCIDR) }
    func upsertPeer(nodeIP: IPAddress) throws { try datapath.upsertPeer(nodeIP) }
    func deletePeer(nodeIP: IPAddress) throws { _ = try datapath.deletePeer(nodeIP) }

    func upsertIPCache(prefix: IPNetwork, identity: UInt32) throws { try datapath.upsertIPCache(prefix, identity: identity) }
    func deleteIPCache(prefix: IPNetwork) throws { _ = try datapath.deleteIPCache(prefix) }

    func attachEndpoint(hostIfindex: Int32) throws { try datapath.attachEndpoint(hostIfindex: hostIfindex, mode: mode) }
    func detachEndpoint(hostIfindex: Int32) throws { try datapath.detachEndpoint(hostIfindex: hostIfindex) }
    func upsertEndpoint(ip: IPAddress, hostIfindex: Int32, podMAC: MACAddress, hostMAC: MACAddress, identity: UInt32) throws {
        try datapath.upsertEndpoint(ip, TrellisDatapath.EndpointEntry(hostIfindex: hostIfindex, podMAC: podMAC,
                                                                       hostMAC: hostMAC, identity: identity))
    }
    func deleteEndpoint(ip: IPAddress) throws { _ = try datapath.deleteEndpoint(ip) }

    func programmedEndpoints() throws -> [IPAddress: TrellisAgent.EndpointEntry] {
        var out: [IPAddress: TrellisAgent.EndpointEntry] = [:]
        for (ip, e) in try datapath.endpoints() {
            out[ip] = TrellisAgent.EndpointEntry(hostIfindex: e.hostIfindex, podMAC: e.podMAC, hostMAC: e.hostMAC, identity: e.identity)
        }
        return out
    }
    func programmedTunnels() throws -> [IPNetwork: IPAddress] {
        Dictionary(try datapath.tunnels(), uniquingKeysWith: { a, _ in a })
    }
    func programmedPeers() throws -> Set<IPAddress> { Set(try datapath.peers()) }
    func programmedIPCache() throws -> [IPNetwork: UInt32] {
        Dictionary(try datapath.ipcache(), uniquingKeysWith: { a, _ in a })
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
