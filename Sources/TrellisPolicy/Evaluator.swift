import TrellisNet

/// One end of a connection, for the reference evaluator.
public enum Endpoint: Sendable, Hashable, CustomStringConvertible {
    case pod(PodKey)
    /// A node's host (its own stack: kubelet probes, host-network processes).
    case node(String)
    /// Any other address. An address that belongs to a known pod or node is taken as that pod
    /// or node.
    case address(IPAddress)

    public static func pod(_ namespace: String, _ name: String) -> Endpoint { .pod(PodKey(namespace, name)) }

    public var description: String {
        switch self {
        case .pod(let k): "pod \(k)"
        case .node(let n): "node \(n)"
        case .address(let a): "\(a)"
        }
    }
}

/// A rule of a policy: `x/allow-web ingress[1]`.
public struct RuleRef: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var policy: PolicyKey
    public var direction: PolicyDirection
    public var index: Int
    public init(_ policy: PolicyKey, _ direction: PolicyDirection, _ index: Int) {
        self.policy = policy
        self.direction = direction
        self.index = index
    }
    public var description: String { "\(policy) \(direction.word)[\(index)]" }
    public static func < (a: Self, b: Self) -> Bool { (a.policy, a.direction, a.index) < (b.policy, b.direction, b.index) }
}

/// The decision of one direction at one pod: egress where a connection leaves its source pod,
/// ingress where it reaches its destination pod.
public struct DirectionVerdict: Sendable, Hashable, CustomStringConvertible {
    public enum Decision: Sendable, Hashable {
        /// No policy selecting the pod applies to this direction.
        case notIsolated
        /// Isolated, and these rules allow it (`allowedBy`).
        case allowedByRules
        /// Ingress from the pod's own node: always allowed.
        case fromOwnNode
        /// Isolated (by `isolatedBy`) and no rule allows it.
        case denied
    }

    public var direction: PolicyDirection
    public var pod: PodKey
    public var decision: Decision
    /// The policies that select the pod for this direction (empty: not isolated).
    public var isolatedBy: [PolicyKey]
    /// Every rule that matches the connection (union semantics: any one suffices).
    public var allowedBy: [RuleRef]

    public var allowed: Bool { decision != .denied }

    public var description: String {
        let policies = isolatedBy.map(\.description).joined(separator: ", ")
        let noun = isolatedBy.count == 1 ? "policy" : "policies"
        switch decision {
        case .notIsolated:
            return "\(direction.word) at \(pod): allowed, not isolated for \(direction.word) (no policy selecting it applies to \(direction.rawValue))"
        case .allowedByRules:
            return "\(direction.word) at \(pod): allowed by \(allowedBy.map(\.description).joined(separator: ", "))"
        case .fromOwnNode:
            return "ingress at \(pod): allowed, traffic from the pod's own node always is"
        case .denied:
            return "denied by default-deny in \(pod.namespace): pod \(pod) is isolated for \(direction.word) by \(noun) \(policies) and no rule allows it"
        }
    }
}

/// The reference decision for one connection attempt (the first packet; replies of an allowed
/// connection pass by conntrack).
public struct Verdict: Sendable, Hashable, CustomStringConvertible {
    public var allowed: Bool
    /// Nil when the source is not a pod (a node, an outside address).
    public var egress: DirectionVerdict?
    /// Nil when the destination is not a pod.
    public var ingress: DirectionVerdict?

    /// For `trellisctl policy explain`: the deciding direction(s) first.
    public var description: String {
        let parts = [egress, ingress].compactMap { $0 }
        if allowed {
            return parts.isEmpty ? "allowed: neither end is a pod" : "allowed: " + parts.map(\.description).joined(separator: "; ")
        }
        return parts.filter { !$0.allowed }.map(\.description).joined(separator: "; ")
    }
}

extension PolicyCluster {
    /// What the other side of a connection is, as a rule sees it.
    struct PeerView {
        var pod: PodInfo?
        var address: IPAddress?
    }

    /// The reference semantics of networking.k8s.io/v1 NetworkPolicy, evaluated directly on the
    /// objects (no identities, no compiled entries): egress at the source pod, ingress at the
    /// destination pod; both must allow.
    ///
    /// - `family`: the address family of the connection (which of a dual-stack pod's addresses
    ///   an ipBlock sees). Default: the family of an `.address` end, else of the source's first
    ///   address, else of the destination's, else IPv4.
    /// - `port` is the destination port (ignored for protocols without ports, e.g. ICMP).
    public func verdict(from source: Endpoint, to destination: Endpoint, port: UInt16, proto: Proto,
                        family: IPAddress.Family? = nil) -> Verdict {
        let src = resolve(source), dst = resolve(destination)
        let fam = family ?? src.explicitFamily ?? dst.explicitFamily ?? src.firstFamily(self) ?? dst.firstFamily(self) ?? .v4
        let srcView = PeerView(pod: src.pod(self), address: src.address(self, fam))
        let dstView = PeerView(pod: dst.pod(self), address: dst.address(self, fam))

        var v = Verdict(allowed: true)
        if let pod = srcView.pod {
            v.egress = evaluate(.egress, at: pod, peer: dstView, port: port, proto: proto)
        }
        if let pod = dstView.pod {
            if case .node(let n) = src, pod.node == n {
                var d = evaluate(.ingress, at: pod, peer: srcView, port: port, proto: proto)
                d.decision = .fromOwnNode
                v.ingress = d
            } else {
                v.ingress = evaluate(.ingress, at: pod, peer: srcView, port: port, proto: proto)
            }
        }
        v.allowed = (v.egress?.allowed ?? true) && (v.ingress?.allowed ?? true)
        return v
    }

    /// One direction at `pod` against a peer.
    func evaluate(_ direction: PolicyDirection, at pod: PodInfo, peer: PeerView, port: UInt16, proto: Proto) -> DirectionVerdict {
        let isolating = isolatingPolicies(for: pod, direction)
        var d = DirectionVerdict(direction: direction, pod: pod.key, decision: .notIsolated,
                                 isolatedBy: isolating.map(\.key), allowedBy: [])
        guard !isolating.isEmpty else { return d }
        // Named ports resolve at the destination: the pod itself for ingress, the peer for egress.
        let destinationPorts = direction == .ingress ? pod.namedPorts : (peer.pod?.namedPorts ?? [])
        for policy in isolating {
            for (i, rule) in policy.rules(direction).enumerated() {
                let peerMatches = rule.peers.isEmpty || rule.peers.contains { p in
                    if let block = p.ipBlock { return peer.address.map(block.contains) ?? false }
                    guard let other = peer.pod else { return false }
                    return self.peer(p, inPolicyNamespace: policy.namespace, selects: other)
                }
                let portMatches = rule.ports.isEmpty || rule.ports.contains {
                    $0.matches(port: port, proto: proto, destinationPorts: destinationPorts)
                }
                if peerMatches && portMatches { d.allowedBy.append(RuleRef(policy.key, direction, i)) }
            }
        }
        d.decision = d.allowedBy.isEmpty ? .denied : .allowedByRules
        return d
    }

    /// Addresses of known pods and nodes are taken as those.
    private func resolve(_ e: Endpoint) -> Endpoint {
        guard case .address(let a) = e else { return e }
        if let pod = podOwning(a) { return .pod(pod.key) }
        if let node = nodeOwning(a) { return .node(node.name) }
        return e
    }
}

private extension Endpoint {
    var explicitFamily: IPAddress.Family? {
        if case .address(let a) = self { return a.family }
        return nil
    }

    func firstFamily(_ c: PolicyCluster) -> IPAddress.Family? {
        switch self {
        case .pod(let k): c.pods[k]?.ips.first?.family
        case .node(let n): c.nodes[n]?.ips.first?.family
        case .address(let a): a.family
        }
    }

    func pod(_ c: PolicyCluster) -> PodInfo? {
        if case .pod(let k) = self { return c.pods[k] }
        return nil
    }

    func address(_ c: PolicyCluster, _ family: IPAddress.Family) -> IPAddress? {
        switch self {
        case .pod(let k): c.pods[k]?.ips.first { $0.family == family }
        case .node(let n): c.nodes[n]?.ips.first { $0.family == family }
        case .address(let a): a.family == family ? a : nil
        }
    }
}
