import CNetlink
import TrellisNet
#if canImport(Glibc)
import Glibc
#endif

extension Netlink {
    /// Adds `address` (with its prefix length) to a link.
    ///
    /// - noDAD: skip IPv6 duplicate address detection. The addresses come from our own IPAM,
    ///   and a tentative address would make the pod's first packets fail for ~1 s.
    /// - noPrefixRoute: do not add the connected route (used for /32-style host addresses).
    /// - existingIsFine: an identical address already present counts as success (ensure-style).
    public func addAddress(_ address: IPNetwork, index: Int32, noDAD: Bool = true,
                           noPrefixRoute: Bool = false, existingIsFine: Bool = false) throws(NetlinkError) {
        let a = try addressObject(address, index: index)
        defer { rtnl_addr_put(a) }
        var flags: UInt32 = 0
        if noDAD, address.family == .v6 { flags |= UInt32(IFA_F_NODAD) }
        if noPrefixRoute { flags |= UInt32(IFA_F_NOPREFIXROUTE) }
        if flags != 0 { rtnl_addr_set_flags(a, flags) }
        let rc = rtnl_addr_add(sock, a, existingIsFine ? 0 : NLM_F_EXCL)
        if rc < 0 {
            let e = NetlinkError("add address \(address) to \(describeLink(index))", nlCode: rc)
            if existingIsFine, e.kind == .exists { return }
            throw e
        }
    }

    /// Removes `address` (with its prefix length) from a link; false when it was not there.
    @discardableResult
    public func deleteAddress(_ address: IPNetwork, index: Int32) throws(NetlinkError) -> Bool {
        let a = try addressObject(address, index: index)
        defer { rtnl_addr_put(a) }
        let rc = rtnl_addr_delete(sock, a, 0)
        if rc < 0 {
            let e = NetlinkError("delete address \(address) from \(describeLink(index))", nlCode: rc)
            if e.kind == .notFound || rc == -NLE_NOADDR { return false }
            throw e
        }
        return true
    }

    /// A libnl address object for `address` on link `index` (the caller puts it).
    private func addressObject(_ address: IPNetwork, index: Int32) throws(NetlinkError) -> OpaquePointer {
        guard let a = rtnl_addr_alloc() else {
            throw NetlinkError("allocate address", kind: .other, reason: "out of memory")
        }
        let local = NLAddr(address)
        rtnl_addr_set_ifindex(a, index)
        rtnl_addr_set_family(a, address.family == .v4 ? AF_INET : AF_INET6)
        let rc = rtnl_addr_set_local(a, local.raw)
        if rc < 0 {
            rtnl_addr_put(a)
            throw NetlinkError("set address \(address)", nlCode: rc)
        }
        return a
    }

    /// The addresses on a link (all families), with their prefix lengths.
    public func addresses(index: Int32) throws(NetlinkError) -> [IPNetwork] {
        var cache: OpaquePointer?
        try nlCheck("list addresses", rtnl_addr_alloc_cache(sock, &cache))
        defer { nl_cache_free(cache) }
        var out: [IPNetwork] = []
        forEach(in: cache!) { obj in
            guard rtnl_addr_get_ifindex(obj) == index,
                  let n = ipNetwork(from: rtnl_addr_get_local(obj)) else { return }
            out.append(n)
        }
        return out
    }
}
