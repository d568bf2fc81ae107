import Logging

/// Warnings at most once per problem per interval: an API server down for ten minutes gives a
/// handful of lines (each with how many retries it stands for), not one per retry.
///
/// A problem is named by a key (`watch:connection`, `list:http 500`); repeats within the
/// interval go to debug. `recovered` says, once, that things work again.
struct RateLimitedLog {
    let interval: Duration
    private var lastWarned: [String: ContinuousClock.Instant] = [:]
    private var suppressed: [String: Int] = [:]
    private var failuresSinceSuccess = 0

    init(interval: Duration) {
        self.interval = interval
    }

    mutating func warning(_ key: String, _ message: String, metadata: Logger.Metadata, logger: Logger) {
        failuresSinceSuccess += 1
        let now = ContinuousClock.now
        if let last = lastWarned[key], now - last < interval {
            suppressed[key, default: 0] += 1
            logger.debug("\(message)", metadata: metadata)
            return
        }
        var m = metadata
        if let count = suppressed.removeValue(forKey: key), count > 0 {
            m["kube.repeated"] = .stringConvertible(count)
        }
        lastWarned[key] = now
        logger.warning("\(message)", metadata: m)
    }

    /// After a success: one line if there were failures, and the interval starts afresh.
    mutating func recovered(_ message: String, metadata: Logger.Metadata, logger: Logger) {
        guard failuresSinceSuccess > 0 else { return }
        var m = metadata
        m["kube.failures"] = .stringConvertible(failuresSinceSuccess)
        logger.info("\(message)", metadata: m)
        failuresSinceSuccess = 0
        lastWarned.removeAll()
        suppressed.removeAll()
    }
}
