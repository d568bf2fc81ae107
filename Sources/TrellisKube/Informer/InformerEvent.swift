/// What an informer tells its consumer.
///
/// The first event is always `.synced`. After each later `.synced` (a relist: the watch's
/// version expired), the consumer should reconcile by difference: whatever it holds that is
/// not in the list is gone (its DELETED event may never come). `InformerCache.apply` does that
/// bookkeeping and returns only what changed.
public enum InformerEvent<Object: KubeResource>: Sendable {
    /// The complete state after a (re)list, consistent at `resourceVersion`.
    case synced([Object], resourceVersion: String)
    /// Added or modified since.
    case upserted(Object)
    /// Deleted (the object in its last state).
    case deleted(Object)
}
