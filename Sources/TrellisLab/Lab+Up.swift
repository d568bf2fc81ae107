import Foundation
import TrellisCore
#if canImport(Glibc)
import Glibc
#endif

/// `lab up`: check everything that can be checked, record the lab, then build it: underlay,
/// nodes, manifests, agent configs, agents (or standalone conflists).
extension Lab {
    public struct UpOptions: Sendable {
        public var nodes: Int
        public var datapath: DatapathMode
        public var agents: Bool
        public var bpfDir: String?
        public var readyTimeout: Double
        public var keepOnFailure: Bool
        /// Kubernetes mode: the cluster state lives in this API server (see Lab+Kubernetes).
        public var kubeconfig: String?
        public init(nodes: Int, datapath: DatapathMode = .ebpf, agents: Bool = true, bpfDir: String? = nil,
                    readyTimeout: Double = 30, keepOnFailure: Bool = false, kubeconfig: String? = nil) {
            self.nodes = nodes
            self.datapath = datapath
            self.agents = agents
            self.bpfDir = bpfDir
            self.readyTimeout = readyTimeout
            self.keepOnFailure = keepOnFailure
            self.kubeconfig = kubeconfig
        }
    }

    public func up(_ o: UpOptions) throws {
        try Self.requireRoot()
        // Everything that can be checked before anything is made.
        guard (1...LabLayout.maxNodes).contains(o.nodes) else {
            throw LabError("--nodes \(o.nodes): the lab runs 1 to \(LabLayout.maxNodes) nodes")
        }
        let bins = binDir(nil)
        guard Sys.isExecutable(bins + "/trellis") else {
            throw LabError("\(bins)/trellis: not found or not executable (build it, or point --bin-dir at the folder holding trellis and trellis-agent)")
        }
        if o.agents, !Sys.isExecutable(bins + "/trellis-agent") {
            throw LabError("\(bins)/trellis-agent: not found or not executable (build it, point --bin-dir at it, or use --no-agent)")
        }
        var bpfDir: String?
        if let explicit = o.bpfDir {
            let path = Sys.canonicalPath(explicit)
            guard Sys.isDirectory(path) else { throw LabError("--bpf-dir \(explicit): no such directory") }
            bpfDir = path
        } else {
            bpfDir = Self.defaultBPFDir(executable: selfExecutable)
        }
        var kubeconfig: String?
        if let k = o.kubeconfig {
            let path = Sys.canonicalPath(k)
            guard Sys.exists(path) else { throw LabError("--kubeconfig \(k): no such file") }
            guard o.agents else { throw LabError("--kubeconfig needs the agents (their kubernetes source); drop --no-agent") }
            kubeconfig = path
        }
        let longestSocket = layout.socketPath(LabLayout.nodeName(o.nodes))
        guard longestSocket.utf8.count < 108 else {
            throw LabError("--state \(layout.stateDir): too long for the agents' unix sockets (\(longestSocket) has \(longestSocket.utf8.count) bytes, at most 107); use a shorter state directory")
        }

        if Sys.isDirectory(layout.stateDir) {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: layout.stateDir)) ?? []
            let foreign = entries.filter { !LabLayout.ownEntries.contains($0) && !$0.hasPrefix(".lab.json.") }
            if !foreign.isEmpty {
                throw LabError("--state \(layout.stateDir): holds files that are not a lab's (\(foreign.sorted().prefix(3).joined(separator: ", "))\(foreign.count > 3 ? ", ..." : "")); use a new or empty directory")
            }
        }
        var created: [String] = []
        let madeLockFile = !Sys.exists(layout.lockFile)
        try Sys.makeDirectories(layout.stateDir, created: &created)
        let lock = try lockState()
        defer { Sys.unlock(lock) }
        do {
            if let existing = try LabState.load(layout) {
                throw LabError("a lab (\(existing.nodes.count) nodes, \(existing.phase.rawValue)) is already in \(layout.stateDir); `trellisctl lab down\(layout.stateFlag)` removes it first")
            }
            let leftovers = layout.existingNetns()
            if !leftovers.isEmpty {
                throw LabError("network namespaces of an earlier lab in \(layout.stateDir) remain (\(leftovers.joined(separator: ", "))); `trellisctl lab down\(layout.stateFlag)` removes them")
            }
            if let mount = Mounts.mountPoints(under: layout.stateDir).first {
                throw LabError("\(mount) is still mounted from an earlier lab; `trellisctl lab down\(layout.stateFlag)` removes it")
            }
        } catch {
            // Nothing was built: only what this command made goes (the lock file, new folders).
            if madeLockFile { unlink(layout.lockFile) }
            for dir in created.reversed() { rmdir(dir) }
            throw error
        }

        var state = LabState(
            labID: layout.labID, stateDir: layout.stateDir, phase: .starting, datapath: o.datapath,
            agents: o.agents, binDir: bins, bpfObjectDir: bpfDir,
            createdParents: created.filter { $0 != layout.stateDir },
            underlayNetns: layout.underlayNetns,
            nodes: (1...o.nodes).map { i in
                let name = LabLayout.nodeName(i)
                return NodeRecord(name: name, index: i, netns: layout.nodeNetns(name), nodeIP: LabLayout.nodeIP(i),
                                  podCIDRs: LabLayout.podCIDRs(i), agent: nil)
            },
            namespaces: [NamespaceRecord(name: "default", labels: [:])],
            pods: [])
        state.kubeconfig = kubeconfig
        try state.save(layout)

        Interrupts.install()
        do {
            try build(&state, o)
        } catch {
            warn("lab up failed: \(error)")
            if o.keepOnFailure {
                warn("kept for inspection (--keep-on-failure); `trellisctl lab down\(layout.stateFlag)` removes it")
            } else {
                warn("removing what was made")
                do {
                    try teardown(state)
                } catch {
                    warn("\(error)")
                }
            }
            throw LabError("", exitCode: 1)   // reported above
        }
    }

    private func build(_ state: inout LabState, _ o: UpOptions) throws {
        say("lab \(layout.labID): state in \(layout.stateDir)")
        try makeUnderlayAndNodes(state)

        try Sys.makeDirectories(layout.manifestsDir)
        try ManifestWriter.writeAll(state, layout: layout)
        for node in state.nodes {
            try Sys.writeAtomically(try agentConfig(node, state), to: layout.agentConfig(node.name))
        }

        if let kubeconfig = state.kubeconfig {
            try registerNodes(state, kubeconfig: kubeconfig)
        }
        if o.agents {
            if state.kubeconfig != nil { try startKubelets(&state) }
            try startAgents(&state, timeout: o.readyTimeout)
        } else {
            for node in state.nodes {
                try writeStandaloneConflist(node, state)
            }
            say("no agents (--no-agent): standalone conflists written; pods reach each other on a node, nothing crosses nodes")
        }
        state.phase = .ready
        try state.save(layout)
        say("lab up: \(state.nodes.count) node\(state.nodes.count == 1 ? "" : "s"), datapath \(state.datapath); `trellisctl lab status\(layout.stateFlag)`")
    }

    /// `.build/bpf` of the repository holding this executable (or the working directory),
    /// when it exists.
    static func defaultBPFDir(executable: String) -> String? {
        for start in [(executable as NSString).deletingLastPathComponent, FileManager.default.currentDirectoryPath] {
            var dir = start
            while dir != "/" && !dir.isEmpty {
                if Sys.exists(dir + "/Package.swift"), Sys.isDirectory(dir + "/.build/bpf") { return dir + "/.build/bpf" }
                dir = (dir as NSString).deletingLastPathComponent
            }
        }
        return nil
    }
}
