#if canImport(Glibc)
import Glibc
#endif

/// Kernel parameters under /proc/sys. `/proc/sys/net` shows the network namespace of the
/// thread that opens the file, so call these inside `NetworkNamespace.run` for another namespace.
public enum Sysctl {
    /// Writes `value` to `/proc/sys/<key with dots as slashes>`.
    public static func set(_ key: String, _ value: String) throws(NetlinkError) {
        let path = "/proc/sys/" + key.replacingDots()
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError("open \(path)", errno: errno) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw NetlinkError("write \(value) to \(path)", errno: errno) }
    }

    /// Reads the value, trimmed; nil when the key does not exist.
    public static func get(_ key: String) -> String? {
        let path = "/proc/sys/" + key.replacingDots()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buf, buf.count)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: [" ", "\n"])
    }
}

private extension String {
    func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
    func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
