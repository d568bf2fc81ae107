/// A NetworkPolicy (`networking.k8s.io/v1`, namespaced), the whole spec.
public struct NetworkPolicy: KubeResource, Hashable {
    public static let resourceKind = ResourceKind(group: "networking.k8s.io", version: "v1", plural: "networkpolicies",
                                                  kind: "NetworkPolicy", namespaced: true)

    public var metadata: ObjectMeta
    public var spec: NetworkPolicySpec

    public init(metadata: ObjectMeta, spec: NetworkPolicySpec = NetworkPolicySpec()) {
        self.metadata = metadata
        self.spec = spec
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try c.decode(ObjectMeta.self, forKey: .metadata)
        spec = try c.decodeIfPresent(NetworkPolicySpec.self, forKey: .spec) ?? NetworkPolicySpec()
    }
}

public struct NetworkPolicySpec: Codable, Sendable, Hashable {
    /// The pods the policy applies to, in its namespace; empty selects all of them.
    public var podSelector: LabelSelector
    /// `Ingress`, `Egress`. When absent the server fills in `Ingress`, plus `Egress` if
    /// there are egress rules.
    public var policyTypes: [String]?
    /// nil: no ingress rule (with `Ingress` in policyTypes, nothing is allowed in).
    public var ingress: [NetworkPolicyIngressRule]?
    public var egress: [NetworkPolicyEgressRule]?

    public init(podSelector: LabelSelector = LabelSelector(), policyTypes: [String]? = nil,
                ingress: [NetworkPolicyIngressRule]? = nil, egress: [NetworkPolicyEgressRule]? = nil) {
        self.podSelector = podSelector
        self.policyTypes = policyTypes
        self.ingress = ingress
        self.egress = egress
    }

    // `podSelector` may be absent in objects written by newer servers (it is optional since
    // 1.31 and means "all pods", like `{}`).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        podSelector = try c.decodeIfPresent(LabelSelector.self, forKey: .podSelector) ?? LabelSelector()
        policyTypes = try c.decodeIfPresent([String].self, forKey: .policyTypes)
        ingress = try c.decodeIfPresent([NetworkPolicyIngressRule].self, forKey: .ingress)
        egress = try c.decodeIfPresent([NetworkPolicyEgressRule].self, forKey: .egress)
    }
}

/// `spec.ingress[]`: traffic from any of `from` (absent or empty: from anywhere) to any of
/// `ports` (absent or empty: every port).
public struct NetworkPolicyIngressRule: Codable, Sendable, Hashable {
    public var from: [NetworkPolicyPeer]?
    public var ports: [NetworkPolicyPort]?

    public init(from: [NetworkPolicyPeer]? = nil, ports: [NetworkPolicyPort]? = nil) {
        self.from = from
        self.ports = ports
    }
}

/// `spec.egress[]`: traffic to any of `to` on any of `ports`.
public struct NetworkPolicyEgressRule: Codable, Sendable, Hashable {
    public var to: [NetworkPolicyPeer]?
    public var ports: [NetworkPolicyPort]?

    public init(to: [NetworkPolicyPeer]? = nil, ports: [NetworkPolicyPort]? = nil) {
        self.to = to
        self.ports = ports
    }
}

/// One peer: pods (podSelector, in the policy's namespace unless namespaceSelector is set too),
/// namespaces (namespaceSelector), or addresses (ipBlock, alone).
public struct NetworkPolicyPeer: Codable, Sendable, Hashable {
    public var podSelector: LabelSelector?
    public var namespaceSelector: LabelSelector?
    public var ipBlock: IPBlock?

    public init(podSelector: LabelSelector? = nil, namespaceSelector: LabelSelector? = nil, ipBlock: IPBlock? = nil) {
        self.podSelector = podSelector
        self.namespaceSelector = namespaceSelector
        self.ipBlock = ipBlock
    }
}

/// `ipBlock`: a CIDR minus the `except` CIDRs inside it.
public struct IPBlock: Codable, Sendable, Hashable {
    public var cidr: String
    public var except: [String]?

    public init(cidr: String, except: [String]? = nil) {
        self.cidr = cidr
        self.except = except
    }
}

/// `ports[]`: `port` is a number or a named container port; with `endPort` (numbers only) a
/// range. `protocol` defaults to `TCP` when absent.
public struct NetworkPolicyPort: Codable, Sendable, Hashable {
    public var `protocol`: String?
    public var port: IntOrString?
    public var endPort: Int?

    public init(protocol: String? = nil, port: IntOrString? = nil, endPort: Int? = nil) {
        self.protocol = `protocol`
        self.port = port
        self.endPort = endPort
    }
}
