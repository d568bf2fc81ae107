import TrellisNet
import TrellisPolicy

/// The parts of a Kubernetes Node the agent reads.
public struct ClusterNode: Sendable, Equatable {
    public var name: String
    /// `spec.podCIDRs`, or `[spec.podCIDR]` when only the old field is set; networks, masked.
    public var podCIDRs: [IPNetwork]
    /// `status.addresses` of type InternalIP, in order.
    public var internalIPs: [IPAddress]
    public var labels: [String: String]

    public init(name: String, podCIDRs: [IPNetwork] = [], internalIPs: [IPAddress] = [], labels: [String: String] = [:]) {
        self.name = name
        self.podCIDRs = podCIDRs
        self.internalIPs = internalIPs
        self.labels = labels
    }

    /// The address other nodes reach this one at for Geneve: the first IPv4 InternalIP (the
    /// outer header is IPv4), else the first InternalIP.
    public var tunnelIP: IPAddress? {
        internalIPs.first { $0.family == .v4 } ?? internalIPs.first
    }
}

public struct ClusterNamespace: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

public struct ContainerPort: Sendable, Equatable, Hashable {
    public enum ProtocolName: String, Sendable, Equatable, Hashable, CaseIterable {
        case tcp = "TCP", udp = "UDP", sctp = "SCTP"
    }
    public var name: String?
    public var containerPort: Int
    public var `protocol`: ProtocolName

    public init(name: String? = nil, containerPort: Int, protocol: ProtocolName = .tcp) {
        self.name = name
        self.containerPort = containerPort
        self.protocol = `protocol`
    }
}

/// The parts of a Kubernetes Pod the agent reads.
public struct ClusterPod: Sendable, Equatable {
    public struct Key: Hashable, Sendable, Comparable, CustomStringConvertible {
        public var namespace: String
        public var name: String
        public init(namespace: String, name: String) {
            self.namespace = namespace
            self.name = name
        }
        public var description: String { "\(namespace)/\(name)" }
        public static func < (a: Key, b: Key) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
    }

    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var nodeName: String?
    public var hostNetwork: Bool
    /// Every container's `ports`, in order.
    public var ports: [ContainerPort]
    /// `status.podIPs`, or `[status.podIP]` when only the old field is set.
    public var podIPs: [IPAddress]
    public var hostIP: IPAddress?
    /// `status.phase`: Pending, Running, Succeeded, Failed, Unknown.
    public var phase: String?

    public init(namespace: String = "default", name: String, labels: [String: String] = [:],
                nodeName: String? = nil, hostNetwork: Bool = false, ports: [ContainerPort] = [],
                podIPs: [IPAddress] = [], hostIP: IPAddress? = nil, phase: String? = nil) {
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.nodeName = nodeName
        self.hostNetwork = hostNetwork
        self.ports = ports
        self.podIPs = podIPs
        self.hostIP = hostIP
        self.phase = phase
    }

    public var key: Key { Key(namespace: namespace, name: name) }

    /// Whether the pod's IPs belong to it in the pod network: not a host-network pod (its IP
    /// is its node's), and not finished (a finished pod's IPs are released and may be reused).
    public var ownsPodIPs: Bool {
        !hostNetwork && phase != "Succeeded" && phase != "Failed"
    }
}

/// The parts of a Kubernetes Service the agent reads: the addresses kube-proxy translates.
public struct ClusterService: Sendable, Equatable {
    public typealias Key = ClusterPod.Key
    public var namespace: String
    public var name: String
    /// `spec.clusterIPs` (or `spec.clusterIP`; never "None"), `spec.externalIPs` and
    /// `status.loadBalancer.ingress[].ip`, in that order, without duplicates.
    public var addresses: [IPAddress]

    public init(namespace: String = "default", name: String, addresses: [IPAddress] = []) {
        self.namespace = namespace
        self.name = name
        self.addresses = addresses
    }

    public var key: Key { Key(namespace: namespace, name: name) }
}

/// A complete view of the cluster at one moment: what the reconcilers program from.
public struct ClusterSnapshot: Sendable, Equatable {
    public var nodes: [String: ClusterNode]
    public var namespaces: [String: ClusterNamespace]
    public var pods: [ClusterPod.Key: ClusterPod]
    /// networking.k8s.io/v1 NetworkPolicies, validated.
    public var policies: [PolicyKey: NetworkPolicy]
    /// Services with the addresses the node's stack translates.
    public var services: [ClusterService.Key: ClusterService]
    /// Where the source is in its history: the highest `metadata.resourceVersion` of the objects
    /// (manifests) or the list/watch position (Kubernetes API); nil when unknown. The agent
    /// reports the revision it has programmed, so a writer can wait for its change to be in place.
    public var revision: String?

    public init(nodes: [ClusterNode] = [], namespaces: [ClusterNamespace] = [], pods: [ClusterPod] = [],
                policies: [NetworkPolicy] = [], services: [ClusterService] = [], revision: String? = nil) {
        self.nodes = Dictionary(nodes.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        self.namespaces = Dictionary(namespaces.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        self.pods = Dictionary(pods.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        self.policies = Dictionary(policies.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        self.services = Dictionary(services.map { ($0.key, $0) }, uniquingKeysWith: { _, last in last })
        self.revision = revision
    }

    public static let empty = ClusterSnapshot()

    /// Every address a Service makes the node's stack translate.
    public var serviceAddresses: Set<IPAddress> {
        Set(services.values.flatMap(\.addresses))
    }
}
