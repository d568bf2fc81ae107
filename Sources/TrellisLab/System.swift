import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A lab failure, worded for the operator: what failed and on which object.
public struct LabError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// The process exit code this error should produce.
    public let exitCode: Int32
    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }
    public var description: String { message }
}

/// The plain system calls of the lab, each failure turned into a `LabError` naming the path.
enum Sys {
    static func errorText(_ e: Int32) -> String { String(cString: strerror(e)) }

    static func fail(_ operation: String, _ e: Int32 = errno) -> LabError {
        LabError("\(operation): \(errorText(e))")
    }

    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func sleep(milliseconds: Int) { usleep(UInt32(milliseconds * 1000)) }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    static func isExecutable(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && access(path, X_OK) == 0
    }

    /// The whole file, read until EOF. (Foundation's readers stop at the first short read, and
    /// procfs files such as /proc/self/mountinfo come in page-sized pieces: they get truncated.)
    static func readFile(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { out.append(contentsOf: buffer[0..<n]); continue }
            if n < 0 && errno == EINTR { continue }
            return n == 0 ? out : nil
        }
    }

    static func readText(_ path: String) -> String? {
        readFile(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The last `lines` lines of a text file (empty when unreadable).
    static func tail(_ path: String, lines: Int = 20) -> [String] {
        guard let text = readText(path) else { return [] }
        var all = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if all.last == "" { all.removeLast() }
        return Array(all.suffix(lines))
    }

    /// Replaces `path` atomically and durably: a temp file beside it (a dot file not ending in
    /// .yaml/.json, so directory watchers that read only manifests skip it), fsync, rename over,
    /// fsync of the directory.
    static func writeAtomically(_ data: Data, to path: String, mode: mode_t = 0o644) throws(LabError) {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let tmp = "\(dir)/.\(base).\(getpid()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw fail("create \(tmp)") }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        let written = data.withUnsafeBytes { raw -> Int in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                done += n
            }
            return done
        }
        if written < 0 { let e = errno; close(fd); throw fail("write \(tmp)", e) }
        if fsync(fd) != 0 { let e = errno; close(fd); throw fail("fsync \(tmp)", e) }
        close(fd)
        guard rename(tmp, path) == 0 else { throw fail("rename \(tmp) to \(path)") }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    static func writeAtomically(_ text: String, to path: String, mode: mode_t = 0o644) throws(LabError) {
        try writeAtomically(Data(text.utf8), to: path, mode: mode)
    }

    /// `mkdir -p`; appends to `created` every directory it made, outermost first.
    static func makeDirectories(_ path: String, mode: mode_t = 0o755, created: inout [String]) throws(LabError) {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 {
                created.append(prefix)
            } else if errno != EEXIST {
                throw fail("create directory \(prefix)")
            }
        }
        guard isDirectory(path) else { throw LabError("\(path) exists and is not a directory") }
    }

    static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(LabError) {
        var ignored: [String] = []
        try makeDirectories(path, mode: mode, created: &ignored)
    }

    /// An absolute path with `.`, `..` and repeated slashes removed and the symlinks of its
    /// existing part resolved, so that every spelling of a folder (`/var/run/x`, `/run/x`,
    /// `./x`) gives the same string, whether or not the folder exists yet.
    static func canonicalPath(_ raw: String) -> String {
        let absolute = raw.hasPrefix("/") ? raw : FileManager.default.currentDirectoryPath + "/" + raw
        var parts: [Substring] = []
        for c in absolute.split(separator: "/") {
            if c == "." { continue }
            if c == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(c)
        }
        // The longest existing prefix, resolved; the rest appended as written.
        var split = parts.count
        while split > 0 {
            let prefix = "/" + parts[0..<split].joined(separator: "/")
            if let real = realPath(prefix) {
                let rest = parts[split...].joined(separator: "/")
                if rest.isEmpty { return real }
                return (real == "/" ? "" : real) + "/" + rest
            }
            split -= 1
        }
        return "/" + parts.joined(separator: "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The running executable (`/proc/self/exe`).
    static func selfExecutable() -> String {
        realPath("/proc/self/exe") ?? CommandLine.arguments[0]
    }

    /// Removes a file tree that must not reach into a mount (the caller unmounts first).
    static func removeTree(_ path: String) throws(LabError) {
        guard exists(path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw LabError("remove \(path): \(error.localizedDescription)")
        }
    }

    /// An exclusive `flock` on `path`, held until `release` (or the process's exit).
    static func lock(_ path: String, waitMessage: () -> Void) throws(LabError) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw fail("open \(path)") }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
        waitMessage()
        while flock(fd, LOCK_EX) != 0 {
            let e = errno
            if e != EINTR { close(fd); throw fail("lock \(path)", e) }
            if let interrupted = Interrupts.received { close(fd); throw LabError("interrupted by \(interrupted)") }
        }
        return fd
    }

    static func unlock(_ fd: Int32) { close(fd) }

    /// Marks every descriptor above stderr close-on-exec, so that nothing the lab starts inherits
    /// one. (Foundation's `Process` learns that a child exited when a socket the child inherited
    /// closes: a server or agent holding it would keep whoever started `trellisctl` waiting.)
    static func closeOnExecAbove2() {
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in fds where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// FNV-1a, 64 bits: stable across runs and machines (Swift's `Hasher` is seeded per process).
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    static func hex32(_ h: UInt64) -> String {
        let folded = UInt32(truncatingIfNeeded: h ^ (h >> 32))
        let s = String(folded, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }

    static func randomHex(bytes: Int) -> String {
        (0..<bytes).map { _ in
            let s = String(UInt8.random(in: 0...255), radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }
}

/// SIGINT, SIGTERM and SIGHUP while a lab command changes things: the command notices at its
/// next step, undoes what it made, and exits; nothing is left half-built by a Ctrl-C.
public enum Interrupts {
    nonisolated(unsafe) static var signal: Int32 = 0

    public static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGINT, SIGTERM, SIGHUP] {
            _ = Glibc.signal(s) { n in Interrupts.signal = n }
            sigaddset(&set, s)
        }
        // A parent may have started us with them blocked (Foundation's Process does).
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The name of the signal received, if any.
    static var received: String? {
        switch signal {
        case 0: nil
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        default: "signal \(signal)"
        }
    }

    static func check() throws(LabError) {
        if let s = received { throw LabError("interrupted by \(s)") }
    }
}
