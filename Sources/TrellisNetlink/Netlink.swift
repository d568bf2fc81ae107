import CNetlink
import TrellisNet
#if canImport(Glibc)
import Glibc
#endif

/// A route netlink socket bound to one network namespace, owning its `nl_sock`.
///
/// The socket is opened inside the namespace given at init (on a throw-away thread) and keeps
/// talking to that namespace from whatever thread uses it afterwards. Not thread-safe: one
/// owner at a time, as for any socket.
public final class Netlink: @unchecked Sendable {
    let sock: OpaquePointer

    /// Opens a socket in `namespace`, or in the calling thread's namespace when nil.
    public init(namespace: NetworkNamespace? = nil) throws(NetlinkError) {
        do {
            if let namespace {
                sock = try namespace.run { () throws -> OpaquePointer in try Netlink.connect() }
            } else {
                sock = try Netlink.connect()
            }
        } catch let e as NetlinkError {
            throw e
        } catch {
            throw NetlinkError("open netlink socket", kind: .other, reason: "\(error)")
        }
    }

    private static func connect() throws(NetlinkError) -> OpaquePointer {
        guard let s = nl_socket_alloc() else {
            throw NetlinkError("allocate netlink socket", kind: .other, reason: "out of memory")
        }
        let rc = nl_connect(s, NETLINK_ROUTE)
        guard rc == 0 else {
            nl_socket_free(s)
            throw NetlinkError("connect netlink socket", nlCode: rc)
        }
        return s
    }

    deinit { nl_socket_free(sock) }

    /// `name` of a link for error messages (looked up only on failure paths), `#index` if gone.
    func describeLink(_ index: Int32) -> String {
        ((try? link(index: index)) ?? nil)?.name ?? "#\(index)"
    }
}

// MARK: nl_addr <-> TrellisNet

/// An owned `nl_addr`, released on deinit.
final class NLAddr {
    let raw: OpaquePointer
    init(_ ip: IPAddress, prefixLength: Int? = nil) {
        var bytes = ip.bytes
        raw = nl_addr_build(ip.family == .v4 ? AF_INET : AF_INET6, &bytes, bytes.count)
        nl_addr_set_prefixlen(raw, Int32(prefixLength ?? ip.bitWidth))
    }
    init(_ net: IPNetwork) {
        var bytes = net.address.bytes
        raw = nl_addr_build(net.family == .v4 ? AF_INET : AF_INET6, &bytes, bytes.count)
        nl_addr_set_prefixlen(raw, Int32(net.prefixLength))
    }
    init(_ mac: MACAddress) {
        var bytes = mac.bytes
        raw = nl_addr_build(AF_LLC, &bytes, bytes.count)
    }
    deinit { nl_addr_put(raw) }
}

/// Reads a borrowed `nl_addr` (owned by the object it came from).
func ipNetwork(from addr: OpaquePointer?) -> IPNetwork? {
    guard let addr else { return nil }
    let len = Int(nl_addr_get_len(addr))
    guard let buf = nl_addr_get_binary_addr(addr) else { return nil }
    let bytes = Array(UnsafeRawBufferPointer(start: buf, count: len))
    let prefix = Int(nl_addr_get_prefixlen(addr))
    if len == 0 {
        // A default route's dst has no bytes: 0.0.0.0/0 or ::/0.
        let fam = nl_addr_get_family(addr)
        let zero: IPAddress = fam == AF_INET6 ? .v6(0, 0) : .v4(0)
        return IPNetwork(address: zero, prefixLength: 0)
    }
    guard let ip = IPAddress(bytes: bytes) else { return nil }
    return IPNetwork(address: ip, prefixLength: prefix)
}

func macAddress(from addr: OpaquePointer?) -> MACAddress? {
    guard let addr, nl_addr_get_len(addr) == 6, let buf = nl_addr_get_binary_addr(addr) else { return nil }
    return MACAddress(bytes: Array(UnsafeRawBufferPointer(start: buf, count: 6)))
}

/// Walks a libnl cache, calling `body` with each object.
func forEach(in cache: OpaquePointer, _ body: (OpaquePointer) -> Void) {
    var obj = nl_cache_get_first(cache)
    while let o = obj {
        body(o)
        obj = nl_cache_get_next(o)
    }
}
