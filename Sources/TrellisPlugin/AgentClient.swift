#if canImport(Glibc)
import Glibc
#endif
import TrellisCNI
import TrellisCore
import TrellisNet
import TrellisNetlink

/// The plugin's side of the CNI handshake with `trellis-agent` (docs/agent.md): one request
/// line out, one reply line back, over the agent's unix socket; TrellisCore defines both.
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

    /// Sends `request` and returns the reply, or throws when the agent refuses (`ok: false`).
    @discardableResult
    func call(_ request: HandshakeRequest) throws(Failure) -> HandshakeReply {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable("trellis-agent at \(socketPath): socket: \(errnoText())") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))

        guard let addr = UnixSocketAddress(path: socketPath) else {
            throw .unreachable("agentSocket \(socketPath): path too long for a unix socket")
        }
        guard addr.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
            throw .unreachable("trellis-agent is not reachable at \(socketPath): \(errnoText())")
        }

        let line = request.line
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
        let reply: HandshakeReply
        do { reply = try HandshakeReply.decode(answer) } catch {
            throw .unreachable("trellis-agent at \(socketPath) answered something that is not a reply: \(error)")
        }
        if case .failure(let why) = reply { throw .refused("trellis-agent: \(why)") }
        return reply
    }
}

extension HandshakeRequest.AddRequest {
    /// The ADD of a pod the plugin just wired: who it is, its host veth, its MACs and addresses.
    /// nil when a link has no MAC (not a veth the plugin made).
    init?(env: CNIEnvironment, netns: String, hostVeth: LinkInfo, podLink: LinkInfo, addresses: [IPNetwork]) {
        guard let hostMAC = hostVeth.mac, let podMAC = podLink.mac else { return nil }
        self.init(containerID: env.containerID, ifname: env.ifName, netns: netns, podNamespace: env.podNamespace,
                  podName: env.podName, hostIfname: hostVeth.name, hostIfindex: hostVeth.index, hostMAC: hostMAC,
                  podMAC: podMAC, ips: addresses.map(\.address))
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
