/// One page of a list (`PodList`, `NodeList`, ...): the items and where the list stands.
public struct KubeList<Object: KubeResource>: Codable, Sendable {
    public var metadata: ListMeta
    public var items: [Object]

    public init(metadata: ListMeta = ListMeta(), items: [Object] = []) {
        self.metadata = metadata
        self.items = items
    }

    // Some servers write `"items": null` for an empty list.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try c.decodeIfPresent(ListMeta.self, forKey: .metadata) ?? ListMeta()
        items = try c.decodeIfPresent([Object].self, forKey: .items) ?? []
    }
}
