import TrellisCNI
import TrellisNet
import TrellisNetlink

/// `ebpf` mode: no bridge. Each pod holds its address as a host route (/32, /128), the node
/// routes to it through its host veth, and the pod's gateway is an address of the node's
/// `hostDevice` (one end of a veth pair, see `hostDevicePeer`), reached through a permanent neighbour entry that names the host
/// veth's MAC: the host side answers for the gateway without ARP/ND or proxying. The tc
/// programs of the datapath forward on top of these routes; without them the kernel does.
struct RoutedWiring: Wiring {
    func podAddress(_ allocated: IPNetwork) -> IPNetwork {
        IPNetwork(address: allocated.address, prefixLength: allocated.address.bitWidth)!
    }

    func podRoutes(_ allocated: IPNetwork, gateway: IPAddress) -> [(route: RouteInfo, onLink: Bool)] {
        let any = IPNetwork(address: allocated.family == .v4 ? .v4(0) : .v6(0, 0), prefixLength: 0)!
        let gw = IPNetwork(address: gateway, prefixLength: gateway.bitWidth)!
        return [
            (RouteInfo(destination: gw, outputIndex: 0), false),
            (RouteInfo(destination: any, gateway: gateway, outputIndex: 0), false),
        ]
    }

    func prepareNode(_ host: Netlink, conf: NetConf) throws(NetlinkError) {
        let device = try host.ensureVethPair(name: conf.hostDevice, peerName: conf.hostDevicePeer)
        for range in conf.ranges {
            let gw = IPNetwork(address: range.gateway, prefixLength: range.gateway.bitWidth)!
            try host.addAddress(gw, index: device.index, existingIsFine: true)
        }
        try enableForwarding(families: conf.families)
    }

    func connectHostSide(_ host: Netlink, hostVeth: LinkInfo, pod: LinkInfo, addresses: [IPNetwork],
                         conf: NetConf) throws(NetlinkError) {
        try host.setLink(index: hostVeth.index, up: true)
        for address in addresses {
            let route = RouteInfo(destination: podAddress(address), outputIndex: hostVeth.index)
            try host.addRoute(route)
            if let mac = pod.mac {
                try host.setPermanentNeighbour(address.address, mac: mac, index: hostVeth.index)
            }
        }
    }

    func connectPodSide(_ pod: Netlink, podLink: LinkInfo, hostVeth: LinkInfo,
                        gateways: [IPAddress]) throws(NetlinkError) {
        guard let mac = hostVeth.mac else { return }
        for gw in gateways {
            try pod.setPermanentNeighbour(gw, mac: mac, index: podLink.index)
        }
    }

    func checkHostSide(_ host: Netlink, hostVeth: LinkInfo, addresses: [IPNetwork],
                       conf: NetConf) throws(NetlinkError) -> String? {
        let routes = try host.routes()
        for address in addresses {
            let want = podAddress(address)
            if !routes.contains(where: { $0.destination == want && $0.outputIndex == hostVeth.index }) {
                return "node has no route to \(want) through \(hostVeth.name)"
            }
        }
        return nil
    }
}
