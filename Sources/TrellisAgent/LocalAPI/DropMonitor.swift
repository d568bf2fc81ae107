#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import TrellisCore
import TrellisJSON
import TrellisNet

/// Reads the datapath's drop events on a thread of its own, names their addresses, and hands
/// them to every monitor connected to the agent's socket (`trellisctl monitor`). Each monitor
/// has a bounded queue: a slow reader loses events (and is told how many), it never slows the
/// agent or the other readers. Without monitors the events are read and discarded, so the
/// ring buffer never fills up with stale ones.
final class DropMonitor: @unchecked Sendable {
    // `subscribers` and `stopped` are behind their locks; the rest is immutable.
    private let programmer: any DatapathProgrammer
    private let node: String
    private let names: Locked<NameIndex>
    private let logger: Logger
    private let subscribers = Locked<[ObjectIdentifier: Subscriber]>([:])
    private let stopped = Locked(false)
    private let done = DispatchSemaphore(value: 0)
    private var started = false

    /// Events a monitor may have waiting before newer ones are dropped.
    static let queueLimit = 4096

    init(programmer: any DatapathProgrammer, node: String, names: Locked<NameIndex>, logger: Logger) {
        self.programmer = programmer
        self.node = node
        self.names = names
        self.logger = logger
    }

    func start() {
        started = true
        let thread = Thread { [self] in
            defer { done.signal() }
            var failing = false
            while !stopped.current {
                do {
                    let events = try programmer.readDropEvents(timeoutMs: 200)
                    failing = false
                    if !events.isEmpty { deliver(events) }
                } catch {
                    if !failing { logger.error("cannot read drop events: \(error); retrying") }
                    failing = true
                    usleep(1_000_000)
                }
            }
        }
        thread.name = "trellis drop monitor"
        thread.start()
    }

    /// Stops reading and ends every monitor's stream.
    func stop() {
        stopped.withLock { $0 = true }
        for s in subscribers.current.values { s.close() }
        if started { done.wait() }
    }

    private func deliver(_ events: [DatapathDropEvent]) {
        let subs = subscribers.current
        guard !subs.isEmpty else { return }
        let index = names.current
        let now = Date()
        let monotonicNow = Self.monotonicNanoseconds()
        let named = events.map { e in
            let age = Double(monotonicNow &- e.timestampNs) / 1e9
            return MonitorEvent(time: now.addingTimeInterval(-max(0, age)), node: node, event: e,
                                sourceName: index.name(of: e.source), destinationName: index.name(of: e.destination))
        }
        for s in subs.values { s.offer(named) }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Streams matching events to a connected socket as JSON lines until the peer goes away or
    /// the monitor stops. Runs on the connection's own thread.
    func stream(to fd: Int32, filter: MonitorFilter) {
        let sub = Subscriber(filter: filter)
        subscribers.withLock { $0[ObjectIdentifier(sub)] = sub }
        defer { subscribers.withLock { $0[ObjectIdentifier(sub)] = nil } }
        let hello: JSONValue = .object([("ok", .bool(true)), ("monitoring", .string(node))])
        guard (try? Posix.sendAll(fd, hello.bytes + [0x0A])) != nil else { return }
        while !stopped.current {
            let (events, lost) = sub.take(waitingUpTo: 0.5)
            if lost > 0 {
                let note: JSONValue = .object([("lost", .int(lost)), ("node", .string(node))])
                guard (try? Posix.sendAll(fd, note.bytes + [0x0A])) != nil else { return }
            }
            for e in events {
                guard (try? Posix.sendAll(fd, e.json.bytes + [0x0A])) != nil else { return }
            }
            if Self.peerClosed(fd) { return }
        }
    }

    /// glibc's POLLRDHUP (a GNU extension, not visible to Swift's Glibc module).
    private static let pollRDHUP: Int16 = 0x2000

    /// Whether the client hung up (a monitor client sends nothing after its request).
    static func peerClosed(_ fd: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN) | pollRDHUP, revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & (pollRDHUP | Int16(POLLHUP) | Int16(POLLERR)) != 0
    }

    /// One monitor's queue.
    final class Subscriber: @unchecked Sendable {
        // Everything below `condition` is guarded by it.
        let filter: MonitorFilter
        private let condition = NSCondition()
        private var queue: [MonitorEvent] = []
        private var lost = 0
        private var closed = false

        init(filter: MonitorFilter) { self.filter = filter }

        func offer(_ events: [MonitorEvent]) {
            let wanted = events.filter(filter.matches)
            guard !wanted.isEmpty else { return }
            condition.lock()
            let room = max(0, DropMonitor.queueLimit - queue.count)
            queue += wanted.prefix(room)
            lost += max(0, wanted.count - room)
            condition.signal()
            condition.unlock()
        }

        func take(waitingUpTo seconds: Double) -> (events: [MonitorEvent], lost: Int) {
            condition.lock()
            defer { condition.unlock() }
            if queue.isEmpty && !closed { _ = condition.wait(until: Date().addingTimeInterval(seconds)) }
            defer { queue.removeAll(); lost = 0 }
            return (queue, lost)
        }

        func close() {
            condition.lock()
            closed = true
            condition.signal()
            condition.unlock()
        }
    }
}
