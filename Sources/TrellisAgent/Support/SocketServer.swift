#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An accept loop on its own thread, one thread per connection: the shape the handshake
/// socket needs (the health endpoint is on SwiftNIO). Its traffic is short requests, so
/// blocking calls on dedicated threads keep the code simple and never occupy the cooperative
/// thread pool.
///
/// `stop()` wakes the loop through a pipe (closing a descriptor another thread is blocked in
/// `accept` on does not wake it on Linux), waits for it and for the connections in flight,
/// then closes the listening socket.
final class SocketServer: @unchecked Sendable {
    /// Called on a connection's own thread with the connected socket, which the server closes
    /// once the handler returns.
    typealias Handler = @Sendable (Int32) -> Void

    private let listenFD: Int32
    private let name: String
    private let handler: Handler
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let loopDone = DispatchSemaphore(value: 0)
    /// Connections in flight, whether the loop was started, and whether `stop` was called.
    private let state = Locked<(active: Int, started: Bool, stopped: Bool)>((0, false, false))
    private let idle = NSCondition()

    /// Takes ownership of `listenFD`, a socket that already listens.
    init(listening listenFD: Int32, name: String, handler: @escaping Handler) throws(SystemError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemError("create wake-up pipe for \(name)") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        self.listenFD = listenFD
        self.name = name
        self.handler = handler
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    func start() {
        let first = state.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started && !s.stopped
        }
        guard first else { return }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = name
        thread.start()
    }

    private func acceptLoop() {
        defer { loopDone.signal() }
        while true {
            var pfds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&pfds, 2, -1)
            if rc < 0 { if errno == EINTR { continue }; return }
            if pfds[1].revents != 0 { return }
            guard pfds[0].revents & Int16(POLLIN) != 0 else {
                if pfds[0].revents != 0 { return }  // POLLERR / POLLNVAL: the socket is unusable
                continue
            }
            let conn = accept(listenFD, nil, nil)
            if conn < 0 { continue }  // EINTR, ECONNABORTED, EMFILE...: try again
            _ = fcntl(conn, F_SETFD, FD_CLOEXEC)
            let admitted = state.withLock { s -> Bool in
                if s.stopped { return false }
                s.active += 1
                return true
            }
            guard admitted else { close(conn); return }
            let worker = Thread { [self] in
                handler(conn)
                close(conn)
                idle.lock()
                state.withLock { $0.active -= 1 }
                idle.broadcast()
                idle.unlock()
            }
            worker.name = name + " connection"
            worker.start()
        }
    }

    /// Stops accepting, waits up to `grace` for the connections in flight, closes the socket.
    /// The waiting happens on a thread of its own: a connection in flight may itself be
    /// waiting for a task, so blocking the cooperative pool here could starve it.
    func stop(grace: TimeInterval = 5) async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                stopBlocking(grace: grace)
                done.resume()
            }
            thread.name = name + " stop"
            thread.start()
        }
    }

    private func stopBlocking(grace: TimeInterval) {
        let (first, started) = state.withLock { s -> (Bool, Bool) in
            defer { s.stopped = true }
            return (!s.stopped, s.started)
        }
        guard first else { return }
        if started {
            var one: UInt8 = 1
            _ = write(wakeWrite, &one, 1)
            loopDone.wait()
        }
        let deadline = Date().addingTimeInterval(grace)
        idle.lock()
        while state.current.active > 0, idle.wait(until: deadline) {}
        idle.unlock()
        close(listenFD)
        close(wakeRead)
        close(wakeWrite)
    }
}

/// Reads from a connected socket until `delimiter` has been seen (the data up to it is
/// returned, the delimiter excluded), the peer closed, the receive timeout expired, or
/// `limit` bytes arrived. `nil` with a reason otherwise.
func readUntil(_ fd: Int32, delimiter: [UInt8], limit: Int) -> (data: [UInt8], problem: String?) {
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        if let end = data.firstRange(of: delimiter) { return (Array(data[..<end.lowerBound]), nil) }
        if data.count > limit { return (data, "request longer than \(limit) bytes") }
        let n = Posix.retrying { recv(fd, &buf, buf.count, 0) }
        if n == 0 { return (data, nil) }  // peer closed: what came is the request
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return (data, "timed out waiting for the request") }
            return (data, SystemError("receive").description)
        }
        data += buf[0..<n]
    }
}
