import Foundation
import TrellisCore
import TrellisPolicy

/// Everything a lab made, recorded before it is made (names, paths) or right after (PIDs),
/// so that `down` can undo a lab whose `up` died at any point. Stored as `DIR/lab.json`,
/// replaced atomically.
public struct LabState: Codable, Sendable {
    public enum Phase: String, Codable, Sendable {
        /// `up` is under way or died; `down` is the only way forward.
        case starting
        case ready
    }

    public var version = 1
    public var labID: String
    public var stateDir: String
    public var phase: Phase
    public var datapath: DatapathMode
    public var agents: Bool
    public var binDir: String
    public var bpfObjectDir: String?
    /// Folders above the state directory that `up` had to create (removed by `down` when empty).
    public var createdParents: [String]
    public var underlayNetns: String
    public var nodes: [NodeRecord]
    public var namespaces: [NamespaceRecord]
    public var pods: [PodRecord]
    /// NetworkPolicies applied, as their canonical manifests (JSON). Optional: a lab made before
    /// policies existed has none.
    public var policies: [PolicyRecord]?
    /// Services (manifests mode; optional: a lab made before Services existed has none).
    public var services: [ServiceRecord]?
    /// Bumped on every change of what the agents read; their objects' resourceVersion.
    public var revision: Int?
    /// Kubernetes mode: the kubeconfig of the API server the lab's cluster state lives in.
    public var kubeconfig: String?

    public func node(_ name: String) -> NodeRecord? { nodes.first { $0.name == name } }

    var revisionNumber: Int { revision ?? 1 }

    /// The policies, parsed.
    var networkPolicies: [NetworkPolicy] { (policies ?? []).compactMap(\.policy) }
    public func pod(_ namespace: String, _ name: String) -> PodRecord? {
        pods.first { $0.namespace == namespace && $0.name == name }
    }
}

public struct NodeRecord: Codable, Sendable {
    public var name: String
    public var index: Int
    public var netns: String
    public var nodeIP: String
    public var podCIDRs: [String]
    public var agent: ProcessRef?
    /// Kubernetes mode: the node's pod runner (`lab kubelet`).
    public var kubelet: ProcessRef?
}

public struct PolicyRecord: Codable, Sendable {
    public var namespace: String
    public var name: String
    /// `NetworkPolicy.manifest` as JSON.
    public var manifest: String

    init(_ p: NetworkPolicy) {
        namespace = p.namespace
        name = p.name
        manifest = p.manifest.json
    }

    var id: String { "\(namespace)/\(name)" }

    var policy: NetworkPolicy? {
        guard let v = try? JSONDecoder().decode(PolicyValue.self, from: Data(manifest.utf8)) else { return nil }
        return try? NetworkPolicy(parsing: v)
    }
}

public struct NamespaceRecord: Codable, Sendable {
    public var name: String
    public var labels: [String: String]
}

public struct PodRecord: Codable, Sendable {
    public enum Phase: String, Codable, Sendable {
        /// Recorded before its netns exists; `down` and `delete` finish or undo it.
        case creating
        case running
    }
    public var namespace: String
    public var name: String
    public var uid: String
    public var node: String
    public var netns: String
    public var containerID: String
    public var labels: [String: String]
    public var containers: [ContainerSpec]
    public var ips: [String]
    public var server: ProcessRef?
    public var phase: Phase

    public var id: String { "\(namespace)/\(name)" }
    public var ports: [PortSpec] { containers.flatMap(\.ports) }
}

extension LabState {
    static func load(_ layout: LabLayout) throws(LabError) -> LabState? {
        guard let data = Sys.readFile(layout.stateFile) else { return nil }
        do {
            return try JSONDecoder().decode(LabState.self, from: data)
        } catch {
            throw LabError("\(layout.stateFile): unreadable lab state (\(error)); `trellisctl lab down --state \(layout.stateDir)` removes the lab")
        }
    }

    func save(_ layout: LabLayout) throws(LabError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(self) } catch { throw LabError("encode lab state: \(error)") }
        try Sys.writeAtomically(data + Data("\n".utf8), to: layout.stateFile, mode: 0o600)
    }
}
