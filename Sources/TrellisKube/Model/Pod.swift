/// A pod (`v1/Pod`, namespaced): where it runs, its ports, its addresses.
public struct Pod: KubeResource, Hashable {
    public static let resourceKind = ResourceKind(group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true)

    public var metadata: ObjectMeta
    public var spec: PodSpec?
    public var status: PodStatus?

    public init(metadata: ObjectMeta, spec: PodSpec? = nil, status: PodStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    /// `status.podIPs`, or `[status.podIP]` when only the older field is set.
    public var ipList: [String] {
        if let list = status?.podIPs, !list.isEmpty { return list.map(\.ip) }
        return status?.podIP.map { [$0] } ?? []
    }
}

public struct PodSpec: Codable, Sendable, Hashable {
    /// Set by the scheduler (or by hand); a field selector `spec.nodeName=NODE` lists one node's pods.
    public var nodeName: String?
    public var hostNetwork: Bool?
    public var containers: [Container]
    public var initContainers: [Container]?
    public var serviceAccountName: String?
    public var restartPolicy: String?
    public var schedulerName: String?

    public init(nodeName: String? = nil, hostNetwork: Bool? = nil, containers: [Container] = [],
                initContainers: [Container]? = nil, serviceAccountName: String? = nil, restartPolicy: String? = nil) {
        self.nodeName = nodeName
        self.hostNetwork = hostNetwork
        self.containers = containers
        self.initContainers = initContainers
        self.serviceAccountName = serviceAccountName
        self.restartPolicy = restartPolicy
    }

    // `containers` is required by the API; a missing list decodes as empty rather than failing
    // a whole list or watch over one odd object.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nodeName = try c.decodeIfPresent(String.self, forKey: .nodeName)
        hostNetwork = try c.decodeIfPresent(Bool.self, forKey: .hostNetwork)
        containers = try c.decodeIfPresent([Container].self, forKey: .containers) ?? []
        initContainers = try c.decodeIfPresent([Container].self, forKey: .initContainers)
        serviceAccountName = try c.decodeIfPresent(String.self, forKey: .serviceAccountName)
        restartPolicy = try c.decodeIfPresent(String.self, forKey: .restartPolicy)
        schedulerName = try c.decodeIfPresent(String.self, forKey: .schedulerName)
    }
}

public struct Container: Codable, Sendable, Hashable {
    public var name: String
    public var image: String?
    public var ports: [ContainerPort]?

    public init(name: String, image: String? = nil, ports: [ContainerPort]? = nil) {
        self.name = name
        self.image = image
        self.ports = ports
    }
}

/// `containers[].ports[]`: `protocol` is `TCP` (the default when absent), `UDP` or `SCTP`.
public struct ContainerPort: Codable, Sendable, Hashable {
    public var name: String?
    public var containerPort: Int
    public var `protocol`: String?
    public var hostPort: Int?
    public var hostIP: String?

    public init(name: String? = nil, containerPort: Int, protocol: String? = nil, hostPort: Int? = nil) {
        self.name = name
        self.containerPort = containerPort
        self.protocol = `protocol`
        self.hostPort = hostPort
    }
}

public struct PodStatus: Codable, Sendable, Hashable {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    public var phase: String?
    public var podIP: String?
    /// Merged by `ip` in a strategic merge patch.
    public var podIPs: [PodIP]?
    public var hostIP: String?
    public var hostIPs: [HostIP]?
    /// Merged by `type` in a strategic merge patch.
    public var conditions: [PodCondition]?
    public var reason: String?
    public var message: String?
    public var startTime: KubeTime?

    public init(phase: String? = nil, podIP: String? = nil, podIPs: [PodIP]? = nil, hostIP: String? = nil,
                hostIPs: [HostIP]? = nil, conditions: [PodCondition]? = nil) {
        self.phase = phase
        self.podIP = podIP
        self.podIPs = podIPs
        self.hostIP = hostIP
        self.hostIPs = hostIPs
        self.conditions = conditions
    }
}

public struct PodIP: Codable, Sendable, Hashable {
    public var ip: String
    public init(ip: String) { self.ip = ip }
}

public struct HostIP: Codable, Sendable, Hashable {
    public var ip: String
    public init(ip: String) { self.ip = ip }
}

/// `status.conditions[]` of a Pod (`Ready`, `PodScheduled`, ...).
public struct PodCondition: Codable, Sendable, Hashable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastProbeTime: KubeTime?
    public var lastTransitionTime: KubeTime?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil,
                lastTransitionTime: KubeTime? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
    }
}
