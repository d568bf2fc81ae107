import TrellisNet

/// The objects policy depends on, with the indexes the evaluator and the compiler need.
/// A plain value: `PolicyEngine` keeps one, `trellisctl policy explain -f` builds one from
/// manifests.
public struct PolicyCluster: Sendable {
    public private(set) var policies: [PolicyKey: NetworkPolicy] = [:]
    public private(set) var pods: [PodKey: PodInfo] = [:]
    public private(set) var namespaces: [String: NamespaceInfo] = [:]
    public private(set) var nodes: [String: NodeInfo] = [:]

    private(set) var policiesByNamespace: [String: Set<PolicyKey>] = [:]
    private(set) var podsByNamespace: [String: Set<PodKey>] = [:]
    /// Every pod claiming an address; the lowest key owns it (see `podOwning`).
    private(set) var podsByIP: [IPAddress: Set<PodKey>] = [:]
    private(set) var nodesByIP: [IPAddress: Set<String>] = [:]

    public init() {}

    public init(policies: [NetworkPolicy] = [], pods: [PodInfo] = [], namespaces: [NamespaceInfo] = [], nodes: [NodeInfo] = []) {
        for n in namespaces { upsert(n) }
        for n in nodes { upsert(n) }
        for p in pods { upsert(p) }
        for p in policies { upsert(p) }
    }

    // MARK: Changes

    /// Adds or replaces; returns the previous version.
    @discardableResult
    public mutating func upsert(_ policy: NetworkPolicy) -> NetworkPolicy? {
        let old = policies.updateValue(policy, forKey: policy.key)
        policiesByNamespace[policy.namespace, default: []].insert(policy.key)
        return old
    }

    @discardableResult
    public mutating func removePolicy(_ key: PolicyKey) -> NetworkPolicy? {
        guard let old = policies.removeValue(forKey: key) else { return nil }
        policiesByNamespace[key.namespace]?.remove(key)
        if policiesByNamespace[key.namespace]?.isEmpty == true { policiesByNamespace[key.namespace] = nil }
        return old
    }

    @discardableResult
    public mutating func upsert(_ pod: PodInfo) -> PodInfo? {
        let old = removePod(pod.key)
        pods[pod.key] = pod
        podsByNamespace[pod.namespace, default: []].insert(pod.key)
        for ip in pod.ips { podsByIP[ip, default: []].insert(pod.key) }
        return old
    }

    @discardableResult
    public mutating func removePod(_ key: PodKey) -> PodInfo? {
        guard let old = pods.removeValue(forKey: key) else { return nil }
        podsByNamespace[key.namespace]?.remove(key)
        if podsByNamespace[key.namespace]?.isEmpty == true { podsByNamespace[key.namespace] = nil }
        for ip in old.ips {
            podsByIP[ip]?.remove(key)
            if podsByIP[ip]?.isEmpty == true { podsByIP[ip] = nil }
        }
        return old
    }

    @discardableResult
    public mutating func upsert(_ namespace: NamespaceInfo) -> NamespaceInfo? {
        namespaces.updateValue(namespace, forKey: namespace.name)
    }

    @discardableResult
    public mutating func removeNamespace(_ name: String) -> NamespaceInfo? {
        namespaces.removeValue(forKey: name)
    }

    @discardableResult
    public mutating func upsert(_ node: NodeInfo) -> NodeInfo? {
        let old = removeNode(node.name)
        nodes[node.name] = node
        for ip in node.ips { nodesByIP[ip, default: []].insert(node.name) }
        return old
    }

    @discardableResult
    public mutating func removeNode(_ name: String) -> NodeInfo? {
        guard let old = nodes.removeValue(forKey: name) else { return nil }
        for ip in old.ips {
            nodesByIP[ip]?.remove(name)
            if nodesByIP[ip]?.isEmpty == true { nodesByIP[ip] = nil }
        }
        return old
    }

    // MARK: Queries

    /// The labels a namespace selector sees; a namespace not (yet) known has only
    /// `kubernetes.io/metadata.name`.
    public func namespaceLabels(_ name: String) -> Labels {
        namespaces[name]?.effectiveLabels ?? [NamespaceInfo.nameLabel: name]
    }

    /// The pod an address belongs to (of two pods claiming one address, the lower key).
    public func podOwning(_ ip: IPAddress) -> PodInfo? {
        podsByIP[ip].flatMap { $0.min() }.flatMap { pods[$0] }
    }

    /// The node an address belongs to (of two, the lower name).
    public func nodeOwning(_ ip: IPAddress) -> NodeInfo? {
        nodesByIP[ip].flatMap { $0.min() }.flatMap { nodes[$0] }
    }

    /// The pods of a namespace, sorted.
    public func pods(in namespace: String) -> [PodInfo] {
        (podsByNamespace[namespace] ?? []).sorted().compactMap { pods[$0] }
    }

    /// The policies of a namespace, sorted by name.
    public func policies(in namespace: String) -> [NetworkPolicy] {
        (policiesByNamespace[namespace] ?? []).sorted().compactMap { policies[$0] }
    }

    /// The policies that select `pod` and apply to `direction`, sorted: if any, the pod is
    /// isolated in that direction.
    public func isolatingPolicies(for pod: PodInfo, _ direction: PolicyDirection) -> [NetworkPolicy] {
        policies(in: pod.namespace).filter { $0.applies(to: direction) && $0.podSelector.matches(pod.labels) }
    }

    /// Whether a (selector) peer of a policy in `policyNamespace` selects `pod`.
    public func peer(_ peer: PolicyPeer, inPolicyNamespace policyNamespace: String, selects pod: PodInfo) -> Bool {
        if peer.ipBlock != nil { return false }
        if let ns = peer.namespaceSelector {
            guard ns.matches(namespaceLabels(pod.namespace)) else { return false }
        } else if pod.namespace != policyNamespace {
            return false
        }
        return (peer.podSelector ?? .everything).matches(pod.labels)
    }
}
