import Foundation

/// A value behind a lock, for the few pieces of state that plain threads (the socket servers'
/// connection threads) and tasks share. Tiny on purpose: `withLock` is the only way in.
public final class Locked<Value>: @unchecked Sendable {
    // Every access to `value` holds `lock`.
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    @discardableResult
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    public var current: Value { withLock { $0 } }
}

/// Runs async work from a plain (non-cooperative) thread and waits for it. Only for threads
/// that Trellis started itself (the socket servers' connection threads): blocking them is
/// fine, blocking a thread of the cooperative pool never is.
func waitForAsync<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = Locked<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.current!
}
