import CNetlink

/// Device features that only ethtool's ioctl sets (libnl-3 has no ethtool netlink family).
public enum Ethtool {
    /// Turns generic receive offload on or off for `ifname` in the calling thread's namespace.
    ///
    /// On a veth this also switches its receive path to NAPI: packets a pod sends are then
    /// processed in a NAPI poll instead of being queued to the per-CPU backlog one by one.
    /// Measured on the lab's same-node path: 18.5 -> 20.4 Gbit/s, single TCP stream.
    public static func setGRO(_ ifname: String, enabled: Bool) throws(NetlinkError) {
        let rc = trellis_set_gro(ifname, enabled ? 1 : 0)
        if rc < 0 { throw NetlinkError("turn GRO \(enabled ? "on" : "off") on \(ifname)", errno: -rc) }
    }
}
