import TrellisNet
import TrellisPolicy

/// What the policy engine is fed: the cluster's objects in the engine's terms, derived from a
/// snapshot and this node's endpoints. Pure, so what the agent asks of the engine is testable
/// without one.
///
/// - Pods: only those on the pod network that own their IPs (not host-network: their address
///   is their node's; not finished: their IPs may already be someone else's). A local pod's
///   addresses are those its CNI ADD gave when the agent has its endpoint (the API may not
///   show them yet); otherwise `status.podIPs`.
/// - A pod of this node is compiled (endpoint id, allow entries) only once it is wired (it is
///   in `localAddresses`): a pod scheduled here but not wired yet, or whose sandbox is gone, has
///   no datapath to program; it counts as a pod of no node until then. That also keeps the
///   endpoint ids a restarted agent adopts from its endpoints the only ones.
/// - Nodes: every Node's InternalIPs; this node's also holds the pods' gateway addresses
///   (`routers`), the source the node's own stack uses towards its pods, so that traffic
///   from the node (kubelet probes) is `host` whichever address it leaves from.
struct PolicyInputs: Sendable, Equatable {
    var namespaces: [String: NamespaceInfo] = [:]
    var nodes: [String: NodeInfo] = [:]
    var pods: [PodKey: PodInfo] = [:]
    var policies: [PolicyKey: NetworkPolicy] = [:]

    static func from(_ snapshot: ClusterSnapshot, localNode: String, localAddresses: [PodKey: [IPAddress]],
                     routers: [IPAddress]) -> PolicyInputs {
        var inputs = PolicyInputs()
        for ns in snapshot.namespaces.values {
            inputs.namespaces[ns.name] = NamespaceInfo(name: ns.name, labels: ns.labels)
        }
        for node in snapshot.nodes.values {
            var ips = node.internalIPs
            if node.name == localNode { ips += routers.filter { !ips.contains($0) } }
            inputs.nodes[node.name] = NodeInfo(name: node.name, ips: ips)
        }
        for pod in snapshot.pods.values where pod.ownsPodIPs {
            let key = PodKey(pod.namespace, pod.name)
            var node = pod.nodeName, ips = pod.podIPs
            if node == localNode {
                if let wired = localAddresses[key] { ips = wired } else { node = nil }
            }
            inputs.pods[key] = PodInfo(namespace: pod.namespace, name: pod.name, labels: pod.labels, ips: ips,
                                       node: node, namedPorts: namedPorts(pod))
        }
        inputs.policies = snapshot.policies
        return inputs
    }

    /// The containers' named ports, as policy resolves them.
    static func namedPorts(_ pod: ClusterPod) -> [NamedPort] {
        pod.ports.compactMap { p in
            guard let name = p.name, let proto = Proto(name: p.protocol.rawValue) else { return nil }
            return NamedPort(name, UInt16(p.containerPort), proto)
        }
    }

    /// The engine changes that lead from `old` to these inputs: what appears or changes first
    /// (namespaces, nodes, pods, then policies), then what goes (policies, pods, nodes,
    /// namespaces), each kind in key order so that a pass is reproducible.
    /// (Runs on every pass and every CNI ADD: only what differs is sorted.)
    func changes(from old: PolicyInputs) -> [PolicyChange] {
        func changed<K: Comparable, V: Equatable>(_ new: [K: V], _ old: [K: V]) -> [V] {
            new.filter { old[$0.key] != $0.value }.sorted { $0.key < $1.key }.map(\.value)
        }
        var out: [PolicyChange] = []
        out += changed(namespaces, old.namespaces).map(PolicyChange.upsertNamespace)
        out += changed(nodes, old.nodes).map(PolicyChange.upsertNode)
        out += changed(pods, old.pods).map(PolicyChange.upsertPod)
        out += changed(policies, old.policies).map(PolicyChange.upsertPolicy)
        func gone<K: Comparable, V>(_ old: [K: V], _ new: [K: V]) -> [K] { old.keys.filter { new[$0] == nil }.sorted() }
        out += gone(old.policies, policies).map(PolicyChange.removePolicy)
        out += gone(old.pods, pods).map(PolicyChange.removePod)
        out += gone(old.nodes, nodes).map(PolicyChange.removeNode)
        out += gone(old.namespaces, namespaces).map(PolicyChange.removeNamespace)
        return out
    }
}
