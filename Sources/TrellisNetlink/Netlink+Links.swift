import CNetlink
import TrellisNet
#if canImport(Glibc)
import Glibc
#endif

/// What Trellis needs to know of a link.
public struct LinkInfo: Sendable, Equatable {
    public var index: Int32
    public var name: String
    public var kind: String?        // "veth", "bridge", "dummy", nil for plain devices
    public var mac: MACAddress?
    public var mtu: Int
    public var isUp: Bool
    public var masterIndex: Int32   // 0 when not enslaved
    /// IFF_NOARP: the kernel resolves no neighbours on it (frames go out to the device's own MAC).
    public var noARP: Bool = false
}

extension Netlink {
    /// The link with that name, or nil when there is none.
    public func link(named name: String) throws(NetlinkError) -> LinkInfo? {
        try fetchLink(index: 0, name: name)
    }

    /// The link with that index, or nil when there is none.
    public func link(index: Int32) throws(NetlinkError) -> LinkInfo? {
        try fetchLink(index: index, name: nil)
    }

    private func fetchLink(index: Int32, name: String?) throws(NetlinkError) -> LinkInfo? {
        var raw: OpaquePointer?
        let rc = rtnl_link_get_kernel(sock, index, name, &raw)
        if rc < 0 {
            let e = NetlinkError("look up link \(name ?? "#\(index)")", nlCode: rc)
            if e.kind == .notFound { return nil }
            throw e
        }
        guard let l = raw else { return nil }
        defer { rtnl_link_put(l) }
        return LinkInfo(
            index: rtnl_link_get_ifindex(l),
            name: String(cString: rtnl_link_get_name(l)),
            kind: rtnl_link_get_type(l).map { String(cString: $0) },
            mac: macAddress(from: rtnl_link_get_addr(l)),
            mtu: Int(rtnl_link_get_mtu(l)),
            isUp: rtnl_link_get_flags(l) & UInt32(IFF_UP.rawValue) != 0,
            masterIndex: Int32(rtnl_link_get_master(l)),
            noARP: rtnl_link_get_flags(l) & UInt32(IFF_NOARP.rawValue) != 0)
    }

    /// Creates a veth pair whose peer is born inside `peerNamespace` under `peerName`, so the
    /// pod end never appears in the host namespace (no rename, no move, no name clash there).
    public func addVethPair(name: String, peerName: String, peerNamespace: NetworkNamespace,
                            mtu: Int, peerMAC: MACAddress? = nil) throws(NetlinkError) {
        guard let link = rtnl_link_veth_alloc() else {
            throw NetlinkError("allocate veth \(name)", kind: .other, reason: "out of memory")
        }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        rtnl_link_set_mtu(link, UInt32(mtu))
        let peer = rtnl_link_veth_get_peer(link)!
        defer { rtnl_link_put(peer) }   // get_peer takes a reference
        rtnl_link_set_name(peer, peerName)
        rtnl_link_set_mtu(peer, UInt32(mtu))
        rtnl_link_set_ns_fd(peer, peerNamespace.fd)
        let peerAddr = peerMAC.map { NLAddr($0) }
        if let peerAddr { rtnl_link_set_addr(peer, peerAddr.raw) }
        try nlCheck("create veth \(name) with peer \(peerName) in \(peerNamespace.path)",
                    rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL))
    }

    /// Ensures a link of `kind` (e.g. bridge) named `name` exists and returns it. An existing
    /// link of another kind is an error: we never take over someone else's device.
    @discardableResult
    public func ensureLink(name: String, kind: String, mtu: Int? = nil) throws(NetlinkError) -> LinkInfo {
        if let existing = try link(named: name) {
            guard existing.kind == kind else {
                throw NetlinkError("use \(name) as \(kind)", kind: .exists,
                                   reason: "a link named \(name) exists and is a \(existing.kind ?? "plain device"), not a \(kind)")
            }
            return existing
        }
        guard let l = rtnl_link_alloc() else {
            throw NetlinkError("allocate \(kind) \(name)", kind: .other, reason: "out of memory")
        }
        defer { rtnl_link_put(l) }
        rtnl_link_set_name(l, name)
        try nlCheck("set type \(kind) on \(name)", rtnl_link_set_type(l, kind))
        if let mtu { rtnl_link_set_mtu(l, UInt32(mtu)) }
        let rc = rtnl_link_add(sock, l, NLM_F_CREATE | NLM_F_EXCL)
        // Another plugin process may have created it between our look-up and our add.
        if rc < 0, NetlinkError("", nlCode: rc).kind != .exists {
            throw NetlinkError("create \(kind) \(name)", nlCode: rc)
        }
        guard let created = try link(named: name), created.kind == kind else {
            throw NetlinkError("create \(kind) \(name)", kind: .exists,
                               reason: "\(name) appeared concurrently as another kind of link")
        }
        return created
    }

    /// Ensures a veth pair `name` <-> `peerName` exists in this namespace, both ends up, and
    /// returns the `name` end. Used for the node's gateway device: many kernels ship without
    /// the dummy driver, veth is always there, and the pair gives the datapath a host-facing
    /// attach point (Cilium's cilium_host/cilium_net, for the same reasons).
    @discardableResult
    public func ensureVethPair(name: String, peerName: String) throws(NetlinkError) -> LinkInfo {
        if try link(named: name) == nil {
            guard let link = rtnl_link_veth_alloc() else {
                throw NetlinkError("allocate veth \(name)", kind: .other, reason: "out of memory")
            }
            defer { rtnl_link_put(link) }
            rtnl_link_set_name(link, name)
            let peer = rtnl_link_veth_get_peer(link)!
            defer { rtnl_link_put(peer) }
            rtnl_link_set_name(peer, peerName)
            let rc = rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL)
            // Another plugin process may have created it between our look-up and our add.
            if rc < 0, NetlinkError("", nlCode: rc).kind != .exists {
                throw NetlinkError("create veth pair \(name)/\(peerName)", nlCode: rc)
            }
        }
        guard let device = try link(named: name), device.kind == "veth" else {
            throw NetlinkError("use \(name) as the gateway device", kind: .exists,
                               reason: "a link named \(name) exists and is not a veth")
        }
        guard let peer = try link(named: peerName) else {
            throw NetlinkError("use \(name) as the gateway device", kind: .notFound,
                               reason: "its peer \(peerName) is missing")
        }
        if !peer.isUp { try setLink(index: peer.index, up: true) }
        if !device.isUp { try setLink(index: device.index, up: true) }
        return device
    }

    /// Changes the given attributes of a link; nil leaves an attribute as it is.
    public func setLink(index: Int32, up: Bool? = nil, mtu: Int? = nil, masterIndex: Int32? = nil,
                        mac: MACAddress? = nil, noARP: Bool? = nil) throws(NetlinkError) {
        guard let orig = rtnl_link_alloc(), let change = rtnl_link_alloc() else {
            throw NetlinkError("allocate link change", kind: .other, reason: "out of memory")
        }
        defer { rtnl_link_put(orig); rtnl_link_put(change) }
        rtnl_link_set_ifindex(orig, index)
        if let up {
            if up { rtnl_link_set_flags(change, UInt32(IFF_UP.rawValue)) }
            else { rtnl_link_unset_flags(change, UInt32(IFF_UP.rawValue)) }
        }
        if let noARP {
            if noARP { rtnl_link_set_flags(change, UInt32(IFF_NOARP.rawValue)) }
            else { rtnl_link_unset_flags(change, UInt32(IFF_NOARP.rawValue)) }
        }
        if let mtu { rtnl_link_set_mtu(change, UInt32(mtu)) }
        if let masterIndex { rtnl_link_set_master(change, masterIndex) }
        let macAddr = mac.map { NLAddr($0) }
        if let macAddr { rtnl_link_set_addr(change, macAddr.raw) }
        let rc = rtnl_link_change(sock, orig, change, 0)
        if rc < 0 { throw NetlinkError("change link \(describeLink(index))", nlCode: rc) }
    }

    /// Deletes a link by name. Returns false when there was no such link (not an error: DEL
    /// must be idempotent).
    @discardableResult
    public func deleteLink(named name: String) throws(NetlinkError) -> Bool {
        guard let l = rtnl_link_alloc() else {
            throw NetlinkError("allocate link", kind: .other, reason: "out of memory")
        }
        defer { rtnl_link_put(l) }
        rtnl_link_set_name(l, name)
        let rc = rtnl_link_delete(sock, l)
        if rc < 0 {
            let e = NetlinkError("delete link \(name)", nlCode: rc)
            if e.kind == .notFound { return false }
            throw e
        }
        return true
    }
}
