/// `metav1.Status`: what the API answers instead of an object when a request fails (and
/// what a watch's ERROR event carries).
public struct Status: Codable, Sendable, Hashable {
    /// `Failure` or `Success`.
    public var status: String?
    public var message: String?
    /// Machine-readable: `NotFound`, `AlreadyExists`, `Conflict`, `Expired`, `Gone`,
    /// `TooManyRequests`, `Unauthorized`, `Forbidden`, `Invalid`, ...
    public var reason: String?
    public var details: StatusDetails?
    /// The HTTP status it stands for.
    public var code: Int?
    public var metadata: ListMeta?

    public init(status: String? = nil, message: String? = nil, reason: String? = nil,
                details: StatusDetails? = nil, code: Int? = nil) {
        self.status = status
        self.message = message
        self.reason = reason
        self.details = details
        self.code = code
    }
}

public struct StatusDetails: Codable, Sendable, Hashable {
    public var name: String?
    public var group: String?
    public var kind: String?
    public var uid: String?
    public var causes: [StatusCause]?
    /// The server's hint for 429 and some 5xx answers (it also sends a Retry-After header).
    public var retryAfterSeconds: Int?

    public init(name: String? = nil, group: String? = nil, kind: String? = nil, uid: String? = nil,
                causes: [StatusCause]? = nil, retryAfterSeconds: Int? = nil) {
        self.name = name
        self.group = group
        self.kind = kind
        self.uid = uid
        self.causes = causes
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// Why a field was rejected: `field` names it (`spec.containers[0].image`).
public struct StatusCause: Codable, Sendable, Hashable {
    public var reason: String?
    public var message: String?
    public var field: String?

    public init(reason: String? = nil, message: String? = nil, field: String? = nil) {
        self.reason = reason
        self.message = message
        self.field = field
    }
}
