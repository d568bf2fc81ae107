#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import TrellisCore

/// The agent's socket (docs/agent.md): the CNI handshake and the operator's local API. A unix
/// stream socket, one JSON request line per connection, one JSON answer line back; a `monitor`
/// request is answered with a stream of lines instead, until the client closes.
///
/// The socket's folder is created 0700 when missing, the socket file is 0600 (only root's
/// plugin talks to it). A stale socket file from an earlier agent is removed; a live one
/// (another agent answers on it) is an error, as is a path that holds something else.
public final class HandshakeServer: Sendable {
    public typealias Handler = @Sendable (AgentRequest) async -> AgentAnswer
    /// Serves a streaming request on the connection's socket, blocking its thread until done.
    public typealias Streamer = @Sendable (AgentRequest, Int32) -> Void

    public let path: String
    private let server: SocketServer
    /// How long a client may take to send its request.
    static let requestTimeoutSeconds = 10
    static let maxRequestBytes = 64 * 1024

    public init(path: String, logger: Logger, handler: @escaping Handler,
                streamer: Streamer? = nil) throws(SystemError) {
        self.path = path
        let fd = try Self.listen(at: path)
        var log = logger
        log[metadataKey: "socket.path"] = .string(path)
        let connectionLogger = log
        do {
            server = try SocketServer(listening: fd, name: "trellis handshake") { conn in
                Self.serve(conn, handler: handler, streamer: streamer, logger: connectionLogger)
            }
        } catch {
            close(fd)
            throw error
        }
    }

    public func start() { server.start() }

    /// Stops answering and removes the socket file, so the plugin sees "not running" at once.
    public func stop() async {
        await server.stop()
        unlink(path)
    }

    private static func serve(_ fd: Int32, handler: @escaping Handler, streamer: Streamer?, logger: Logger) {
        Posix.setTimeouts(fd, seconds: requestTimeoutSeconds)
        let (data, problem) = readUntil(fd, delimiter: [0x0A], limit: maxRequestBytes)
        let answer: AgentAnswer
        if let problem {
            answer = .failure(problem)
        } else if data.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
            answer = .failure("empty request: expected one JSON object on one line")
        } else {
            do {
                let request = try AgentRequest.parse(data)
                if case .monitor = request {
                    guard let streamer else {
                        answer = .failure("this agent has no drop monitor")
                        try? Posix.sendAll(fd, answer.line)
                        return
                    }
                    streamer(request, fd)
                    return
                }
                answer = waitForAsync { await handler(request) }
            } catch {
                logger.warning("malformed handshake request: \(error)")
                answer = .failure("malformed request: \(error)")
            }
        }
        do { try Posix.sendAll(fd, answer.line) } catch {
            logger.warning("cannot send the handshake answer: \(error)")
        }
    }

    static func listen(at path: String) throws(SystemError) -> Int32 {
        let dir = (path as NSString).deletingLastPathComponent
        var st = stat()
        if stat(dir, &st) != 0 {
            try Posix.makeDirectories(dir, mode: 0o700)
        }
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFSOCK else {
                throw SystemError("\(path) exists and is not a socket; not removing it", errno: EEXIST)
            }
            if isAnswering(path) {
                throw SystemError("another trellis-agent is serving \(path)", errno: EADDRINUSE)
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket for \(path)") }
        let addr: UnixSocketAddress
        do { addr = try unixAddress(path) } catch {
            close(fd)
            throw error
        }
        guard addr.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            let e = SystemError("bind \(path)")
            close(fd)
            throw e
        }
        guard chmod(path, 0o600) == 0, Glibc.listen(fd, 128) == 0 else {
            let e = SystemError("listen on \(path)")
            close(fd)
            unlink(path)
            throw e
        }
        return fd
    }

    static func unixAddress(_ path: String) throws(SystemError) -> UnixSocketAddress {
        guard let addr = UnixSocketAddress(path: path) else {
            throw SystemError("unix socket path \(path) is too long", errno: ENAMETOOLONG)
        }
        return addr
    }

    /// Whether something accepts connections on the socket at `path`.
    static func isAnswering(_ path: String) -> Bool {
        guard let addr = try? unixAddress(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return addr.withSockaddr { connect(fd, $0, $1) } == 0
    }
}
