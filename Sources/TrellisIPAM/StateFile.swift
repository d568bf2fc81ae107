#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TrellisNet

/// The content of `allocations.json`.
struct IPAMState: Codable {
    static let currentVersion = 1

    var version: Int = IPAMState.currentVersion
    /// Sorted by key.
    var allocations: [Allocation] = []
    /// Per subnet (`10.244.1.0/24`): the address handed out last, where the next search starts.
    var cursors: [String: IPAddress] = [:]
}

private struct VersionProbe: Decodable { var version: Int }

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
        var chunk = [UInt8](repeating: 0, count: 65536)
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
        return try Self.decode(Data(bytes), path: path)
    }

    static func decode(_ data: Data, path: String) throws(IPAMError) -> IPAMState {
        guard !data.isEmpty else { throw .stateCorrupt(path: path, reason: "the file is empty") }
        let decoder = JSONDecoder()
        let version: Int
        do {
            version = try decoder.decode(VersionProbe.self, from: data).version
        } catch {
            throw .stateCorrupt(path: path, reason: "no format version: \(describe(error))")
        }
        guard version == IPAMState.currentVersion else {
            throw .stateCorrupt(path: path, reason: "format version \(version) is not supported (this plugin writes version \(IPAMState.currentVersion))")
        }
        let state: IPAMState
        do {
            state = try decoder.decode(IPAMState.self, from: data)
        } catch {
            throw .stateCorrupt(path: path, reason: describe(error))
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
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(state)
        } catch {
            throw .io(path: statePath, errno: EINVAL, operation: "encode state (\(describe(error)))")
        }

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

/// A one-line account of a decoding error, with the coding path.
private func describe(_ error: any Error) -> String {
    guard let e = error as? DecodingError else { return "\(error)" }
    func at(_ c: DecodingError.Context) -> String {
        let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return path.isEmpty ? c.debugDescription : "at \(path): \(c.debugDescription)"
    }
    switch e {
    case .dataCorrupted(let c): return at(c)
    case .keyNotFound(let k, let c): return "missing key \"\(k.stringValue)\" " + at(c)
    case .typeMismatch(_, let c): return at(c)
    case .valueNotFound(_, let c): return at(c)
    @unknown default: return "\(e)"
    }
}
