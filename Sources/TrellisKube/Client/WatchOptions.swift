/// Parameters of a `watch` call.
public struct WatchOptions: Sendable, Hashable {
    public var labelSelector: String?
    public var fieldSelector: String?
    /// Events after this version. nil (or "0"): the server first sends every current object as
    /// ADDED, then changes.
    public var resourceVersion: String?
    /// Ask for BOOKMARK events, which advance the resourceVersion without a change.
    public var allowWatchBookmarks: Bool
    /// The server ends the watch after this long (cleanly); nil leaves it to the server.
    public var timeoutSeconds: Int?
    /// Client side, not sent: when nothing arrives (no event, no bookmark) for this long the
    /// stream throws `KubeTransportError(.timeout)`: the connection is presumed dead (a
    /// vanished peer sends no FIN). nil waits forever.
    public var stallTimeout: Duration?

    public init(labelSelector: String? = nil, fieldSelector: String? = nil, resourceVersion: String? = nil,
                allowWatchBookmarks: Bool = true, timeoutSeconds: Int? = nil, stallTimeout: Duration? = nil) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.resourceVersion = resourceVersion
        self.allowWatchBookmarks = allowWatchBookmarks
        self.timeoutSeconds = timeoutSeconds
        self.stallTimeout = stallTimeout
    }

    var query: [(String, String)] {
        var q: [(String, String)] = [("watch", "true")]
        if let labelSelector, !labelSelector.isEmpty { q.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { q.append(("fieldSelector", fieldSelector)) }
        if let resourceVersion { q.append(("resourceVersion", resourceVersion)) }
        if allowWatchBookmarks { q.append(("allowWatchBookmarks", "true")) }
        if let timeoutSeconds { q.append(("timeoutSeconds", String(timeoutSeconds))) }
        return q
    }
}
