import TrellisAgent
import TrellisCore
import TrellisNet
import Yams

/// The files the lab writes for a node: the agent's config, and the conflist of a node that
/// runs without agent.
extension Lab {
    /// The agent's configuration: the keys of docs/agent.md.
    func agentConfig(_ node: NodeRecord, _ state: LabState) throws(LabError) -> String {
        typealias W = ManifestWriter
        var pairs: [(String, Node)] = [("nodeName", W.s(node.name))]
        if let kubeconfig = state.kubeconfig {
            pairs += [("source", W.s("kubernetes")), ("kubeconfig", W.s(kubeconfig))]
        } else {
            pairs += [("source", W.s("manifests")), ("manifestsDir", W.s(layout.manifestsDir))]
        }
        if let bpf = state.bpfObjectDir { pairs.append(("bpfObjectDir", W.s(bpf))) }
        pairs += [
            ("bpffsDir", W.s(layout.bpffsDir(node.name))),
            ("socketPath", W.s(layout.socketPath(node.name))),
            ("cniConfDir", W.s(layout.cniConfDir(node.name))),
            ("cniConfName", W.s(LabLayout.conflistName)),
            ("ipamDataDir", W.s(layout.ipamDir(node.name))),
            ("underlayDevice", W.s("eth0")),
            ("datapathMode", W.s(state.datapath.rawValue)),
            ("healthAddress", W.s("127.0.0.1:9876")),
        ]
        do {
            let body = try Yams.serialize(node: W.map(pairs), width: -1)
            return "# trellis-agent config for \(node.name) of the lab in \(state.stateDir) (written by trellisctl lab up)\n" + body
        } catch {
            throw LabError("write \(layout.agentConfig(node.name)): \(error)")
        }
    }

    /// Pod MTU of the standalone conflist: what the agent derives from the lab's underlay.
    static let standaloneMTU = underlayMTU - AgentConfig.geneveOverhead

    /// Writes the conflist of a node without agent: the agent's conflist (one definition, in
    /// ConflistWriter) without `agentSocket`, so the plugin works alone.
    func writeStandaloneConflist(_ node: NodeRecord, _ state: LabState) throws {
        var cidrs: [IPNetwork] = []
        for text in node.podCIDRs {
            guard let cidr = IPNetwork(text) else { throw LabError("\(node.name): pod CIDR \(text) is not a CIDR") }
            cidrs.append(cidr)
        }
        let conflist = ConflistWriter.render(mode: state.datapath, mtu: Self.standaloneMTU, agentSocket: nil, podCIDRs: cidrs,
                                             ipamDataDir: layout.ipamDir(node.name))
        try ConflistWriter(directory: layout.cniConfDir(node.name), fileName: LabLayout.conflistName).write(conflist)
    }
}
