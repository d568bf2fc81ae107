/// Parameters of a `list` call (one page).
public struct ListOptions: Sendable, Hashable {
    /// `app=web,tier in (a,b)` (see `LabelSelector.queryString`).
    public var labelSelector: String?
    /// `spec.nodeName=node-1`, `metadata.name=x`.
    public var fieldSelector: String?
    /// Page size; nil lists everything in one answer.
    public var limit: Int?
    /// The `continue` token of the previous page.
    public var continueToken: String?
    /// nil: the most recent state (a consistent read). `"0"`: any state the server has cached.
    public var resourceVersion: String?
    /// `Exact` or `NotOlderThan`, with `resourceVersion`.
    public var resourceVersionMatch: String?

    public init(labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int? = nil,
                continueToken: String? = nil, resourceVersion: String? = nil, resourceVersionMatch: String? = nil) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continueToken = continueToken
        self.resourceVersion = resourceVersion
        self.resourceVersionMatch = resourceVersionMatch
    }

    var query: [(String, String)] {
        var q: [(String, String)] = []
        if let labelSelector, !labelSelector.isEmpty { q.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { q.append(("fieldSelector", fieldSelector)) }
        if let limit { q.append(("limit", String(limit))) }
        if let continueToken { q.append(("continue", continueToken)) }
        if let resourceVersion { q.append(("resourceVersion", resourceVersion)) }
        if let resourceVersionMatch { q.append(("resourceVersionMatch", resourceVersionMatch)) }
        return q
    }
}

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

/// The body of a DELETE (`metav1.DeleteOptions`).
public struct DeleteOptions: Encodable, Sendable, Hashable {
    public var gracePeriodSeconds: Int?
    /// `Orphan`, `Background`, `Foreground`.
    public var propagationPolicy: String?
    /// Delete only if the object still has this uid / resourceVersion (409 otherwise).
    public var preconditions: Preconditions?

    public struct Preconditions: Encodable, Sendable, Hashable {
        public var uid: String?
        public var resourceVersion: String?
        public init(uid: String? = nil, resourceVersion: String? = nil) {
            self.uid = uid
            self.resourceVersion = resourceVersion
        }
    }

    public init(gracePeriodSeconds: Int? = nil, propagationPolicy: String? = nil, preconditions: Preconditions? = nil) {
        self.gracePeriodSeconds = gracePeriodSeconds
        self.propagationPolicy = propagationPolicy
        self.preconditions = preconditions
    }

    private enum Keys: String, CodingKey { case kind, apiVersion, gracePeriodSeconds, propagationPolicy, preconditions }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode("DeleteOptions", forKey: .kind)
        try c.encode("v1", forKey: .apiVersion)
        try c.encodeIfPresent(gracePeriodSeconds, forKey: .gracePeriodSeconds)
        try c.encodeIfPresent(propagationPolicy, forKey: .propagationPolicy)
        try c.encodeIfPresent(preconditions, forKey: .preconditions)
    }
}

/// Query strings with every byte outside the unreserved set percent-encoded: selectors hold
/// `=`, `,`, `!`, spaces and parentheses, and a `+` must not turn into a space.
enum QueryString {
    static func encode(_ items: [(String, String)]) -> String {
        items.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}
