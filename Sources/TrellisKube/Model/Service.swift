/// A Service (`v1/Service`, namespaced). The agent reads the addresses kube-proxy translates:
/// its cluster IPs, external IPs and load-balancer IPs.
public struct Service: KubeResource, Hashable {
    public static let resourceKind = ResourceKind(group: "", version: "v1", plural: "services", kind: "Service", namespaced: true)

    public var metadata: ObjectMeta
    public var spec: ServiceSpec?
    public var status: ServiceStatus?

    public init(metadata: ObjectMeta, spec: ServiceSpec? = nil, status: ServiceStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    /// `spec.clusterIPs` (or `[spec.clusterIP]`; "None" for a headless Service is no address),
    /// `spec.externalIPs`, `status.loadBalancer.ingress[].ip`, in that order, without duplicates.
    public var translatedAddresses: [String] {
        var out: [String] = []
        let cluster = spec?.clusterIPs ?? spec?.clusterIP.map { [$0] } ?? []
        for a in cluster + (spec?.externalIPs ?? []) + (status?.loadBalancer?.ingress ?? []).compactMap(\.ip)
        where !a.isEmpty && a != "None" && !out.contains(a) {
            out.append(a)
        }
        return out
    }
}

public struct ServiceSpec: Codable, Sendable, Hashable {
    /// ClusterIP, NodePort, LoadBalancer or ExternalName.
    public var type: String?
    public var clusterIP: String?
    public var clusterIPs: [String]?
    public var externalIPs: [String]?
    public var selector: [String: String]?
    public var ports: [ServicePort]?

    public init(type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil, externalIPs: [String]? = nil,
                selector: [String: String]? = nil, ports: [ServicePort]? = nil) {
        self.type = type
        self.clusterIP = clusterIP
        self.clusterIPs = clusterIPs
        self.externalIPs = externalIPs
        self.selector = selector
        self.ports = ports
    }
}

public struct ServicePort: Codable, Sendable, Hashable {
    public var name: String?
    public var `protocol`: String?
    public var port: Int
    /// A number, or the name of a port of the selected pods.
    public var targetPort: IntOrString?
    public var nodePort: Int?

    public init(name: String? = nil, protocol: String? = nil, port: Int, targetPort: IntOrString? = nil, nodePort: Int? = nil) {
        self.name = name
        self.protocol = `protocol`
        self.port = port
        self.targetPort = targetPort
        self.nodePort = nodePort
    }
}

public struct ServiceStatus: Codable, Sendable, Hashable {
    public var loadBalancer: LoadBalancerStatus?
    public init(loadBalancer: LoadBalancerStatus? = nil) { self.loadBalancer = loadBalancer }
}

public struct LoadBalancerStatus: Codable, Sendable, Hashable {
    public var ingress: [LoadBalancerIngress]?
    public init(ingress: [LoadBalancerIngress]? = nil) { self.ingress = ingress }
}

public struct LoadBalancerIngress: Codable, Sendable, Hashable {
    public var ip: String?
    public var hostname: String?
    public init(ip: String? = nil, hostname: String? = nil) {
        self.ip = ip
        self.hostname = hostname
    }
}
