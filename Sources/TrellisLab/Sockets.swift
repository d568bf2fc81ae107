import Foundation
import TrellisNet
#if canImport(Glibc)
import Glibc
#endif

/// An IP and port as a `sockaddr`.
struct SocketAddress {
    let ip: IPAddress
    let port: UInt16

    var family: Int32 { ip.family == .v4 ? AF_INET : AF_INET6 }

    /// `10.244.1.3:80`, `[fd00::3]:80`
    var text: String { ip.family == .v4 ? "\(ip):\(port)" : "[\(ip)]:\(port)" }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let bytes = ip.bytes
        if ip.family == .v4 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } else {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}

enum Sockets {
    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    static func setCloseOnExec(_ fd: Int32) {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    static func setInt(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    static func socketError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        return err
    }

    static var streamType: Int32 { Int32(SOCK_STREAM.rawValue) }
    static var datagramType: Int32 { Int32(SOCK_DGRAM.rawValue) }
}

// MARK: - The pod server

/// `trellisctl lab serve`: the one process of a lab pod. Listens on every declared port, on
/// both families (one IPv6 socket that also takes IPv4): TCP accepts, writes `<ns>/<pod>\n` and
/// closes; UDP answers each datagram with the same line. Runs until killed.
public enum PodServer {
    public static func run(identity: String, tcp: [UInt16], udp: [UInt16]) throws(LabError) -> Never {
        signal(SIGPIPE, SIG_IGN)
        let line = Array((identity + "\n").utf8)
        var listeners: [(fd: Int32, tcp: Bool)] = []
        for port in tcp { listeners.append((try bind(port: port, type: Sockets.streamType), true)) }
        for port in udp { listeners.append((try bind(port: port, type: Sockets.datagramType), false)) }
        let ports = tcp.map { "\($0)/TCP" } + udp.map { "\($0)/UDP" }
        print("serving \(identity) on \(ports.isEmpty ? "no ports" : ports.joined(separator: " "))")
        fflush(nil)

        var fds = listeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if fds.isEmpty { pause(); continue }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 { continue }
            for i in fds.indices where fds[i].revents != 0 {
                let fd = fds[i].fd
                if listeners[i].tcp {
                    let c = accept(fd, nil, nil)
                    guard c >= 0 else { continue }
                    _ = line.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    close(c)
                } else {
                    var from = sockaddr_storage()
                    var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                    let got = withUnsafeMutablePointer(to: &from) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            recvfrom(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT), $0, &len)
                        }
                    }
                    guard got >= 0 else { continue }
                    _ = withUnsafePointer(to: &from) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                            line.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT), sa, len) }
                        }
                    }
                }
            }
        }
    }

    /// A socket on `[::]:port` taking both families, or `0.0.0.0:port` where IPv6 is off.
    private static func bind(port: UInt16, type: Int32) throws(LabError) -> Int32 {
        let proto = type == Sockets.streamType ? "TCP" : "UDP"
        var fd = socket(AF_INET6, type, 0)
        var address = SocketAddress(ip: .v6(0, 0), port: port)
        if fd < 0 {
            fd = socket(AF_INET, type, 0)
            address = SocketAddress(ip: .v4(0), port: port)
        } else {
            Sockets.setInt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0)
        }
        guard fd >= 0 else { throw Sys.fail("serve: socket for \(port)/\(proto)") }
        Sockets.setCloseOnExec(fd)
        Sockets.setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        let rc = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        guard rc == 0 else { throw Sys.fail("serve: bind \(port)/\(proto)") }
        if type == Sockets.streamType {
            guard listen(fd, 128) == 0 else { throw Sys.fail("serve: listen on \(port)/TCP") }
        }
        Sockets.setNonBlocking(fd)
        return fd
    }
}
