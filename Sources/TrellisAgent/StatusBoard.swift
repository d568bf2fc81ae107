/// The agent's health report, written by the agent and read by the health server and the
/// handshake's `status` from their own threads.
public final class StatusBoard: Sendable {
    private let state = Locked(HealthReport())

    public init() {}

    public var report: HealthReport { state.current }
    public var isReady: Bool { state.withLock { $0.ready } }

    func markReady() {
        state.withLock {
            $0.ready = true
            $0.reason = "ready"
        }
    }

    /// Records why the agent is not ready; once ready it stays ready (the reason is kept for
    /// the log and /readyz shows "ready").
    func notReady(_ reason: String) {
        state.withLock { if !$0.ready { $0.reason = reason } }
    }

    /// The revision whose policy is programmed (a writer waits for its own).
    public var appliedRevision: String? { state.withLock { $0.appliedRevision } }

    func setAppliedRevision(_ revision: String) {
        state.withLock { $0.appliedRevision = revision }
    }

    func set(_ metric: String, _ value: Double) {
        state.withLock { $0.metrics[metric] = value }
    }

    func add(_ metric: String, _ value: Double = 1) {
        state.withLock { $0.metrics[metric, default: 0] += value }
    }
}
