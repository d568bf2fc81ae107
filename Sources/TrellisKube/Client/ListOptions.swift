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
