import TrellisCNI
import TrellisNet
import TrellisNetlink

/// `bridge` mode: host veths are ports of a per-node Linux bridge that holds the gateway
/// addresses. Same-node traffic is switched by the bridge; the rest is routed by the node.
struct BridgeWiring: Wiring {
    func podAddress(_ allocated: IPNetwork) -> IPNetwork { allocated }

    func podRoutes(_ allocated: IPNetwork, gateway: IPAddress) -> [(route: RouteInfo, onLink: Bool)] {
        let any = IPNetwork(address: allocated.family == .v4 ? .v4(0) : .v6(0, 0), prefixLength: 0)!
        return [(RouteInfo(destination: any, gateway: gateway, outputIndex: 0), false)]
    }

    func prepareNode(_ host: Netlink, conf: NetConf) throws(NetlinkError) {
        let bridge = try host.ensureLink(name: conf.bridgeName, kind: "bridge")
        for range in conf.ranges {
            try host.addAddress(conf.gatewayNetwork(range), index: bridge.index, existingIsFine: true)
        }
        if !bridge.isUp { try host.setLink(index: bridge.index, up: true) }
        try enableForwarding(families: conf.families)
    }

    func connectHostSide(_ host: Netlink, hostVeth: LinkInfo, pod: LinkInfo, addresses: [IPNetwork],
                         conf: NetConf) throws(NetlinkError) {
        guard let bridge = try host.link(named: conf.bridgeName) else {
            throw NetlinkError("enslave \(hostVeth.name)", kind: .notFound,
                               reason: "bridge \(conf.bridgeName) disappeared")
        }
        try host.setLink(index: hostVeth.index, up: true, masterIndex: bridge.index)
    }

    func connectPodSide(_ pod: Netlink, podLink: LinkInfo, hostVeth: LinkInfo,
                        gateways: [IPAddress]) throws(NetlinkError) {}

    func checkHostSide(_ host: Netlink, hostVeth: LinkInfo, addresses: [IPNetwork],
                       conf: NetConf) throws(NetlinkError) -> String? {
        guard let bridge = try host.link(named: conf.bridgeName) else {
            return "bridge \(conf.bridgeName) does not exist"
        }
        if hostVeth.masterIndex != bridge.index {
            return "host veth \(hostVeth.name) is not a port of bridge \(conf.bridgeName)"
        }
        return nil
    }
}
