import Foundation

/// Exponential backoff with full jitter: the n-th consecutive failure waits a uniformly random
/// time in [0, min(maximum, initial * multiplier^n)].
///
/// Full jitter because every agent of a cluster retries against the same API server: after an
/// outage they must not come back in lockstep. The informer resets the count after a success.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double
    /// false: wait exactly the ceiling (for tests that assert the sequence).
    public var jitter: Bool

    public init(initial: Duration = .milliseconds(800), maximum: Duration = .seconds(30), multiplier: Double = 2,
                jitter: Bool = true) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The ceiling for the given number of failures before this one (0 for the first).
    public func ceiling(afterFailures failures: Int) -> Duration {
        let factor = pow(multiplier, Double(min(failures, 62)))
        let seconds = min(initial.seconds * factor, maximum.seconds)
        return .seconds(seconds)
    }

    /// The wait before the next attempt; `random` is uniform in [0, 1].
    public func delay(afterFailures failures: Int, random: Double) -> Duration {
        let c = ceiling(afterFailures: failures)
        return jitter ? .seconds(c.seconds * min(max(random, 0), 1)) : c
    }
}

extension Duration {
    /// As a floating-point number of seconds.
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
