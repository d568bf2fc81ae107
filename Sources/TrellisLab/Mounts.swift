import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The bpffs mounts of the lab's nodes (one per node, on a folder of the state directory, so
/// that each simulated node pins its maps apart from the others and from the host's /sys/fs/bpf).
enum Mounts {
    /// `mount -t bpf bpf PATH`.
    static func mountBPF(at path: String) throws(LabError) {
        guard mount("bpf", path, "bpf", 0, "mode=0700") == 0 else {
            throw Sys.fail("mount bpffs on \(path)")
        }
    }

    /// Mount points at or below `directory` in this mount namespace, deepest first (unmount order).
    static func mountPoints(under directory: String) -> [String] {
        guard let text = Sys.readText("/proc/self/mountinfo") else { return [] }
        var out: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let point = unescape(fields[4])
            if point == directory || point.hasPrefix(directory + "/") { out.append(point) }
        }
        // Later lines are mounted on top of earlier ones: undo in reverse.
        return out.reversed()
    }

    /// Unmounts every mount at or below `directory` (lazily: a process still inside keeps its
    /// view, the tree is detached at once). Throws when one stays.
    static func unmountAll(under directory: String) throws(LabError) {
        for _ in 0..<8 {
            let points = mountPoints(under: directory)
            if points.isEmpty { return }
            for p in points {
                if umount2(p, Int32(MNT_DETACH)) != 0, errno != EINVAL, errno != ENOENT {
                    throw Sys.fail("unmount \(p)")
                }
            }
        }
        if let left = mountPoints(under: directory).first {
            throw LabError("unmount \(left): still mounted after repeated attempts")
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    private static func unescape(_ s: Substring) -> String {
        guard s.contains("\\") else { return String(s) }
        var bytes: [UInt8] = []
        var u = Array(s.utf8)[...]
        while let b = u.first {
            if b == UInt8(ascii: "\\"), u.count >= 4,
               let v = UInt8(String(decoding: u.dropFirst().prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(v)
                u = u.dropFirst(4)
            } else {
                bytes.append(b)
                u = u.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
