import Logging
import TrellisNet

/// What the cluster asks of the ipcache: each pod IP as a host prefix (/32, /128) with the
/// identity of its labels, plus who owns each prefix for log lines.
public struct IPCacheIntent: Sendable, Equatable {
    public var entries: [IPNetwork: UInt32]
    public var owners: [IPNetwork: ClusterPod.Key]
    public var notes: [String]

    /// Pods on the pod network that still own their IPs (not host-network, not finished). An
    /// IP claimed by two pods (a stale object) goes to the running one, else the first by name.
    public static func from(_ snapshot: ClusterSnapshot, identities: any IdentityAllocator) -> IPCacheIntent {
        var intent = IPCacheIntent(entries: [:], owners: [:], notes: [])
        let pods = snapshot.pods.values.filter(\.ownsPodIPs).sorted { a, b in
            let ar = a.phase == "Running", br = b.phase == "Running"
            return ar != br ? ar : a.key < b.key
        }
        for pod in pods where !pod.podIPs.isEmpty {
            let nsLabels = snapshot.namespaces[pod.namespace]?.labels ?? [:]
            let identity = identities.identity(namespace: pod.namespace, podLabels: pod.labels, namespaceLabels: nsLabels)
            for ip in pod.podIPs {
                let prefix = IPNetwork(address: ip, prefixLength: ip.bitWidth)!
                if let other = intent.owners[prefix] {
                    intent.notes.append("Pods \(other) and \(pod.key) both have the IP \(ip); \(other) keeps it")
                    continue
                }
                intent.entries[prefix] = identity
                intent.owners[prefix] = pod.key
            }
        }
        return intent
    }
}

/// Brings the datapath's ipcache to an intent by difference (see `OverlayReconciler`).
public struct IPCacheReconciler: Sendable {
    public private(set) var programmed: [IPNetwork: UInt32] = [:]
    public private(set) var needsRefresh = true
    private var lastNotes: [String] = []

    public init() {}

    public mutating func refresh(from programmer: any DatapathProgrammer) throws {
        programmed = try programmer.programmedIPCache()
        needsRefresh = false
    }

    @discardableResult
    public mutating func reconcile(to intent: IPCacheIntent, programmer: any DatapathProgrammer,
                                   logger: Logger) -> [ReconcileFailure] {
        if intent.notes != lastNotes {
            for note in intent.notes where !lastNotes.contains(note) { logger.warning("ipcache: \(note)") }
            lastNotes = intent.notes
        }
        if needsRefresh {
            do { try refresh(from: programmer) } catch {
                return [ReconcileFailure(object: "ipcache", error: "cannot read the programmed entries: \(error)")]
            }
        }
        var failures: [ReconcileFailure] = []
        for (prefix, identity) in intent.entries.sorted(by: { IPNetwork.programmingOrder($0.key, $1.key) })
        where programmed[prefix] != identity {
            let owner = intent.owners[prefix]
            var meta: Logger.Metadata = ["ipcache.prefix": "\(prefix)", "identity": "\(identity)"]
            if let owner { meta["pod.namespace"] = "\(owner.namespace)"; meta["pod.name"] = "\(owner.name)" }
            let was = programmed[prefix]
            logger.debug("programming: upsert ipcache", metadata: meta)
            do {
                try programmer.upsertIPCache(prefix: prefix, identity: identity)
                programmed[prefix] = identity
                logger.info(was == nil ? "ipcache: entry added" : "ipcache: identity changed", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "ipcache \(prefix) (pod \(owner?.description ?? "?"))", error: "\(error)"))
            }
        }
        for prefix in programmed.keys.sorted(by: IPNetwork.programmingOrder) where intent.entries[prefix] == nil {
            let meta: Logger.Metadata = ["ipcache.prefix": "\(prefix)"]
            logger.debug("programming: delete ipcache", metadata: meta)
            do {
                try programmer.deleteIPCache(prefix: prefix)
                programmed[prefix] = nil
                logger.info("ipcache: entry removed", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "ipcache \(prefix)", error: "\(error)"))
            }
        }
        if !failures.isEmpty { needsRefresh = true }
        return failures
    }
}
