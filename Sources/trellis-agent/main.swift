import ArgumentParser
import CLibbpf

/// The node agent. This first version only reports what it was built with; loading the eBPF
/// datapath, the Geneve overlay and the CNI handshake arrive with the datapath work (issue 3).
/// Until then the plugin runs standalone (no `agentSocket` in its config).
@main
struct TrellisAgent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellis-agent",
        abstract: "The Trellis node agent (datapath, overlay, policy). Not functional yet: the plugin runs standalone.",
        version: "0.1.0 (libbpf \(libbpf_major_version()).\(libbpf_minor_version()))")

    func run() throws {
        print("trellis-agent 0.1.0: the datapath agent is not implemented yet; use the plugin's standalone mode (deploy/cni/trellis-standalone.conflist).")
        throw ExitCode(2)
    }
}
