import CNetlink
public func netlinkProbe() -> Int32 { let s = nl_socket_alloc(); defer { nl_socket_free(s) }; return nl_connect(s, NETLINK_ROUTE) }
