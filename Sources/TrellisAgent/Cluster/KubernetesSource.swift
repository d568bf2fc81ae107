import Foundation
import Logging
import TrellisKube
import TrellisNet
import TrellisPolicy

/// The cluster state from the Kubernetes API: one informer each for Nodes, Namespaces, Pods,
/// NetworkPolicies and Services, all cluster-wide (policy needs every pod's labels and
/// addresses), merged into complete snapshots for the same reconcilers the manifests source
/// feeds.
///
/// - Nothing is yielded until all five have listed once (like an informer's HasSynced), since
///   reconcilers remove whatever a snapshot lacks.
/// - After a relist (410 Gone: the watch's history was compacted) a kind's whole content is
///   replaced by the list; the reconcilers compare snapshots, so an object that did not change
///   causes no datapath write.
/// - While the API server is unreachable the informers retry with backoff and jitter and log
///   with rate limits; no snapshot comes, so the datapath stays as it is.
/// - `revision` is the highest resourceVersion seen (etcd revisions are numbers in practice).
public final class KubernetesSource: ClusterSource {
    let client: KubeClient
    private let logger: Logger
    private let options: InformerOptions

    public init(config: KubeClientConfig, logger: Logger, options: InformerOptions = InformerOptions()) throws {
        var l = logger
        l[metadataKey: "source"] = "kubernetes"
        self.logger = l
        self.options = options
        client = try KubeClient(config: config, userAgent: "trellis-agent", logger: l)
        l.info("kubernetes source: \(config.origin), server \(config.server)")
    }

    /// The client from the agent's config: the kubeconfig named there, else in-cluster.
    public static func clientConfig(kubeconfig: String) throws -> KubeClientConfig {
        kubeconfig.isEmpty ? try .inCluster() : try .kubeconfig(path: kubeconfig)
    }

    public func snapshots() -> AsyncStream<ClusterSnapshot> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClusterSnapshot.self, bufferingPolicy: .bufferingNewest(1))
        let assembler = SnapshotAssembler(logger: logger)
        let client = self.client, options = self.options, logger = self.logger
        let task = Task {
            await withDiscardingTaskGroup { group in
                func watch<Object: KubeResource>(_: Object.Type, _ apply: @escaping @Sendable (InformerEvent<Object>) async -> ClusterSnapshot?) {
                    group.addTask {
                        let informer = Informer<Object>(client: client, options: options, logger: logger)
                        try? await informer.run { event in
                            if let snapshot = await apply(event) { continuation.yield(snapshot) }
                        }
                    }
                }
                watch(TrellisKube.Node.self) { await assembler.nodes($0) }
                watch(TrellisKube.Namespace.self) { await assembler.namespaces($0) }
                watch(TrellisKube.Pod.self) { await assembler.pods($0) }
                watch(TrellisKube.NetworkPolicy.self) { await assembler.policies($0) }
                watch(TrellisKube.Service.self) { await assembler.services($0) }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Sets the Node condition NetworkUnavailable=False (reason TrellisIsUp), keeping the other
    /// conditions (strategic merge by type); kubelet then reports the node network-ready.
    public func markNetworkAvailable(nodeName: String) async throws {
        let condition = NodeCondition(type: "NetworkUnavailable", status: "False", reason: "TrellisIsUp",
                                      message: "Trellis programmed the datapath and the overlay on this node",
                                      lastHeartbeatTime: .now, lastTransitionTime: .now)
        let patch = TrellisKube.Node(metadata: ObjectMeta(), status: NodeStatus(conditions: [condition]))
        _ = try await client.patch(TrellisKube.Node.self, name: nodeName, try .strategicMerge(patch), subresource: "status")
    }

    /// Closes the client's connections (the agent calls it when it stops).
    public func shutdown() async {
        try? await client.shutdown()
    }
}

/// The five kinds as the informers deliver them, converted to the agent's types, and the
/// snapshot they make once all five have synced.
actor SnapshotAssembler {
    private var snapshot = ClusterSnapshot.empty
    private var synced: Set<String> = []
    private var highestRevision: UInt64 = 0
    private let logger: Logger
    private var rejected: [String: String] = [:]
    /// Nodes, namespaces, pods, network policies, services.
    static let kinds = 5

    init(logger: Logger) { self.logger = logger }

    private func done(_ kind: String, revision: String?) -> ClusterSnapshot? {
        if let r = revision.flatMap(UInt64.init), r > highestRevision { highestRevision = r }
        snapshot.revision = highestRevision == 0 ? nil : String(highestRevision)
        return synced.count == Self.kinds ? snapshot : nil
    }

    /// Applies an event to one kind's dictionary: a complete state replaces it.
    private func apply<Object: KubeResource, Key: Hashable, Value>(
        _ event: InformerEvent<Object>, kind: String, into path: WritableKeyPath<ClusterSnapshot, [Key: Value]>,
        convert: (Object) -> (Key, Value)?, key: (Object) -> Key?
    ) -> ClusterSnapshot? {
        switch event {
        case .synced(let all, let rv):
            var fresh: [Key: Value] = [:]
            for o in all { if let (k, v) = convert(o) { fresh[k] = v } }
            snapshot[keyPath: path] = fresh
            if synced.insert(kind).inserted {
                logger.info("kubernetes source: \(kind) listed", metadata: ["count": "\(fresh.count)", "resourceVersion": "\(rv)"])
            }
            return done(kind, revision: rv)
        case .upserted(let o):
            if let (k, v) = convert(o) { snapshot[keyPath: path][k] = v } else if let k = key(o) { snapshot[keyPath: path][k] = nil }
            return done(kind, revision: o.metadata.resourceVersion)
        case .deleted(let o):
            if let k = key(o) { snapshot[keyPath: path][k] = nil }
            return done(kind, revision: o.metadata.resourceVersion)
        }
    }

    func nodes(_ e: InformerEvent<TrellisKube.Node>) -> ClusterSnapshot? {
        apply(e, kind: "nodes", into: \.nodes, convert: { n in Self.node(n).map { ($0.name, $0) } }, key: { $0.metadata.name })
    }

    func namespaces(_ e: InformerEvent<TrellisKube.Namespace>) -> ClusterSnapshot? {
        apply(e, kind: "namespaces", into: \.namespaces, convert: { n in
            n.metadata.name.map { ($0, ClusterNamespace(name: $0, labels: n.metadata.labels ?? [:])) }
        }, key: { $0.metadata.name })
    }

    func pods(_ e: InformerEvent<TrellisKube.Pod>) -> ClusterSnapshot? {
        apply(e, kind: "pods", into: \.pods, convert: { p in Self.pod(p).map { ($0.key, $0) } },
              key: { p in p.metadata.name.map { ClusterPod.Key(namespace: p.metadata.namespace ?? "default", name: $0) } })
    }

    func policies(_ e: InformerEvent<TrellisKube.NetworkPolicy>) -> ClusterSnapshot? {
        apply(e, kind: "networkpolicies", into: \.policies, convert: { p in
            guard let policy = convert(p) else { return nil }
            return (policy.key, policy)
        }, key: { p in p.metadata.name.map { PolicyKey(p.metadata.namespace ?? "default", $0) } })
    }

    func services(_ e: InformerEvent<TrellisKube.Service>) -> ClusterSnapshot? {
        apply(e, kind: "services", into: \.services, convert: { s in Self.service(s).map { ($0.key, $0) } },
              key: { s in s.metadata.name.map { ClusterService.Key(namespace: s.metadata.namespace ?? "default", name: $0) } })
    }

    static func service(_ s: TrellisKube.Service) -> ClusterService? {
        guard let name = s.metadata.name else { return nil }
        return ClusterService(namespace: s.metadata.namespace ?? "default", name: name,
                              addresses: s.translatedAddresses.compactMap(IPAddress.init))
    }

    static func node(_ n: TrellisKube.Node) -> ClusterNode? {
        guard let name = n.metadata.name else { return nil }
        return ClusterNode(name: name, podCIDRs: n.podCIDRList.compactMap { IPNetwork($0)?.network },
                           internalIPs: n.addresses(ofType: "InternalIP").compactMap(IPAddress.init),
                           labels: n.metadata.labels ?? [:])
    }

    static func pod(_ p: TrellisKube.Pod) -> ClusterPod? {
        guard let name = p.metadata.name else { return nil }
        let ports = (p.spec?.containers ?? []).flatMap { $0.ports ?? [] }.compactMap { port -> ContainerPort? in
            guard let proto = ContainerPort.ProtocolName(rawValue: port.protocol ?? "TCP") else { return nil }
            return ContainerPort(name: port.name, containerPort: port.containerPort, protocol: proto)
        }
        return ClusterPod(namespace: p.metadata.namespace ?? "default", name: name, labels: p.metadata.labels ?? [:],
                          nodeName: p.spec?.nodeName, hostNetwork: p.spec?.hostNetwork ?? false, ports: ports,
                          podIPs: p.ipList.compactMap(IPAddress.init), hostIP: p.status?.hostIP.flatMap(IPAddress.init),
                          phase: p.status?.phase)
    }

    /// The API's object, converted and checked as the manifest parser checks policies (the API
    /// server validated it already; a policy this agent cannot read is logged once and left out).
    private func convert(_ p: TrellisKube.NetworkPolicy) -> TrellisPolicy.NetworkPolicy? {
        let id = "\(p.metadata.namespace ?? "default")/\(p.metadata.name ?? "?")"
        do {
            let policy = try TrellisPolicy.NetworkPolicy(p)
            rejected[id] = nil
            return policy
        } catch {
            let why = "\(error)"
            if rejected[id] != why {
                logger.error("NetworkPolicy \(id) cannot be read and is not enforced: \(why)")
                rejected[id] = why
            }
            return nil
        }
    }
}
