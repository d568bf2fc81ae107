import TrellisCNI
import TrellisCore
import TrellisNet
import TrellisNetlink

/// How a pod's host-side veth is connected to the node: the part that differs between the
/// `bridge` and `ebpf` modes. The pod side (veth end, addresses, routes) is common.
protocol Wiring {
    /// The address as configured inside the pod for an allocated address.
    func podAddress(_ allocated: IPNetwork) -> IPNetwork
    /// The routes inside the pod, per allocated address and its gateway.
    func podRoutes(_ allocated: IPNetwork, gateway: IPAddress) -> [(route: RouteInfo, onLink: Bool)]
    /// Shared node state every pod needs (bridge or gateway device, forwarding); idempotent.
    func prepareNode(_ host: Netlink, conf: NetConf) throws(NetlinkError)
    /// Connects one host veth; `undo` receives what must be reverted on failure.
    func connectHostSide(_ host: Netlink, hostVeth: LinkInfo, pod: LinkInfo, addresses: [IPNetwork],
                         conf: NetConf) throws(NetlinkError)
    /// Connects the pod end to its gateway beyond addresses and routes (static neighbours).
    func connectPodSide(_ pod: Netlink, podLink: LinkInfo, hostVeth: LinkInfo,
                        gateways: [IPAddress]) throws(NetlinkError)
    /// Verifies the host side for CHECK; returns a description of the first difference.
    func checkHostSide(_ host: Netlink, hostVeth: LinkInfo, addresses: [IPNetwork],
                       conf: NetConf) throws(NetlinkError) -> String?
}

func wiring(for mode: DatapathMode) -> any Wiring {
    switch mode {
    case .bridge: BridgeWiring()
    case .ebpf: RoutedWiring()
    }
}

/// Turns on routing in the node namespace; pods reach anything beyond their own subnet (other
/// nodes, the host's other interfaces) only through it. Written only when not already on.
func enableForwarding(families: Set<IPAddress.Family>) throws(NetlinkError) {
    if families.contains(.v4), Sysctl.get("net.ipv4.ip_forward") != "1" {
        try Sysctl.set("net.ipv4.ip_forward", "1")
    }
    if families.contains(.v6), Sysctl.get("net.ipv6.conf.all.forwarding") != "1" {
        try Sysctl.set("net.ipv6.conf.all.forwarding", "1")
    }
}

extension NetConf {
    /// The other end of the gateway veth pair: `trellis_host` -> `trellis_net`; a name without
    /// the `_host` suffix gets `_net` appended (cut to the kernel's 15 bytes).
    var hostDevicePeer: String {
        if hostDevice.hasSuffix("_host") { return String(hostDevice.dropLast(5)) + "_net" }
        return String(hostDevice.prefix(11)) + "_net"
    }
    var families: Set<IPAddress.Family> { Set(ranges.map { $0.subnet.family }) }
    func gatewayNetwork(_ range: IPRange) -> IPNetwork {
        IPNetwork(address: range.gateway, prefixLength: range.subnet.prefixLength)!
    }
}
