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
