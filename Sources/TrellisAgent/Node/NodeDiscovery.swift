import TrellisCore
import TrellisNet

/// What the agent learns of its own Node from the cluster state.
public struct OwnNode: Sendable, Equatable {
    public var name: String
    /// The underlay address (first IPv4 InternalIP, else the first InternalIP).
    public var nodeIP: IPAddress
    public var podCIDRs: [IPNetwork]

    /// The pods' gateway on this node in each pod CIDR: the plugin's default `gateway` for a
    /// range written without one (our conflist).
    public var routers: [IPAddress] {
        podCIDRs.compactMap(\.defaultGateway)
    }
}

public enum NodeDiscovery {
    /// The own Node once it has an InternalIP and pod CIDRs; otherwise why not (yet).
    public static func find(_ snapshot: ClusterSnapshot, nodeName: String) -> Result<OwnNode, Waiting> {
        guard let node = snapshot.nodes[nodeName] else {
            return .failure(Waiting("Node \(nodeName) is not in the cluster state yet"))
        }
        guard let ip = node.tunnelIP else {
            return .failure(Waiting("Node \(nodeName) has no InternalIP address yet"))
        }
        guard !node.podCIDRs.isEmpty else {
            return .failure(Waiting("Node \(nodeName) has no podCIDR yet"))
        }
        return .success(OwnNode(name: node.name, nodeIP: ip, podCIDRs: node.podCIDRs))
    }

    public struct Waiting: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The CIDRs that are not masqueraded: the configured ones, or all Nodes' pod CIDRs.
    public static func clusterCIDRs(_ snapshot: ClusterSnapshot, configured: [IPNetwork]) -> [IPNetwork] {
        if !configured.isEmpty { return configured }
        return snapshot.nodes.values.flatMap(\.podCIDRs)
    }
}
