/// A cluster node (`v1/Node`, cluster-scoped). The agent reads its pod CIDRs and addresses
/// and reports conditions through the `status` subresource.
public struct Node: KubeResource, Hashable {
    public static let resourceKind = ResourceKind(group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false)

    public var metadata: ObjectMeta
    public var spec: NodeSpec?
    public var status: NodeStatus?

    public init(metadata: ObjectMeta, spec: NodeSpec? = nil, status: NodeStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    /// `spec.podCIDRs`, or `[spec.podCIDR]` when only the older field is set.
    public var podCIDRList: [String] {
        if let list = spec?.podCIDRs, !list.isEmpty { return list }
        return spec?.podCIDR.map { [$0] } ?? []
    }

    /// The addresses of one type (`InternalIP`, `ExternalIP`, `Hostname`), in order.
    public func addresses(ofType type: String) -> [String] {
        (status?.addresses ?? []).filter { $0.type == type }.map(\.address)
    }

    public func condition(_ type: String) -> NodeCondition? {
        status?.conditions?.first { $0.type == type }
    }
}

public struct NodeSpec: Codable, Sendable, Hashable {
    public var podCIDR: String?
    public var podCIDRs: [String]?
    public var unschedulable: Bool?
    public var taints: [Taint]?
    public var providerID: String?

    public init(podCIDR: String? = nil, podCIDRs: [String]? = nil, unschedulable: Bool? = nil,
                taints: [Taint]? = nil, providerID: String? = nil) {
        self.podCIDR = podCIDR
        self.podCIDRs = podCIDRs
        self.unschedulable = unschedulable
        self.taints = taints
        self.providerID = providerID
    }
}

/// `spec.taints[]`: `effect` is `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
public struct Taint: Codable, Sendable, Hashable {
    public var key: String
    public var value: String?
    public var effect: String
    public var timeAdded: KubeTime?

    public init(key: String, value: String? = nil, effect: String, timeAdded: KubeTime? = nil) {
        self.key = key
        self.value = value
        self.effect = effect
        self.timeAdded = timeAdded
    }
}

public struct NodeStatus: Codable, Sendable, Hashable {
    public var addresses: [NodeAddress]?
    /// Merged by `type` in a strategic merge patch: a patch naming one condition keeps the others.
    public var conditions: [NodeCondition]?
    /// Quantities as the API writes them (`"4"`, `"16Gi"`).
    public var capacity: [String: String]?
    public var allocatable: [String: String]?
    public var nodeInfo: NodeSystemInfo?

    public init(addresses: [NodeAddress]? = nil, conditions: [NodeCondition]? = nil,
                capacity: [String: String]? = nil, allocatable: [String: String]? = nil,
                nodeInfo: NodeSystemInfo? = nil) {
        self.addresses = addresses
        self.conditions = conditions
        self.capacity = capacity
        self.allocatable = allocatable
        self.nodeInfo = nodeInfo
    }
}

/// `status.addresses[]`: `type` is `InternalIP`, `ExternalIP`, `Hostname`, `InternalDNS` or `ExternalDNS`.
public struct NodeAddress: Codable, Sendable, Hashable {
    public var type: String
    public var address: String

    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}

/// `status.conditions[]` of a Node: `status` is `True`, `False` or `Unknown`.
public struct NodeCondition: Codable, Sendable, Hashable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastHeartbeatTime: KubeTime?
    public var lastTransitionTime: KubeTime?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil,
                lastHeartbeatTime: KubeTime? = nil, lastTransitionTime: KubeTime? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastHeartbeatTime = lastHeartbeatTime
        self.lastTransitionTime = lastTransitionTime
    }
}

/// `status.nodeInfo`: what the kubelet reports about the machine.
public struct NodeSystemInfo: Codable, Sendable, Hashable {
    public var machineID: String?
    public var kernelVersion: String?
    public var osImage: String?
    public var containerRuntimeVersion: String?
    public var kubeletVersion: String?
    public var operatingSystem: String?
    public var architecture: String?

    public init(kernelVersion: String? = nil, osImage: String? = nil, containerRuntimeVersion: String? = nil,
                kubeletVersion: String? = nil, operatingSystem: String? = nil, architecture: String? = nil) {
        self.kernelVersion = kernelVersion
        self.osImage = osImage
        self.containerRuntimeVersion = containerRuntimeVersion
        self.kubeletVersion = kubeletVersion
        self.operatingSystem = operatingSystem
        self.architecture = architecture
    }
}
