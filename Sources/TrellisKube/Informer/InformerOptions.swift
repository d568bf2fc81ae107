/// What an informer watches and how it retries.
public struct InformerOptions: Sendable {
    /// nil: every namespace (and cluster-scoped kinds).
    public var namespace: String?
    public var labelSelector: String?
    /// `spec.nodeName=NODE` for one node's pods.
    public var fieldSelector: String?
    /// Objects per LIST page.
    public var pageSize: Int
    /// The watch's `timeoutSeconds`: each watch asks for a random time in [1x, 2x] of this
    /// (spreading reconnections of many agents), then re-watches from where it stood.
    public var watchTimeout: Duration
    /// Client-side bound on a watch that receives nothing (no event, no bookmark) for this
    /// long: the connection is considered dead. Keep it above the server's bookmark period.
    public var watchStallTimeout: Duration
    /// Waits after failures (connection errors, 5xx, 429 without Retry-After).
    public var backoff: Backoff
    /// At most one warning per distinct problem per this interval.
    public var warningInterval: Duration
    /// How the informer waits (tests may record or shorten the waits). Must throw on
    /// cancellation, as `Task.sleep` does.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// Uniform in [0, 1]: the jitter's source.
    public var random: @Sendable () -> Double

    public init(namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                pageSize: Int = 500, watchTimeout: Duration = .seconds(300), watchStallTimeout: Duration = .seconds(720),
                backoff: Backoff = Backoff(), warningInterval: Duration = .seconds(60),
                sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
                random: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }) {
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.pageSize = pageSize
        self.watchTimeout = watchTimeout
        self.watchStallTimeout = watchStallTimeout
        self.backoff = backoff
        self.warningInterval = warningInterval
        self.sleep = sleep
        self.random = random
    }
}
