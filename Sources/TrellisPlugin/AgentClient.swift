#if canImport(Glibc)
import Glibc
#endif
import TrellisCNI
import TrellisJSON
import TrellisNet
import TrellisNetlink

/// The plugin's side of the CNI handshake with `trellis-agent` (docs/agent.md): one JSON line
/// out, one JSON line back, over the agent's unix socket.
struct AgentClient {
    let socketPath: String
    /// How long an ADD waits for the agent to program the endpoint.
    var timeoutSeconds = 10

    enum Failure: Error, CustomStringConvertible {
        /// The agent could not be reached or did not answer in time: worth retrying later.
        case unreachable(String)
        /// The agent answered and refused, saying why.
        case refused(String)

        var description: String {
            switch self {
            case .unreachable(let why): why
            case .refused(let why): why
            }
        }
    }

    /// Sends `request` and returns the answer object, or throws when the agent says `ok: false`.
    @discardableResult
    func call(_ request: JSONValue) throws(Failure) -> JSONValue {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable("trellis-agent at \(socketPath): socket: \(errnoText())") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw .unreachable("agentSocket \(socketPath): path too long for a unix socket")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path)
            raw[path.count] = 0
        }
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            throw .unreachable("trellis-agent is not reachable at \(socketPath): \(errnoText())")
        }

        let line = request.bytes + [0x0A]
        var sent = 0
        while sent < line.count {
            let n = line[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .unreachable("trellis-agent at \(socketPath): send: \(errnoText())") }
            sent += n
        }

        var answer: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(0x0A) {
            let n = recv(fd, &buf, buf.count, 0)
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                throw .unreachable("trellis-agent at \(socketPath) did not answer within \(timeoutSeconds) s")
            }
            guard n > 0 else { break }
            answer += buf[0..<n]
        }
        if let newline = answer.firstIndex(of: 0x0A) { answer = Array(answer[..<newline]) }
        guard let reply = try? JSONValue.parse(answer) else {
            throw .unreachable("trellis-agent at \(socketPath) answered something that is not a JSON object")
        }
        guard case .bool(true)? = reply["ok"] else {
            if case .string(let why)? = reply["error"] { throw .refused("trellis-agent: \(why)") }
            throw .refused("trellis-agent refused without a reason")
        }
        return reply
    }
}

extension AgentClient {
    /// The `add` request of docs/agent.md: who the pod is, its host veth, its MACs and addresses.
    static func addRequest(env: CNIEnvironment, netns: String, hostVeth: LinkInfo, podLink: LinkInfo,
                           addresses: [IPNetwork]) -> JSONValue {
        var members: [(String, JSONValue?)] = []
        members.append(("op", .string("add")))
        members.append(("containerID", .string(env.containerID)))
        members.append(("ifname", .string(env.ifName)))
        members.append(("netns", .string(netns)))
        members.append(("podNamespace", env.podNamespace.map(JSONValue.string)))
        members.append(("podName", env.podName.map(JSONValue.string)))
        members.append(("hostIfname", .string(hostVeth.name)))
        members.append(("hostIfindex", .int(Int(hostVeth.index))))
        members.append(("hostMAC", hostVeth.mac.map { JSONValue.string($0.description) }))
        members.append(("podMAC", podLink.mac.map { JSONValue.string($0.description) }))
        let hostPrefixes: [String] = addresses.map { a in
            IPNetwork(address: a.address, prefixLength: a.address.bitWidth)!.description
        }
        members.append(("ips", .strings(hostPrefixes)))
        return .object(members)
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
