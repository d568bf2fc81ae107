#if canImport(Glibc)
import Glibc
#endif

/// A unix socket's address (`sockaddr_un`): the agent binds its socket with it, the plugin,
/// trellisctl and the lab connect with it.
public struct UnixSocketAddress: @unchecked Sendable {
    // @unchecked: sockaddr_un is a plain C struct of integers, copied by value.
    public let path: String
    private let storage: sockaddr_un

    /// The longest path `sun_path` holds, its NUL aside (107 bytes on Linux).
    public static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// nil when `path` is longer than `maxPathBytes` (the kernel would cut it short) or empty.
    public init?(path: String) {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.maxPathBytes else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        self.path = path
        self.storage = addr
    }

    /// Calls `body` with the address as `bind(2)` and `connect(2)` take it.
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) rethrows -> T {
        var addr = storage
        return try withUnsafePointer(to: &addr) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
