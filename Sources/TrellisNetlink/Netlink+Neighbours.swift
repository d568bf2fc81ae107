import CNetlink
import TrellisNet
#if canImport(Glibc)
import Glibc
#endif

extension Netlink {
    /// Adds or replaces a permanent neighbour entry: `ip` is at `mac` on link `index`.
    ///
    /// Used so that neither side of a routed (ebpf-mode) veth has to resolve the other: the
    /// pod knows its gateway's MAC from the start, and the host knows the pod's.
    public func setPermanentNeighbour(_ ip: IPAddress, mac: MACAddress, index: Int32) throws(NetlinkError) {
        guard let n = rtnl_neigh_alloc() else {
            throw NetlinkError("allocate neighbour", kind: .other, reason: "out of memory")
        }
        defer { rtnl_neigh_put(n) }
        let dst = NLAddr(ip)
        let ll = NLAddr(mac)
        rtnl_neigh_set_ifindex(n, index)
        rtnl_neigh_set_family(n, ip.family == .v4 ? AF_INET : AF_INET6)
        try nlCheck("set neighbour \(ip)", rtnl_neigh_set_dst(n, dst.raw))
        rtnl_neigh_set_lladdr(n, ll.raw)
        rtnl_neigh_set_state(n, Int32(NUD_PERMANENT))
        try nlCheck("add neighbour \(ip) lladdr \(mac) dev \(describeLink(index))",
                    rtnl_neigh_add(sock, n, NLM_F_CREATE | NLM_F_REPLACE))
    }
}
