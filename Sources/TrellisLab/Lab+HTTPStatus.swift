import TrellisNet
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP GET inside a namespace: how the lab asks an agent whether it is ready.
extension Lab {
    /// The status code of `GET path` on 127.0.0.1:port inside a namespace (nil: no answer).
    static func httpStatus(netns: String, port: UInt16, path: String, timeout: Double = 1) -> Int? {
        guard let ns = try? NetworkNamespace(path: LabLayout.netnsPath(netns)),
              let fd = try? ns.run({ socket(AF_INET, Sockets.streamType, 0) }), fd >= 0 else { return nil }
        defer { close(fd) }
        Sockets.setCloseOnExec(fd)
        Sockets.setNonBlocking(fd)
        let deadline = Sys.now() + timeout
        let address = SocketAddress(ip: .v4(0x7f00_0001), port: port)
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0, errno != EINPROGRESS { return nil }
        func wait(_ events: Int32) -> Bool {
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ms = Int32(max(1, (deadline - Sys.now()) * 1000))
            return poll(&p, 1, ms) == 1
        }
        guard wait(Int32(POLLOUT)), Sockets.socketError(fd) == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !reply.contains(UInt8(ascii: "\n")), Sys.now() < deadline, wait(Int32(POLLIN)) {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        // "HTTP/1.1 200 OK"
        let line = String(decoding: reply.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        return parts.count >= 2 && parts[0].hasPrefix("HTTP/") ? Int(parts[1]) : nil
    }
}
