import TrellisJSON
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
            ("datapathMode", W.s(state.datapath)),
            ("healthAddress", W.s("127.0.0.1:9876")),
        ]
        do {
            let body = try Yams.serialize(node: W.map(pairs), width: -1)
            return "# trellis-agent config for \(node.name) of the lab in \(state.stateDir) (written by trellisctl lab up)\n" + body
        } catch {
            throw LabError("write \(layout.agentConfig(node.name)): \(error)")
        }
    }

    /// The conflist of a node without agent: the plugin alone, no `agentSocket`.
    func standaloneConflist(_ node: NodeRecord, _ state: LabState) -> String {
        let ranges = node.podCIDRs.map { "{\"subnet\": \(Self.json($0))}" }.joined(separator: ", ")
        return """
        {
          "cniVersion": "1.1.0",
          "name": "trellis",
          "plugins": [
            {
              "type": "trellis",
              "mode": \(Self.json(state.datapath)),
              "mtu": \(Self.standaloneMTU),
              "ipam": {
                "ranges": [\(ranges)],
                "dataDir": \(Self.json(layout.ipamDir(node.name)))
              }
            }
          ]
        }

        """
    }

    /// `s` as a JSON string literal (quoted and escaped).
    static func json(_ s: String) -> String { JSONValue.string(s).serialized }
}
