#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import TrellisAgent
import TrellisDatapath

/// The one place that decides which datapath the agent programs.
///
/// The eBPF datapath: the objects `Datapath.objectFiles` (one per bpf/*.bpf.c) from
/// the first folder of `config.bpfObjectSearchPath` that has them all, maps pinned under
/// `config.bpffsDir` (which must be on a bpffs), programmed through `BPFDatapathProgrammer`.
/// A datapath that cannot be loaded fails the agent's start (exit 1), so a DaemonSet restarts
/// it rather than a node that cannot forward becoming ready.
///
/// `TRELLIS_AGENT_DATAPATH=in-memory` selects the logging, in-memory programmer instead: the
/// whole control plane (handshake, overlay and ipcache reconciliation, conflist, health) runs
/// without forwarding anything, without root or BPF objects. For development and tests only.
func makeDatapathProgrammer(config: AgentConfig, logger: Logger) async throws -> any DatapathProgrammer {
    if ProcessInfo.processInfo.environment["TRELLIS_AGENT_DATAPATH"] == "in-memory" {
        logger.warning("TRELLIS_AGENT_DATAPATH=in-memory: programming an in-memory datapath (no forwarding)")
        return InMemoryDatapath(logger: logger)
    }
    let searched = config.bpfObjectSearchPath
    guard let directory = searched.first(where: { dir in
        Datapath.objectFiles.allSatisfy { access(dir + "/" + $0, R_OK) == 0 }
    }) else {
        throw AgentConfigError(key: "bpfObjectDir", message: "no folder holds all of "
            + Datapath.objectFiles.joined(separator: ", ") + " (searched: " + searched.joined(separator: ", ")
            + "); build them with hack/build-bpf.sh")
    }
    let datapath = try Datapath.load(objectDirectory: directory, pinDirectory: config.bpffsDir)
    logger.info("eBPF datapath loaded", metadata: ["bpf.objectDir": "\(directory)", "bpf.pinDir": "\(config.bpffsDir)"])
    return BPFDatapathProgrammer(datapath: datapath, logger: logger)
}
