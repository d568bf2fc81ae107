#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TrellisJSON
import TrellisNet

/// The content of `allocations.json`:
/// `{"version":1,"allocations":[{"key":{"containerID":..,"ifname":..},"addresses":["10.0.0.2/24"],
/// "gateways":["10.0.0.1"]}],"cursors":{"10.0.0.0/24":"10.0.0.2"}}`
struct IPAMState {
    static let currentVersion = 1

    var version: Int = IPAMState.currentVersion
    /// Sorted by key.
    var allocations: [Allocation] = []
    /// Per subnet (`10.244.1.0/24`): the address handed out last, where the next search starts.
    var cursors: [String: IPAddress] = [:]
}


/// The files of one state directory, and the system calls on them. Every operation reports
/// failures as `IPAMError.io` naming the path, the operation and the errno.
struct StateFiles {
    let directory: String
    var statePath: String { directory + "/allocations.json" }
    var lockPath: String { directory + "/lock" }
    /// One fixed name: only the holder of the lock writes it, and a leftover of a crashed
    /// writer is truncated and reused by the next one instead of piling up.
    var tempPath: String { directory + "/.allocations.json.tmp" }

    /// Creates the directory (mode 0700) and any missing parent (0755), like `mkdir -p`.
    func createDirectory() throws(IPAMError) {
        var prefix = directory.hasPrefix("/") ? "" : "."
        let components = directory.split(separator: "/")
        for (i, component) in components.enumerated() {
            prefix += "/" + component
            if mkdir(prefix, i == components.count - 1 ? 0o700 : 0o755) != 0 {
                let e = errno
                guard e == EEXIST else { throw .io(path: prefix, errno: e, operation: "mkdir") }
            }
        }
        var st = stat()
        guard stat(directory, &st) == 0 else { throw .io(path: directory, errno: errno, operation: "stat") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw .io(path: directory, errno: ENOTDIR, operation: "mkdir") }
    }

    /// Runs `body` holding `flock` on the lock file: exclusive for read-modify-write, shared for
    /// reads. The lock is released when the descriptor is closed, also when the process dies.
    func withLock<T>(exclusive: Bool, _ body: () throws(IPAMError) -> T) throws(IPAMError) -> T {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .io(path: lockPath, errno: errno, operation: "open") }
        defer { close(fd) }
        while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            let e = errno
            guard e == EINTR else { throw .io(path: lockPath, errno: e, operation: "flock") }
        }
        return try body()
    }

    /// The state; empty when the file does not exist. Call with the lock held.
    func load() throws(IPAMError) -> IPAMState {
        let path = statePath
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return IPAMState() }
            throw .io(path: path, errno: e, operation: "open")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        // Small chunks: the plugin reads this for every pod, and each zeroed page of a large
        // buffer would count in its peak memory; the file is a few KiB.
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                throw .io(path: path, errno: e, operation: "read")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return try Self.decode(bytes, path: path)
    }

    static func decode(_ data: [UInt8], path: String) throws(IPAMError) -> IPAMState {
        guard !data.isEmpty else { throw .stateCorrupt(path: path, reason: "the file is empty") }
        let tree: JSONValue
        do { tree = try JSONValue.parse(data) } catch {
            throw .stateCorrupt(path: path, reason: "\(error)")
        }
        guard case .number(let v)? = tree["version"], let version = Int(exactly: v) else {
            throw .stateCorrupt(path: path, reason: "no format version: the key \"version\" is missing or not an integer")
        }
        guard version == IPAMState.currentVersion else {
            throw .stateCorrupt(path: path, reason: "format version \(version) is not supported (this plugin writes version \(IPAMState.currentVersion))")
        }
        let state: IPAMState
        do { state = try IPAMState(tree) } catch {
            throw .stateCorrupt(path: path, reason: error.reason)
        }
        var seen = Set<AttachmentKey>()
        for a in state.allocations {
            guard seen.insert(a.key).inserted else {
                throw .stateCorrupt(path: path, reason: "two allocations for \(a.key)")
            }
            guard a.addresses.count == a.gateways.count else {
                throw .stateCorrupt(path: path, reason: "allocation for \(a.key) has \(a.addresses.count) addresses but \(a.gateways.count) gateways")
            }
        }
        return state
    }

    /// Replaces the state file atomically and durably: temp file in the same directory, fsync,
    /// rename over, fsync the directory. Call with the exclusive lock held.
    func store(_ state: IPAMState) throws(IPAMError) {
        var state = state
        state.version = IPAMState.currentVersion
        state.allocations.sort { $0.key < $1.key }
        let data = state.json.bytes + [0x0A]

        let tmp = tempPath
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .io(path: tmp, errno: errno, operation: "open") }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        do {
            defer { close(fd) }
            let failure: Int32? = data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) -> Int32? in
                var offset = 0
                while offset < buf.count {
                    let n = write(fd, buf.baseAddress! + offset, buf.count - offset)
                    if n < 0 {
                        let e = errno
                        if e == EINTR { continue }
                        return e
                    }
                    offset += n
                }
                return nil
            }
            if let e = failure { throw .io(path: tmp, errno: e, operation: "write") }
            guard fsync(fd) == 0 else { throw .io(path: tmp, errno: errno, operation: "fsync") }
        }
        guard rename(tmp, statePath) == 0 else {
            throw .io(path: statePath, errno: errno, operation: "rename \(tmp) to")
        }
        ok = true
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw .io(path: directory, errno: errno, operation: "open") }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw .io(path: directory, errno: errno, operation: "fsync") }
    }
}

// MARK: - JSON form

struct StateFormatError: Error { let reason: String }

extension IPAMState {
    var json: JSONValue {
        .object([
            ("version", .int(version)),
            ("allocations", .array(allocations.map { a in
                .object([
                    ("key", .object([("containerID", .string(a.key.containerID)), ("ifname", .string(a.key.ifname))])),
                    ("addresses", .strings(a.addresses.map(\.description))),
                    ("gateways", .array(a.gateways.map { $0.map { .string($0.description) } ?? .null })),
                ])
            })),
            ("cursors", .object(cursors.keys.sorted().map { ($0, .string(cursors[$0]!.description)) })),
        ])
    }

    init(_ tree: JSONValue) throws(StateFormatError) {
        func fail(_ at: String, _ what: String) -> StateFormatError { StateFormatError(reason: "at \(at): \(what)") }
        func string(_ v: JSONValue?, _ at: String) throws(StateFormatError) -> String {
            guard case .string(let s)? = v else { throw fail(at, "expected a string") }
            return s
        }
        guard case .array(let items)? = tree["allocations"] else { throw fail("allocations", "expected an array") }
        var allocations: [Allocation] = []
        for (i, item) in items.enumerated() {
            let at = "allocations[\(i)]"
            let key = AttachmentKey(containerID: try string(item["key"]?["containerID"], at + ".key.containerID"),
                                    ifname: try string(item["key"]?["ifname"], at + ".key.ifname"))
            guard case .array(let addrs)? = item["addresses"] else { throw fail(at + ".addresses", "expected an array") }
            guard case .array(let gws)? = item["gateways"] else { throw fail(at + ".gateways", "expected an array") }
            var addresses: [IPNetwork] = []
            for (j, a) in addrs.enumerated() {
                let text = try string(a, "\(at).addresses[\(j)]")
                guard let n = IPNetwork(text) else { throw fail("\(at).addresses[\(j)]", "\"\(text)\" is not an address with a prefix length") }
                addresses.append(n)
            }
            var gateways: [IPAddress?] = []
            for (j, g) in gws.enumerated() {
                if case .null = g { gateways.append(nil); continue }
                let text = try string(g, "\(at).gateways[\(j)]")
                guard let ip = IPAddress(text) else { throw fail("\(at).gateways[\(j)]", "\"\(text)\" is not an address") }
                gateways.append(ip)
            }
            allocations.append(Allocation(key: key, addresses: addresses, gateways: gateways))
        }
        var cursors: [String: IPAddress] = [:]
        if let c = tree["cursors"] {
            guard case .object(let members) = c else { throw fail("cursors", "expected an object") }
            for m in members {
                let text = try string(m.value, "cursors.\(m.key)")
                guard let ip = IPAddress(text) else { throw fail("cursors.\(m.key)", "\"\(text)\" is not an address") }
                cursors[m.key] = ip
            }
        }
        self.init(version: IPAMState.currentVersion, allocations: allocations, cursors: cursors)
    }
}
