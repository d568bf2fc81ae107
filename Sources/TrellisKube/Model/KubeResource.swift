/// An object type the client can read and write: Codable as the API's JSON, and knowing
/// where it lives. Conform your own types to reach other kinds.
///
/// `kind` and `apiVersion` are not stored: the client writes them from `resourceKind` when
/// it sends an object (the server requires them), and list items come without them.
public protocol KubeResource: Codable, Sendable {
    static var resourceKind: ResourceKind { get }
    var metadata: ObjectMeta { get set }
}

extension KubeResource {
    /// `namespace/name` for namespaced objects, `name` otherwise: unique per kind.
    public var key: String {
        let name = metadata.name ?? ""
        if Self.resourceKind.namespaced { return "\(metadata.namespace ?? "")/\(name)" }
        return name
    }
}

/// Encodes an object with `apiVersion` and `kind` first, as the server expects a body.
struct TypedObject<Object: KubeResource>: Encodable {
    let object: Object

    private enum Keys: String, CodingKey { case apiVersion, kind }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(Object.resourceKind.apiVersion, forKey: .apiVersion)
        try container.encode(Object.resourceKind.kind, forKey: .kind)
        // The object's own keys land in the same JSON object.
        try object.encode(to: encoder)
    }
}
