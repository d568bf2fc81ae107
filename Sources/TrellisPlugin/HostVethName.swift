/// The host-side veth name of an attachment, derived from (container ID, interface name) alone.
///
/// Deriving it instead of storing it means DEL finds the veth even when the pod's netns is gone
/// and no prevResult is given, and GC can remove the veths of attachments it releases.
/// "trl" + 12 hex digits of FNV-1a/64 = 15 bytes, the kernel's limit (IFNAMSIZ - 1).
public enum HostVethName {
    public static let prefix = "trl"

    public static func of(containerID: String, ifName: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (containerID + "/" + ifName).utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        let padded = String(repeating: "0", count: 16 - hex.count) + hex
        return prefix + padded.prefix(12)
    }
}
