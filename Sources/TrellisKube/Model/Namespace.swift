/// A namespace (`v1/Namespace`, cluster-scoped). Its labels matter to NetworkPolicy
/// namespaceSelectors; the server adds `kubernetes.io/metadata.name` itself.
public struct Namespace: KubeResource, Hashable {
    public static let resourceKind = ResourceKind(group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)

    public var metadata: ObjectMeta
    public var spec: NamespaceSpec?
    public var status: NamespaceStatus?

    public init(metadata: ObjectMeta, spec: NamespaceSpec? = nil, status: NamespaceStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct NamespaceSpec: Codable, Sendable, Hashable {
    public var finalizers: [String]?
    public init(finalizers: [String]? = nil) { self.finalizers = finalizers }
}

/// `phase` is `Active` or `Terminating`.
public struct NamespaceStatus: Codable, Sendable, Hashable {
    public var phase: String?
    public init(phase: String? = nil) { self.phase = phase }
}
