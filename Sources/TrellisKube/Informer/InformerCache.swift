/// The informer's view held by its consumer: objects by key, kept up to date by `apply`,
/// which answers what changed. After a relist it compares the complete state with what it
/// holds, so that unchanged objects produce no change and vanished ones a removal.
public struct InformerCache<Object: KubeResource>: Sendable {
    public enum Change: Sendable {
        case added(Object)
        case updated(old: Object, new: Object)
        case removed(Object)
    }

    /// By `KubeResource.key` (`namespace/name`, or `name`).
    public private(set) var objects: [String: Object] = [:]
    /// Whether a complete state arrived (like client-go's HasSynced).
    public private(set) var hasSynced = false

    public init() {}

    @discardableResult
    public mutating func apply(_ event: InformerEvent<Object>) -> [Change] {
        switch event {
        case .synced(let items, _):
            hasSynced = true
            var next: [String: Object] = [:]
            next.reserveCapacity(items.count)
            for item in items { next[item.key] = item }
            var changes: [Change] = []
            for (key, old) in objects where next[key] == nil {
                changes.append(.removed(old))
            }
            for (key, new) in next {
                if let old = objects[key] {
                    if old.metadata.resourceVersion != new.metadata.resourceVersion || old.metadata.uid != new.metadata.uid {
                        changes.append(.updated(old: old, new: new))
                    }
                } else {
                    changes.append(.added(new))
                }
            }
            objects = next
            return changes
        case .upserted(let object):
            let key = object.key
            let old = objects.updateValue(object, forKey: key)
            guard let old else { return [.added(object)] }
            return old.metadata.resourceVersion == object.metadata.resourceVersion ? [] : [.updated(old: old, new: object)]
        case .deleted(let object):
            guard let old = objects.removeValue(forKey: object.key) else { return [] }
            return [.removed(old)]
        }
    }
}
