/// `metadata` of every object (`metav1.ObjectMeta`): the fields Trellis reads or writes.
///
/// Every field is optional, as in the API's JSON (absent fields are omitted when encoding).
/// Fields the type does not model are dropped on decode: see `KubeClient.replace` about
/// writing back objects that were read.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String?
    public var generateName: String?
    /// Absent for cluster-scoped objects (Node, Namespace).
    public var namespace: String?
    public var uid: String?
    /// Opaque: compare for equality, never order. The watch and list semantics hang on it.
    public var resourceVersion: String?
    /// Increased by the server on every change of the desired state (spec).
    public var generation: Int64?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var creationTimestamp: KubeTime?
    /// Set when deletion was requested and finalizers or a grace period hold the object back.
    public var deletionTimestamp: KubeTime?
    public var deletionGracePeriodSeconds: Int64?
    public var finalizers: [String]?
    public var ownerReferences: [OwnerReference]?

    public init(name: String? = nil, namespace: String? = nil, labels: [String: String]? = nil,
                annotations: [String: String]? = nil, resourceVersion: String? = nil, uid: String? = nil,
                generateName: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.resourceVersion = resourceVersion
        self.uid = uid
        self.generateName = generateName
    }
}

/// `metadata.ownerReferences[]`.
public struct OwnerReference: Codable, Sendable, Hashable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    public var uid: String
    public var controller: Bool?
    public var blockOwnerDeletion: Bool?

    public init(apiVersion: String, kind: String, name: String, uid: String, controller: Bool? = nil,
                blockOwnerDeletion: Bool? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
        self.controller = controller
        self.blockOwnerDeletion = blockOwnerDeletion
    }
}

/// `metadata` of a list (`metav1.ListMeta`).
public struct ListMeta: Codable, Sendable, Hashable {
    /// The version the list is consistent at: where a watch continues from.
    public var resourceVersion: String?
    /// `continue`: present when more items remain; pass it to the next `list` call (it expires
    /// with the server's history: 410 Gone).
    public var continueToken: String?
    /// How many items remain after this page (servers give it only without selectors).
    public var remainingItemCount: Int64?

    public init(resourceVersion: String? = nil, continueToken: String? = nil, remainingItemCount: Int64? = nil) {
        self.resourceVersion = resourceVersion
        self.continueToken = continueToken
        self.remainingItemCount = remainingItemCount
    }

    enum CodingKeys: String, CodingKey {
        case resourceVersion
        case continueToken = "continue"
        case remainingItemCount
    }
}
