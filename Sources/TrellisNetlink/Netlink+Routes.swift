import CNetlink
import TrellisNet
#if canImport(Glibc)
import Glibc
#endif

/// A unicast route of the main table, as far as Trellis reads and writes them.
public struct RouteInfo: Sendable, Equatable {
    public var destination: IPNetwork
    public var gateway: IPAddress?
    public var outputIndex: Int32
    /// The source address the node's own packets on this route get (`src` in `ip route`).
    public var preferredSource: IPAddress?
    /// Who added it (`proto` in `ip route`): `RouteInfo.protocolBoot` unless said otherwise.
    public var proto: UInt8

    /// RTPROT_BOOT, what `ip route add` writes.
    public static let protocolBoot: UInt8 = 3
    /// The routes the agent owns carry this protocol number (`ip route show proto 116`), so it
    /// finds exactly its own again; no other routing daemon registers 116.
    public static let protocolTrellis: UInt8 = 116

    public init(destination: IPNetwork, gateway: IPAddress? = nil, outputIndex: Int32,
                preferredSource: IPAddress? = nil, proto: UInt8 = RouteInfo.protocolBoot) {
        self.destination = destination
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.preferredSource = preferredSource
        self.proto = proto
    }
}

extension Netlink {
    /// Adds a route. `onLink` lets the gateway be outside every connected subnet (the
    /// pod's gateway in ebpf mode is reached through a static neighbour, not a subnet).
    /// An identical route already present counts as success when `existingIsFine`; `replace`
    /// overwrites a route to the same destination (in place: no moment without it).
    public func addRoute(_ route: RouteInfo, onLink: Bool = false,
                         existingIsFine: Bool = false, replace: Bool = false) throws(NetlinkError) {
        guard let r = rtnl_route_alloc(), let nh = rtnl_route_nh_alloc() else {
            throw NetlinkError("allocate route", kind: .other, reason: "out of memory")
        }
        defer { rtnl_route_put(r) }   // owns nh once added
        let family = route.destination.family == .v4 ? AF_INET : AF_INET6
        let dst = NLAddr(route.destination.network)
        _ = rtnl_route_set_family(r, UInt8(family))
        try nlCheck("set route destination \(route.destination)", rtnl_route_set_dst(r, dst.raw))
        rtnl_route_set_table(r, UInt32(RT_TABLE_MAIN.rawValue))
        _ = rtnl_route_set_type(r, UInt8(RTN_UNICAST))
        rtnl_route_set_protocol(r, route.proto)
        let src = route.preferredSource.map { NLAddr($0) }
        if let src { try nlCheck("set preferred source \(route.preferredSource!)", rtnl_route_set_pref_src(r, src.raw)) }
        rtnl_route_set_scope(r, UInt8(route.gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue))
        rtnl_route_nh_set_ifindex(nh, route.outputIndex)
        let gw = route.gateway.map { NLAddr($0) }
        if let gw { rtnl_route_nh_set_gateway(nh, gw.raw) }
        if onLink { rtnl_route_nh_set_flags(nh, UInt32(RTNH_F_ONLINK)) }
        rtnl_route_add_nexthop(r, nh)
        let flags = replace ? NLM_F_CREATE | NLM_F_REPLACE : NLM_F_CREATE | (existingIsFine ? 0 : NLM_F_EXCL)
        let rc = rtnl_route_add(sock, r, flags)
        if rc < 0 {
            let e = NetlinkError("add route \(route.destination)\(route.gateway.map { " via \($0)" } ?? "") dev \(describeLink(route.outputIndex))", nlCode: rc)
            if existingIsFine, e.kind == .exists { return }
            throw e
        }
    }

    /// Deletes a route; false when it was not there.
    @discardableResult
    public func deleteRoute(_ route: RouteInfo) throws(NetlinkError) -> Bool {
        guard let r = rtnl_route_alloc(), let nh = rtnl_route_nh_alloc() else {
            throw NetlinkError("allocate route", kind: .other, reason: "out of memory")
        }
        defer { rtnl_route_put(r) }
        let dst = NLAddr(route.destination.network)
        _ = rtnl_route_set_family(r, UInt8(route.destination.family == .v4 ? AF_INET : AF_INET6))
        _ = rtnl_route_set_dst(r, dst.raw)
        rtnl_route_set_table(r, UInt32(RT_TABLE_MAIN.rawValue))
        rtnl_route_nh_set_ifindex(nh, route.outputIndex)
        rtnl_route_add_nexthop(r, nh)
        let rc = rtnl_route_delete(sock, r, 0)
        if rc < 0 {
            let e = NetlinkError("delete route \(route.destination)", nlCode: rc)
            if e.kind == .notFound || rc == -NLE_FAILURE { return false }   // ESRCH maps to NLE_OBJ_NOTFOUND
            throw e
        }
        return true
    }

    /// Unicast routes of the main table, both families.
    public func routes() throws(NetlinkError) -> [RouteInfo] {
        var cache: OpaquePointer?
        try nlCheck("list routes", rtnl_route_alloc_cache(sock, AF_UNSPEC, 0, &cache))
        defer { nl_cache_free(cache) }
        var out: [RouteInfo] = []
        forEach(in: cache!) { r in
            guard rtnl_route_get_table(r) == UInt32(RT_TABLE_MAIN.rawValue),
                  rtnl_route_get_type(r) == UInt8(RTN_UNICAST),
                  let dst = ipNetwork(from: rtnl_route_get_dst(r)),
                  rtnl_route_get_nnexthops(r) >= 1,
                  let nh = rtnl_route_nexthop_n(r, 0) else { return }
            let gw = ipNetwork(from: rtnl_route_nh_get_gateway(nh))?.address
            out.append(RouteInfo(destination: dst, gateway: gw, outputIndex: rtnl_route_nh_get_ifindex(nh),
                                 preferredSource: ipNetwork(from: rtnl_route_get_pref_src(r))?.address,
                                 proto: rtnl_route_get_protocol(r)))
        }
        return out
    }
}
