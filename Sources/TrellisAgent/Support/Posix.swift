#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SystemPackage

/// A failed system call: which call, on what, and swift-system's `Errno` (its description is
/// strerror's text).
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Errno

    /// `code` defaults to the calling thread's errno: create the error right after the call.
    public init(_ operation: String, errno code: Int32 = Glibc.errno) {
        self.operation = operation
        self.errno = Errno(rawValue: code)
    }

    public var description: String { "\(operation): \(errno)" }
}

enum Posix {
    /// Retries a call interrupted by a signal; returns its result otherwise.
    @discardableResult
    static func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let rc = call()
            if rc < 0 && errno == EINTR { continue }
            return rc
        }
    }

    /// Writes all of `bytes`, retrying short writes and EINTR. MSG_NOSIGNAL on sockets so a peer
    /// that went away makes EPIPE, not SIGPIPE.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { raw in
                retrying { send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL)) }
            }
            guard n > 0 else { throw SystemError("send") }
            sent += n
        }
    }

    /// Sets the receive and send timeouts of a socket.
    static func setTimeouts(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Creates `path` and its missing parents with `mode` (existing folders keep theirs).
    static func makeDirectories(_ path: String, mode: mode_t) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw SystemError("create folder \(current)")
            }
        }
    }

    /// `path` of the running executable (`/proc/self/exe`), nil when it cannot be read.
    static func executablePath() -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "localhost" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
