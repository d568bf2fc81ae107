import Foundation
import TrellisNetlink

/// Where everything of one lab lives: the state directory and the names of its network
/// namespaces, all derived from the canonical path of the state directory.
///
///     DIR/lab.json                     the state (atomic JSON), DIR/.lock serialises commands
///     DIR/manifests/                   nodes.yaml, namespaces.yaml, pods.yaml, policies.json (the agents' source)
///     DIR/nodes/NAME/agent.yaml        the agent's config
///     DIR/nodes/NAME/bpf/              bpffs mount (bpffsDir)
///     DIR/nodes/NAME/net.d/            cniConfDir: 10-trellis.conflist appears here when ready
///     DIR/nodes/NAME/ipam/             ipamDataDir
///     DIR/nodes/NAME/agent.sock        socketPath
///     DIR/nodes/NAME/manifests         -> ../../manifests
///     DIR/nodes/NAME/logs/agent.log    the agent's stdout and stderr
///     DIR/pods/NS_POD/                 CNI input/output, server.log
///
/// Namespaces are `trlab-<8 hex of the path's hash>-<role>`: two labs with different state
/// directories never share a name, and every name of a lab starts with its id, so that `down`
/// also finds what a crashed command did not get to record.
public struct LabLayout: Sendable {
    public let stateDir: String
    public let labID: String

    public static let defaultStateDir = "/var/run/trellis-lab/default"
    public static let conflistName = "10-trellis.conflist"
    /// Netns names are file names under /var/run/netns; kept short enough to read in `ip netns`.
    static let maxNetnsName = 64

    public init(stateDir raw: String) {
        stateDir = Sys.canonicalPath(raw)
        labID = "trlab-" + Sys.hex32(Sys.fnv1a(stateDir))
    }

    /// What the lab puts directly in its state directory; `down` removes these and nothing else.
    static let ownEntries: Set<String> = ["lab.json", ".lock", "manifests", "nodes", "pods", "service-proxy.nft", "service-proxy.nft.next"]

    /// ` --state DIR` for hints, empty for the default directory.
    var stateFlag: String {
        stateDir == Sys.canonicalPath(Self.defaultStateDir) ? "" : " --state \(stateDir)"
    }

    var stateFile: String { stateDir + "/lab.json" }
    var lockFile: String { stateDir + "/.lock" }
    var manifestsDir: String { stateDir + "/manifests" }
    var nodesManifest: String { manifestsDir + "/nodes.yaml" }
    var namespacesManifest: String { manifestsDir + "/namespaces.yaml" }
    var podsManifest: String { manifestsDir + "/pods.yaml" }
    var policiesManifest: String { manifestsDir + "/policies.json" }
    var servicesManifest: String { manifestsDir + "/services.yaml" }
    /// The kube-proxy stand-in's nft script, applied in every node.
    var serviceProxyScript: String { stateDir + "/service-proxy.nft" }

    func nodeDir(_ node: String) -> String { stateDir + "/nodes/" + node }
    func bpffsDir(_ node: String) -> String { nodeDir(node) + "/bpf" }
    func cniConfDir(_ node: String) -> String { nodeDir(node) + "/net.d" }
    func conflist(_ node: String) -> String { cniConfDir(node) + "/" + Self.conflistName }
    func ipamDir(_ node: String) -> String { nodeDir(node) + "/ipam" }
    func socketPath(_ node: String) -> String { nodeDir(node) + "/agent.sock" }
    func agentConfig(_ node: String) -> String { nodeDir(node) + "/agent.yaml" }
    func logsDir(_ node: String) -> String { nodeDir(node) + "/logs" }
    func agentLog(_ node: String) -> String { logsDir(node) + "/agent.log" }
    func kubeletLog(_ node: String) -> String { logsDir(node) + "/kubelet.log" }
    func podDir(_ namespace: String, _ pod: String) -> String { stateDir + "/pods/\(namespace)_\(pod)" }

    var underlayNetns: String { labID + "-underlay" }
    func nodeNetns(_ node: String) -> String { labID + "-" + node }

    /// `<labid>-<ns>-<pod>`, or, when that is too long or taken (by a node, the underlay or
    /// another pod whose names join the same way), a prefix of it and a hash of `ns/pod`.
    func podNetns(namespace: String, pod: String, taken: Set<String>) -> String {
        let plain = "\(labID)-\(namespace)-\(pod)"
        if plain.utf8.count <= Self.maxNetnsName, !taken.contains(plain) { return plain }
        let hash = Sys.hex32(Sys.fnv1a(namespace + "/" + pod))
        let keep = Self.maxNetnsName - hash.count - 1
        var name = String(plain.prefix(keep)) + "-" + hash
        var salt = 0
        while taken.contains(name) {
            salt += 1
            name = String(plain.prefix(keep)) + "-" + Sys.hex32(Sys.fnv1a("\(namespace)/\(pod)#\(salt)"))
        }
        return name
    }

    func isLabNetns(_ name: String) -> Bool { name.hasPrefix(labID + "-") }

    static func netnsPath(_ name: String) -> String { NetworkNamespace.defaultDirectory + "/" + name }

    /// Names under /var/run/netns that belong to this lab.
    func existingNetns() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: NetworkNamespace.defaultDirectory)) ?? []
        return names.filter(isLabNetns).sorted()
    }

    // MARK: addresses of node i (1-based)

    static func nodeName(_ i: Int) -> String { "node-\(i)" }
    static func nodeIP(_ i: Int) -> String { "192.168.200.\(10 + i)" }
    static let underlayPrefix = 24
    static func podCIDRs(_ i: Int) -> [String] { ["10.244.\(i).0/24", "fd00:10:244:\(i)::/64"] }
    static let maxNodes = 200
}
