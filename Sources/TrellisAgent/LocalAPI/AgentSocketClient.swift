#if canImport(Glibc)
import Glibc
#endif
import TrellisCore
import TrellisJSON

/// The operator's side of the agent's socket (`trellisctl status/explain/monitor`, the lab):
/// one request line, then one answer line, or a stream of lines for `monitor`.
public struct AgentSocketClient: Sendable {
    public let socketPath: String
    /// Seconds to wait for the connection and a single answer.
    public var timeoutSeconds: Int

    public init(socketPath: String, timeoutSeconds: Int = 10) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Sends `request` and returns the answer; an answer with `ok: false` throws its error.
    public func call(_ request: JSONValue) throws(Failure) -> JSONValue {
        let fd = try connected()
        defer { close(fd) }
        try send(fd, request)
        var buffer: [UInt8] = []
        guard let line = try readLine(fd, buffer: &buffer) else {
            throw Failure(description: "trellis-agent at \(socketPath) closed the connection without answering")
        }
        return try answer(line)
    }

    /// Sends a streaming request and hands every line after the first (`{"ok":true,...}`) to
    /// `each` until it returns false, the agent closes, or the process is interrupted.
    public func stream(_ request: JSONValue, _ each: (JSONValue) -> Bool) throws(Failure) {
        let fd = try connected()
        defer { close(fd) }
        try send(fd, request)
        var tv = timeval(tv_sec: 0, tv_usec: 0)   // a stream waits as long as it must
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        guard let first = try readLine(fd, buffer: &buffer) else {
            throw Failure(description: "trellis-agent at \(socketPath) closed the connection without answering")
        }
        _ = try answer(first)
        while let line = try readLine(fd, buffer: &buffer) {
            guard let v = try? JSONValue.parse(line) else { continue }
            if !each(v) { return }
        }
    }

    private func answer(_ line: [UInt8]) throws(Failure) -> JSONValue {
        let v: JSONValue
        do { v = try JSONValue.parse(line) } catch {
            throw Failure(description: "trellis-agent at \(socketPath) answered something that is not JSON: \(error)")
        }
        if v["ok"] == .bool(false) {
            if case .string(let why)? = v["error"] { throw Failure(description: why) }
            throw Failure(description: "trellis-agent at \(socketPath) refused the request")
        }
        return v
    }

    private func connected() throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        Posix.setTimeouts(fd, seconds: timeoutSeconds)
        let addr: UnixSocketAddress
        do { addr = try HandshakeServer.unixAddress(socketPath) } catch {
            close(fd)
            throw Failure(description: "\(error)")
        }
        let rc = addr.withSockaddr { connect(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw Failure(description: "trellis-agent is not reachable at \(socketPath): \(String(cString: strerror(e))) (is it running, and are you root?)")
        }
        return fd
    }

    private func send(_ fd: Int32, _ request: JSONValue) throws(Failure) {
        do { try Posix.sendAll(fd, request.bytes + [0x0A]) } catch {
            throw Failure(description: "trellis-agent at \(socketPath): \(error)")
        }
    }

    /// The next line (without its newline); nil when the peer closed with nothing pending.
    private func readLine(_ fd: Int32, buffer: inout [UInt8]) throws(Failure) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                return line
            }
            let n = Posix.retrying { recv(fd, &chunk, chunk.count, 0) }
            if n == 0 {
                if buffer.isEmpty { return nil }
                defer { buffer = [] }
                return buffer
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw Failure(description: "trellis-agent at \(socketPath) did not answer within \(timeoutSeconds) s")
                }
                throw Failure(description: "trellis-agent at \(socketPath): receive: \(String(cString: strerror(errno)))")
            }
            buffer += chunk[0..<n]
        }
    }
}
