import Foundation
import TrellisAgent
import TrellisNet
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

/// Makes an API server that listens on this machine's loopback reachable from inside a lab
/// node's network namespace, at the same address and port: a listening socket opened in the
/// node's namespace, whose connections are forwarded to the server from the root namespace.
/// The agents' kubeconfig then works unchanged (same URL, same TLS server name).
///
/// One thread accepts; each connection gets two threads copying bytes, one per direction
/// (a handful of long-lived watch connections per node, so threads are the simple choice).
final class APIForwarder: @unchecked Sendable {
    // Immutable after init; `listenFD` is closed only by `stop`.
    let address: SocketAddress
    private let listenFD: Int32

    /// Listens on `address` inside the namespace at `netnsPath`.
    init(netnsPath: String, address: SocketAddress) throws {
        self.address = address
        let ns = try NetworkNamespace(path: netnsPath)
        listenFD = try ns.run { () throws -> Int32 in
            let fd = socket(address.family, Sockets.streamType, 0)
            guard fd >= 0 else { throw Sys.fail("forwarder: socket in \(netnsPath)") }
            Sockets.setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            guard address.withSockaddr({ bind(fd, $0, $1) }) == 0, Glibc.listen(fd, 64) == 0 else {
                let e = Sys.fail("forwarder: listen on \(address.text) in \(netnsPath)")
                close(fd)
                throw e
            }
            return fd
        }
        Sockets.setCloseOnExec(listenFD)
    }

    /// The loopback address and port an `http(s)://HOST:PORT` server URL names; nil when the
    /// server is not on loopback (then there is nothing to forward).
    static func loopbackAddress(of server: String) -> SocketAddress? {
        guard let url = URL(string: server), let host = url.host else { return nil }
        let port = UInt16(url.port ?? (url.scheme == "https" ? 443 : 80))
        let ip: IPAddress?
        switch host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")) {
        case "localhost": ip = IPAddress("127.0.0.1")
        case let h: ip = IPAddress(h)
        }
        guard let ip, ip == IPAddress("127.0.0.1") || ip == IPAddress("::1") else { return nil }
        return SocketAddress(ip: ip, port: port)
    }

    func start() {
        let thread = Thread { [self] in
            while true {
                let conn = accept(listenFD, nil, nil)
                if conn < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return   // closed by stop()
                }
                Sockets.setCloseOnExec(conn)
                let upstream = socket(address.family, Sockets.streamType, 0)
                guard upstream >= 0, address.withSockaddr({ connect(upstream, $0, $1) }) == 0 else {
                    if upstream >= 0 { close(upstream) }
                    close(conn)
                    continue
                }
                Sockets.setCloseOnExec(upstream)
                Self.splice(conn, upstream)
            }
        }
        thread.name = "lab api forwarder"
        thread.start()
    }

    func stop() {
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    /// Copies both ways until either side closes; then closes both.
    private static func splice(_ a: Int32, _ b: Int32) {
        let closed = Locked(0)
        func pump(_ from: Int32, _ to: Int32) {
            let t = Thread {
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(from, &buffer, buffer.count)
                    if n <= 0 { break }
                    var sent = 0
                    while sent < n {
                        let w = buffer[sent..<n].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        if w <= 0 { break }
                        sent += w
                    }
                    if sent < n { break }
                }
                shutdown(to, Int32(SHUT_WR))
                shutdown(from, Int32(SHUT_RD))
                // The second direction to finish closes both descriptors.
                if closed.withLock({ $0 += 1; return $0 }) == 2 {
                    close(a)
                    close(b)
                }
            }
            t.name = "lab api forwarder connection"
            t.start()
        }
        pump(a, b)
        pump(b, a)
    }
}
