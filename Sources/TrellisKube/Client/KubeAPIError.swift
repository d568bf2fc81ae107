/// The API answered with an error status: the HTTP status, the `Status` object it sent (its
/// reason and message), and how long it asked us to wait.
///
/// `description`: `GET /api/v1/namespaces/shop/pods/web: 404 NotFound: pods "web" not found`.
public struct KubeAPIError: Error, CustomStringConvertible, Sendable {
    /// The HTTP status (for an ERROR event of a watch, the Status object's `code`).
    public let statusCode: Int
    /// The Status the server sent, when it sent one.
    public let status: Status?
    /// From the Retry-After header (seconds), else from `status.details.retryAfterSeconds`.
    public let retryAfter: Duration?
    /// `GET /api/v1/pods`: the request that failed.
    public let request: String
    /// The start of the body when it was not a Status (a proxy's HTML page, say).
    public let bodyExcerpt: String?

    public init(statusCode: Int, status: Status?, retryAfter: Duration?, request: String, bodyExcerpt: String? = nil) {
        self.statusCode = statusCode
        self.status = status
        self.retryAfter = retryAfter
        self.request = request
        self.bodyExcerpt = bodyExcerpt
    }

    /// An ERROR event of a watch, as an error.
    public init(watchError status: Status, request: String) {
        let seconds = status.details?.retryAfterSeconds
        self.init(statusCode: status.code ?? 500, status: status, retryAfter: seconds.map { .seconds($0) },
                  request: request)
    }

    /// `NotFound`, `Conflict`, `Expired`, ... (nil when the server sent no Status).
    public var reason: String? { status?.reason }
    public var message: String { status?.message ?? bodyExcerpt ?? "HTTP \(statusCode)" }

    /// 410: the resourceVersion or continue token is older than the server's history; list again.
    public var isGone: Bool { statusCode == 410 }
    /// 429: the server sheds load; wait `retryAfter`.
    public var isTooManyRequests: Bool { statusCode == 429 }
    /// 409 for a stale resourceVersion (also for AlreadyExists: see `isAlreadyExists`).
    public var isConflict: Bool { statusCode == 409 }
    public var isAlreadyExists: Bool { statusCode == 409 && reason == "AlreadyExists" }
    public var isNotFound: Bool { statusCode == 404 }
    public var isUnauthorized: Bool { statusCode == 401 }
    public var isForbidden: Bool { statusCode == 403 }
    /// 5xx: worth retrying with backoff.
    public var isServerError: Bool { (500...599).contains(statusCode) }

    public var description: String {
        var text = "\(request): \(statusCode)"
        if let reason, !reason.isEmpty { text += " \(reason)" }
        text += ": \(message)"
        if let retryAfter { text += " (retry after \(retryAfter))" }
        return text
    }
}
