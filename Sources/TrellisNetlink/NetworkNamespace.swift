import CNetlink
#if canImport(Glibc)
import Glibc
#endif

/// A network namespace, held open by a file descriptor (`/var/run/netns/NAME`, `/proc/PID/ns/net`).
///
/// Entering a namespace is per thread, and Swift concurrency moves work between threads, so
/// nothing here ever calls `setns` on the caller's thread: `run` does the work on a dedicated
/// pthread that enters the namespace and then exits, so a thread can never be left behind in
/// the wrong namespace. Netlink sockets opened inside stay bound to it and can be used anywhere.
public final class NetworkNamespace: @unchecked Sendable {
    /// Immutable after init; the fd is closed in deinit.
    public let fd: Int32
    public let path: String

    public init(path: String) throws(NetlinkError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetlinkError("open network namespace \(path)", errno: errno) }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Makes the namespace threads share the main thread's malloc arena. glibc gives each new
    /// thread its own arena, which costs a short-lived process ~200 KiB of peak memory; the CNI
    /// plugin, started for every pod, calls this first.
    public static func useSingleMallocArena() { trellis_single_malloc_arena() }

    /// The namespace of the calling process (its main thread's, which is the one it was started in).
    public static func current() throws(NetlinkError) -> NetworkNamespace {
        try NetworkNamespace(path: "/proc/self/ns/net")
    }

    /// True when both refer to the same kernel namespace.
    public func isSame(as other: NetworkNamespace) -> Bool {
        var a = stat(), b = stat()
        return fstat(fd, &a) == 0 && fstat(other.fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    /// Runs `body` on a fresh thread that has entered this namespace; the thread then exits.
    public func run<T>(_ body: () throws -> T) throws -> T {
        let nsfd = fd
        return try onDedicatedThread {
            guard trellis_setns(nsfd, TRELLIS_CLONE_NEWNET) == 0 else {
                throw NetlinkError("enter network namespace \(path)", errno: errno)
            }
            return try body()
        }
    }

    // MARK: named namespaces, as `ip netns` keeps them

    public static let defaultDirectory = "/var/run/netns"

    /// Creates a named namespace bound at `directory/name` (compatible with `ip netns exec`).
    @discardableResult
    public static func create(named name: String, directory: String = defaultDirectory) throws -> NetworkNamespace {
        try prepareNamespaceDirectory(directory)
        let target = directory + "/" + name
        let fd = open(target, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard fd >= 0 else { throw NetlinkError("create \(target)", errno: errno) }
        close(fd)
        do {
            try onDedicatedThread {
                guard trellis_unshare(TRELLIS_CLONE_NEWNET) == 0 else { throw NetlinkError("unshare network namespace", errno: errno) }
                let own = "/proc/self/task/\(trellis_gettid())/ns/net"
                guard mount(own, target, "none", UInt(MS_BIND), nil) == 0 else {
                    throw NetlinkError("bind \(own) to \(target)", errno: errno)
                }
            }
        } catch {
            unlink(target)
            throw error
        }
        let ns = try NetworkNamespace(path: target)
        // A new namespace has lo down; everything expects it up (127.0.0.1 in pods, probes).
        try ns.run { () throws -> Void in
            let nl = try Netlink()
            if let lo = try nl.link(named: "lo") { try nl.setLink(index: lo.index, up: true) }
        }
        return ns
    }

    /// Removes a named namespace; absent is fine. The namespace itself lives on while any
    /// process or open fd still holds it.
    public static func delete(named name: String, directory: String = defaultDirectory) throws(NetlinkError) {
        let target = directory + "/" + name
        if umount2(target, Int32(MNT_DETACH)) != 0, errno != EINVAL, errno != ENOENT {
            throw NetlinkError("unmount \(target)", errno: errno)
        }
        if unlink(target) != 0, errno != ENOENT {
            throw NetlinkError("remove \(target)", errno: errno)
        }
    }

    /// The same preparation `ip netns add` does: the folder is a shared mount point, so that
    /// namespace mounts made later propagate to mount namespaces created after.
    private static func prepareNamespaceDirectory(_ directory: String) throws {
        mkdir(directory, 0o755)
        if mount("", directory, "none", UInt(MS_SHARED | MS_REC), nil) == 0 { return }
        guard errno == EINVAL else { throw NetlinkError("make \(directory) shared", errno: errno) }
        guard mount(directory, directory, "none", UInt(MS_BIND | MS_REC), nil) == 0 else {
            throw NetlinkError("bind-mount \(directory)", errno: errno)
        }
        guard mount("", directory, "none", UInt(MS_SHARED | MS_REC), nil) == 0 else {
            throw NetlinkError("make \(directory) shared", errno: errno)
        }
    }
}

private final class ThreadWork: @unchecked Sendable {
    // Only touched by the worker thread, which the caller joins before reading anything.
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a new pthread and waits for it. The thread is discarded afterwards, which is
/// what makes per-thread state changes (setns, unshare) safe.
func onDedicatedThread<T>(_ body: () throws -> T) throws -> T {
    var result: Result<T, any Error>?
    let thunk: () -> Void = { result = Result { try body() } }
    try withoutActuallyEscaping(thunk) { (escapable: @escaping () -> Void) throws -> Void in
        let unmanaged = Unmanaged.passRetained(ThreadWork(escapable))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<ThreadWork>.fromOpaque(raw!).takeUnretainedValue().body()
            return nil
        }, unmanaged.toOpaque())
        defer { unmanaged.release() }
        guard rc == 0 else { throw NetlinkError("start namespace thread", errno: rc) }
        pthread_join(thread, nil)
    }
    return try result!.get()
}
