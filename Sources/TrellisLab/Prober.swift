import Foundation
import TrellisNet
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

/// One probe: from inside `sourceNetns`, to `address` with `proto`, expecting the line
/// `expected` (`<ns>/<pod>` of the destination), or one of `alsoExpected` (the other backends
/// of a Service).
struct ProbeRequest {
    var sourceNetns: String
    var address: SocketAddress
    var proto: PortProtocol
    var expected: String
    var alsoExpected: [String] = []
}

public enum ProbeOutcome: Sendable, Equatable {
    case connected(milliseconds: Double)
    case refused
    case blocked
    case unreachable(String)
    case wrongReply(String)

    public var ok: Bool {
        if case .connected = self { return true }
        return false
    }

    func text(timeout: Double) -> String {
        switch self {
        case .connected(let ms): "connected (\(String(format: ms < 10 ? "%.1f" : "%.0f", ms)) ms)"
        case .refused: "refused"
        case .blocked: "blocked (timeout \(Prober.secondsText(timeout)) s)"
        case .unreachable(let why): "unreachable (\(why))"
        case .wrongReply(let what): "wrong reply (\(what))"
        }
    }
}

/// Runs any number of probes at once: the sockets are opened inside their source pods'
/// namespaces (on a throw-away thread per namespace), then one poll loop on this thread drives
/// every connect, send and read until each has an outcome or the shared deadline passes.
enum Prober {
    static func secondsText(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String(format: "%g", s)
    }

    private enum Step { case connecting, reading, done }

    private struct Flight {
        var fd: Int32 = -1
        var step: Step = .connecting
        var received: [UInt8] = []
        var outcome: ProbeOutcome?
    }

    static func run(_ requests: [ProbeRequest], timeout: Double) throws(LabError) -> [ProbeOutcome] {
        var outcomes: [ProbeOutcome] = []
        // Keeps the number of open sockets well under the default limit of 1024 descriptors.
        var start = 0
        while start < requests.count {
            let chunk = Array(requests[start..<min(start + 256, requests.count)])
            outcomes += try runChunk(chunk, timeout: timeout)
            start += chunk.count
        }
        return outcomes
    }

    private static func runChunk(_ requests: [ProbeRequest], timeout: Double) throws(LabError) -> [ProbeOutcome] {
        var flights = [Flight](repeating: Flight(), count: requests.count)
        defer { for f in flights where f.fd >= 0 { close(f.fd) } }

        // Sockets, opened inside each source namespace; they stay bound to it afterwards.
        let bySource = Dictionary(grouping: requests.indices, by: { requests[$0].sourceNetns })
        for (netns, indices) in bySource {
            let path = LabLayout.netnsPath(netns)
            let fds: [Int32]
            do {
                let ns = try NetworkNamespace(path: path)
                fds = try ns.run { () throws -> [Int32] in
                    var out: [Int32] = []
                    for i in indices {
                        let r = requests[i]
                        let fd = socket(r.address.family, r.proto == .tcp ? Sockets.streamType : Sockets.datagramType, 0)
                        if fd < 0 {
                            let e = errno
                            out.forEach { close($0) }
                            throw Sys.fail("probe: socket in \(path)", e)
                        }
                        out.append(fd)
                    }
                    return out
                }
            } catch let e as LabError {
                throw e
            } catch {
                throw LabError("probe: enter \(path): \(error)")
            }
            for (i, fd) in zip(indices, fds) {
                Sockets.setCloseOnExec(fd)
                Sockets.setNonBlocking(fd)
                flights[i].fd = fd
            }
        }

        let started = Sys.now()
        let deadline = started + timeout
        func finish(_ i: Int, _ outcome: ProbeOutcome) {
            flights[i].outcome = outcome
            flights[i].step = .done
        }
        func elapsedMS() -> Double { (Sys.now() - started) * 1000 }
        func failure(_ e: Int32) -> ProbeOutcome {
            switch e {
            case ECONNREFUSED: .refused
            case ETIMEDOUT: .blocked
            case ECONNRESET: .wrongReply("connection reset")
            default: .unreachable(Sys.errorText(e))
            }
        }
        func evaluate(_ i: Int) {
            let text = String(decoding: flights[i].received, as: UTF8.self)
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
            if line == requests[i].expected || requests[i].alsoExpected.contains(line) {
                finish(i, .connected(milliseconds: elapsedMS()))
            } else if line.isEmpty {
                finish(i, .wrongReply("closed without a reply"))
            } else {
                finish(i, .wrongReply("answered \"\(line)\", expected \"\(requests[i].expected)\""))
            }
        }

        // Start everything.
        let payload = Array("probe\n".utf8)
        for i in flights.indices {
            let r = requests[i]
            let fd = flights[i].fd
            let rc = r.address.withSockaddr { connect(fd, $0, $1) }
            if rc != 0, errno != EINPROGRESS {
                finish(i, failure(errno))
                continue
            }
            if r.proto == .tcp {
                flights[i].step = rc == 0 ? .reading : .connecting
            } else {
                let sent = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent < 0 { finish(i, failure(errno)); continue }
                flights[i].step = .reading
            }
        }

        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let active = flights.indices.filter { flights[$0].step != .done }
            if active.isEmpty { break }
            let remaining = deadline - Sys.now()
            if remaining <= 0 { break }
            var pfds = active.map { i in
                pollfd(fd: flights[i].fd, events: Int16(flights[i].step == .connecting ? POLLOUT : POLLIN), revents: 0)
            }
            let n = poll(&pfds, nfds_t(pfds.count), Int32(max(1, (remaining * 1000).rounded(.up))))
            if n < 0 {
                if errno == EINTR { continue }
                throw Sys.fail("probe: poll")
            }
            for (k, i) in active.enumerated() where pfds[k].revents != 0 {
                let fd = flights[i].fd
                switch flights[i].step {
                case .connecting:
                    let e = Sockets.socketError(fd)
                    if e != 0 { finish(i, failure(e)) } else { flights[i].step = .reading }
                case .reading:
                    let got = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    if got > 0 {
                        flights[i].received += buffer[0..<got]
                        if requests[i].proto == .udp || flights[i].received.contains(UInt8(ascii: "\n")) { evaluate(i) }
                    } else if got == 0 {
                        evaluate(i)
                    } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                        finish(i, failure(errno))
                    }
                case .done:
                    break
                }
            }
        }
        return flights.map { $0.outcome ?? .blocked }
    }
}
