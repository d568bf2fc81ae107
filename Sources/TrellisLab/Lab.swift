import Foundation
import TrellisJSON
import TrellisNet
import TrellisNetlink
import Yams
#if canImport(Glibc)
import Glibc
#endif

/// The local multi-node lab: nodes and pods are network namespaces on this machine, wired by
/// the real `trellis` plugin and (unless `--no-agent`) served by real `trellis-agent`s. Nothing
/// is created in the root network namespace; everything is recorded in the state directory
/// before or right after it is made, and `down` undoes all of it.
///
/// Sendable because nothing in it changes after init (its closures only print); the Kubernetes
/// mode's pod runner shares it with its tasks.
public final class Lab: @unchecked Sendable {
    public let layout: LabLayout
    let explicitBinDir: String?
    /// Lines for the operator (stdout) and for warnings (stderr).
    let say: (String) -> Void
    let warn: (String) -> Void

    public init(stateDir: String, binDir: String? = nil,
                say: @escaping (String) -> Void = { print($0); fflush(nil) },
                warn: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        layout = LabLayout(stateDir: stateDir)
        explicitBinDir = binDir.map(Sys.canonicalPath)
        self.say = say
        self.warn = warn
    }

    /// This executable: it runs `lab exec` and `lab serve`.
    let selfExecutable = Sys.selfExecutable()

    static let searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    static let underlayBridge = "br0"
    static let underlayMTU = 1500
    /// Pod MTU of the standalone conflist: what the agent derives from a 1500 underlay.
    static let standaloneMTU = 1450

    static func requireRoot() throws(LabError) {
        guard geteuid() == 0 else {
            throw LabError("trellisctl lab needs root: it creates network namespaces and bpffs mounts, and enters namespaces")
        }
    }

    func binDir(_ state: LabState?) -> String {
        explicitBinDir ?? state?.binDir ?? (selfExecutable as NSString).deletingLastPathComponent
    }

    // MARK: - up

    public struct UpOptions: Sendable {
        public var nodes: Int
        public var datapath: String
        public var agents: Bool
        public var bpfDir: String?
        public var readyTimeout: Double
        public var keepOnFailure: Bool
        /// Kubernetes mode: the cluster state lives in this API server (see Lab+Kubernetes).
        public var kubeconfig: String?
        public init(nodes: Int, datapath: String = "ebpf", agents: Bool = true, bpfDir: String? = nil,
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
        guard ["ebpf", "bridge"].contains(o.datapath) else {
            throw LabError("--datapath \(o.datapath): ebpf or bridge")
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
        let lock = try Sys.lock(layout.lockFile) { say("waiting for another lab command on \(layout.stateDir)...") }
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
        // The underlay: a bridge in a namespace of its own, one port per node.
        let underlay = try NetworkNamespace.create(named: state.underlayNetns)
        let unl = try Netlink(namespace: underlay)
        let bridge = try unl.ensureLink(name: Self.underlayBridge, kind: "bridge", mtu: Self.underlayMTU)
        try unl.setLink(index: bridge.index, up: true)
        say("underlay: netns \(state.underlayNetns), bridge \(Self.underlayBridge), 192.168.200.0/\(LabLayout.underlayPrefix)")

        for node in state.nodes {
            try Interrupts.check()
            let ns = try NetworkNamespace.create(named: node.netns)   // lo up
            let mac = MACAddress(bytes: [0x02, 0x00, 0xc0, 0xa8, 0xc8, UInt8(10 + node.index)])
            try unl.addVethPair(name: node.name, peerName: "eth0", peerNamespace: ns, mtu: Self.underlayMTU, peerMAC: mac)
            guard let port = try unl.link(named: node.name) else {
                throw LabError("underlay port \(node.name) vanished after its creation")
            }
            try unl.setLink(index: port.index, up: true, masterIndex: bridge.index)
            let nnl = try Netlink(namespace: ns)
            guard let eth0 = try nnl.link(named: "eth0") else { throw LabError("\(node.name): eth0 missing after its creation") }
            let address = IPNetwork("\(node.nodeIP)/\(LabLayout.underlayPrefix)")!
            try nnl.addAddress(address, index: eth0.index)
            try nnl.setLink(index: eth0.index, up: true)
            // What a real node's default route does for Service addresses: the node's own
            // connections to a cluster IP need a route before kube-proxy's DNAT reroutes them.
            try nnl.addRoute(RouteInfo(destination: LabServices.cidr, outputIndex: eth0.index))

            for dir in [layout.bpffsDir(node.name), layout.cniConfDir(node.name), layout.ipamDir(node.name), layout.logsDir(node.name)] {
                try Sys.makeDirectories(dir)
            }
            let link = layout.nodeDir(node.name) + "/manifests"
            if symlink("../../manifests", link) != 0, errno != EEXIST { throw Sys.fail("create \(link)") }
            try Mounts.mountBPF(at: layout.bpffsDir(node.name))
            say("\(node.name): netns \(node.netns), eth0 \(address), pods \(node.podCIDRs.joined(separator: " ")), bpffs \(layout.bpffsDir(node.name))")
        }

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
                try Sys.writeAtomically(standaloneConflist(node, state), to: layout.conflist(node.name))
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

    /// `trellis-agent --config DIR/nodes/NAME/agent.yaml` inside the node's namespace, in a
    /// session of its own, stdout and stderr appended to its log; the environment is ours.
    private func spawnAgent(_ node: NodeRecord, _ state: LabState) throws(LabError) -> ProcessRef {
        try Processes.spawn(
            selfExecutable,
            ["lab", "exec", "--netns", LabLayout.netnsPath(node.netns), "--", state.binDir + "/trellis-agent",
             "--config", layout.agentConfig(node.name)],
            environment: ProcessInfo.processInfo.environment, stdout: layout.agentLog(node.name), newSession: true)
    }

    private func startAgents(_ state: inout LabState, timeout: Double) throws {
        let started = Sys.now()
        for i in state.nodes.indices {
            try Interrupts.check()
            let node = state.nodes[i]
            let ref = try spawnAgent(node, state)
            state.nodes[i].agent = ref
            try state.save(layout)   // the PID is on disk before anything else can fail
            say("\(node.name): trellis-agent pid \(ref.pid) (log \(layout.agentLog(node.name)))")
        }
        var pending = Set(state.nodes.map(\.name))
        let deadline = started + timeout
        while !pending.isEmpty {
            try Interrupts.check()
            for node in state.nodes where pending.contains(node.name) {
                if conflistReady(node.name) {
                    pending.remove(node.name)
                    say("\(node.name): ready (conflist written after \(String(format: "%.1f", Sys.now() - started)) s)")
                } else if let ref = node.agent, !Processes.isAlive(ref) {
                    Processes.reap(ref.pid)
                    throw LabError("\(node.name): trellis-agent (pid \(ref.pid)) exited before writing \(layout.conflist(node.name))" + logTail(node.name))
                }
            }
            if pending.isEmpty { break }
            if Sys.now() > deadline {
                let name = pending.sorted().first!
                let pid = state.node(name)?.agent.map { " (pid \($0.pid))" } ?? ""
                throw LabError("\(name): trellis-agent\(pid) did not write \(layout.conflist(name)) within \(Prober.secondsText(timeout)) s" + logTail(name))
            }
            Sys.sleep(milliseconds: 50)
        }
    }

    private func logTail(_ node: String) -> String {
        let lines = Sys.tail(layout.agentLog(node), lines: 20)
        if lines.isEmpty { return "; its log \(layout.agentLog(node)) is empty" }
        return "; last lines of \(layout.agentLog(node)):\n" + lines.map { "    " + $0 }.joined(separator: "\n")
    }

    /// The node's conflist exists and holds a trellis plugin (the agent writes it once ready).
    func conflistReady(_ node: String) -> Bool {
        (try? trellisPluginConfig(node)) != nil
    }

    /// The trellis entry of the node's conflist, with `name` and `cniVersion` given to it as a
    /// runtime hands a plugin its config.
    func trellisPluginConfig(_ node: String) throws(LabError) -> Data {
        let path = layout.conflist(node)
        guard let data = Sys.readFile(path) else { throw LabError("\(node): no conflist at \(path) (agent not ready?)") }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let plugins = root["plugins"] as? [[String: Any]],
              var entry = plugins.first(where: { $0["type"] as? String == "trellis" }) else {
            throw LabError("\(path): not a conflist with a trellis plugin")
        }
        entry["name"] = entry["name"] ?? root["name"]
        entry["cniVersion"] = entry["cniVersion"] ?? root["cniVersion"]
        do {
            return try JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys])
        } catch {
            throw LabError("\(path): \(error)")
        }
    }

    // MARK: - state access

    func lockAndLoad() throws -> (fd: Int32, state: LabState) {
        guard Sys.isDirectory(layout.stateDir) else { throw noLab() }
        let fd = try Sys.lock(layout.lockFile) { say("waiting for another lab command on \(layout.stateDir)...") }
        do {
            guard let state = try LabState.load(layout) else { throw noLab() }
            guard state.phase == .ready else {
                throw LabError("the lab in \(layout.stateDir) is not up (its `up` failed or is under way); `trellisctl lab down\(layout.stateFlag)` removes it")
            }
            return (fd, state)
        } catch {
            Sys.unlock(fd)
            throw error
        }
    }

    func loadForReading() throws -> LabState {
        guard let state = try LabState.load(layout) else { throw noLab() }
        return state
    }

    func noLab() -> LabError {
        LabError("no lab in \(layout.stateDir) (`trellisctl lab up\(layout.stateFlag)` makes one)")
    }

    func readManifests(_ file: String) throws -> ManifestSet {
        let text: String
        if file == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let t = Sys.readText(file) else { throw LabError("\(file): cannot read") }
            text = t
        }
        do {
            return try ManifestReader.parse(text, source: file == "-" ? "stdin" : file)
        } catch {
            throw LabError(error.messages.joined(separator: "\n"))
        }
    }

    // MARK: - CNI (apply, delete and down run the plugin through these)

    /// The addresses (without prefix) of a CNI result, in its order (the plugin puts IPv4 first).
    static func addresses(fromResult data: Data) -> [String] {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let ips = root["ips"] as? [[String: Any]] else { return [] }
        return ips.compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
    }

    /// Runs the real plugin inside the node's namespace (through `lab exec`), as a runtime would:
    /// CNI_* variables, the plugin entry of the node's conflist on stdin. The config used by ADD
    /// is kept beside the pod, so DEL gets the same one (as containerd caches it).
    func runCNI(_ command: String, pod: PodRecord, node: NodeRecord, state: LabState) throws(LabError) -> Data {
        let dir = layout.podDir(pod.namespace, pod.name)
        let configPath = dir + "/cni-config.json"
        if command == "ADD" || !Sys.exists(configPath) {
            try Sys.writeAtomically(try trellisPluginConfig(node.name), to: configPath)
        }
        let lower = command.lowercased()
        let out = dir + "/cni-\(lower).out", err = dir + "/cni-\(lower).err"
        for f in [out, err] { unlink(f) }
        var env = [
            "PATH": Self.searchPath,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.containerID,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": binDir(state),
            "CNI_ARGS": "K8S_POD_NAMESPACE=\(pod.namespace);K8S_POD_NAME=\(pod.name)",
        ]
        let netnsPath = LabLayout.netnsPath(pod.netns)
        if command != "DEL" || Sys.exists(netnsPath) { env["CNI_NETNS"] = netnsPath }
        let plugin = binDir(state) + "/trellis"
        let ref = try Processes.spawn(
            selfExecutable, ["lab", "exec", "--netns", LabLayout.netnsPath(node.netns), "--", plugin],
            environment: env, stdin: configPath, stdout: out, stderr: err)
        let code = Processes.wait(ref.pid, timeout: 60)
        let stdout = Sys.readFile(out) ?? Data()
        guard code == 0 else {
            var message = "CNI \(command) failed (exit \(code))"
            if let e = (try? JSONSerialization.jsonObject(with: stdout)) as? [String: Any], let msg = e["msg"] as? String {
                message += ": code \(e["code"] as? Int ?? 0): \(msg)"
                if let details = e["details"] as? String, !details.isEmpty { message += " (\(details))" }
            } else if !stdout.isEmpty {
                message += ": " + String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let stderr = Sys.tail(err, lines: 5).joined(separator: " | ")
            if !stderr.isEmpty { message += "; stderr: \(stderr)" }
            throw LabError(message)
        }
        return stdout
    }

    func startServer(_ pod: PodRecord) throws(LabError) -> ProcessRef {
        let log = layout.podDir(pod.namespace, pod.name) + "/server.log"
        var args = ["lab", "exec", "--netns", LabLayout.netnsPath(pod.netns), "--", selfExecutable, "lab", "serve", "--id", pod.id]
        for p in pod.ports { args += [p.proto == .tcp ? "--tcp" : "--udp", String(p.port)] }
        let ref = try Processes.spawn(selfExecutable, args, environment: ["PATH": Self.searchPath], stdout: log, newSession: true)
        let deadline = Sys.now() + 10
        while true {
            if Sys.readText(log)?.contains("serving ") == true { return ref }
            if !Processes.isAlive(ref) || Sys.now() > deadline {
                Processes.stop([ref])
                Processes.reap(ref.pid)
                let tail = Sys.tail(log, lines: 5).joined(separator: " | ")
                throw LabError("the pod's server did not start\(tail.isEmpty ? "" : ": " + tail)")
            }
            Sys.sleep(milliseconds: 5)
        }
    }

    /// Stops the pod's server, CNI DEL, removes its namespace, folder and record. Problems are
    /// reported and do not stop the removal.
    @discardableResult
    func removePod(_ pod: PodRecord, _ state: inout LabState, quiet: Bool = false) -> [String] {
        var problems: [String] = []
        if let server = pod.server {
            Processes.stop([server])
        }
        if let node = state.node(pod.node), Sys.exists(LabLayout.netnsPath(node.netns)),
           Sys.exists(layout.podDir(pod.namespace, pod.name) + "/cni-config.json") || conflistReady(node.name) {
            do {
                _ = try runCNI("DEL", pod: pod, node: node, state: state)
            } catch {
                problems.append("pod \(pod.id): \(error)")
            }
        }
        do {
            try NetworkNamespace.delete(named: pod.netns)
        } catch {
            problems.append("pod \(pod.id): \(error)")
        }
        do {
            try Sys.removeTree(layout.podDir(pod.namespace, pod.name))
        } catch {
            problems.append("pod \(pod.id): \(error)")
        }
        state.pods.removeAll { $0.id == pod.id }
        if !quiet { problems.forEach(warn) }
        return problems
    }

    // MARK: - down

    public func down() throws {
        try Self.requireRoot()
        // From here on a Ctrl-C is noted and ignored: a half-finished cleanup helps nobody.
        Interrupts.install()
        var lock: Int32 = -1
        var state: LabState?
        var madeLockFile = false
        if Sys.isDirectory(layout.stateDir) {
            madeLockFile = !Sys.exists(layout.lockFile)
            lock = try Sys.lock(layout.lockFile) { say("waiting for another lab command on \(layout.stateDir)...") }
            do {
                state = try LabState.load(layout)
            } catch {
                warn("\(error); removing what can be found by name")
            }
        }
        defer { if lock >= 0 { Sys.unlock(lock) } }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: layout.stateDir)) ?? []
        let labFiles = entries.contains { LabLayout.ownEntries.contains($0) && $0 != ".lock" }
        if state == nil, !labFiles, layout.existingNetns().isEmpty, Mounts.mountPoints(under: layout.stateDir).isEmpty {
            if madeLockFile { unlink(layout.lockFile) }
            say("no lab in \(layout.stateDir): nothing to do")
            return
        }
        try teardown(state)
        say("lab down: \(layout.stateDir) and the namespaces of \(layout.labID) removed")
    }

    /// Undoes everything of a lab: what its state records and, by name, what it may not have
    /// recorded (namespaces starting with the lab id, mounts below the state directory).
    func teardown(_ recorded: LabState?) throws {
        var state = recorded
        var problems: [String] = []
        // Pod runners first (they would wire pods again), servers next (fast: they die on
        // SIGTERM), then CNI DEL while the agents still run.
        Processes.stop(recorded?.nodes.compactMap(\.kubelet) ?? [])
        Processes.stop(state?.pods.compactMap(\.server) ?? [])
        for pod in state?.pods ?? [] {
            var s = state!
            var copy = pod
            copy.server = nil
            problems += removePod(copy, &s, quiet: true)
            state = s
        }
        let agents = recorded?.nodes.compactMap(\.agent) ?? []
        for ref in Processes.stop(agents, grace: 5) {
            warn("trellis-agent pid \(ref.pid) did not stop within 5 s of SIGTERM: killed")
        }
        if let recorded { for p in deregisterNodes(recorded) { warn(p) } }
        // Namespaces: recorded ones and any other of this lab; pods, then nodes, then the underlay.
        var names: [String] = []
        for n in (recorded?.pods.map(\.netns) ?? []) + (recorded?.nodes.map(\.netns) ?? []) + [layout.underlayNetns] + layout.existingNetns()
            where !names.contains(n) {
            names.append(n)
        }
        for name in names where Sys.exists(LabLayout.netnsPath(name)) {
            let holders = Processes.inNamespace(LabLayout.netnsPath(name)).filter { $0 != getpid() }
            if !holders.isEmpty {
                warn("netns \(name): processes \(holders.map(String.init).joined(separator: ", ")) still run in it; not started by the lab (or not recorded), left alone: the namespace lives on until they exit")
            }
            do {
                try NetworkNamespace.delete(named: name)
            } catch {
                problems.append("\(error)")
            }
        }
        do {
            try Mounts.unmountAll(under: layout.stateDir)
            // Only what the lab makes: a --state pointing at a folder of other files keeps them.
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: layout.stateDir)) ?? []
            for entry in entries where LabLayout.ownEntries.contains(entry) || entry.hasPrefix(".lab.json.") {
                try Sys.removeTree(layout.stateDir + "/" + entry)
            }
            if Sys.exists(layout.stateDir), rmdir(layout.stateDir) != 0 {
                let left = ((try? FileManager.default.contentsOfDirectory(atPath: layout.stateDir)) ?? []).sorted()
                warn("\(layout.stateDir) kept: it holds files the lab did not make (\(left.prefix(3).joined(separator: ", ")))")
            }
            for dir in (recorded?.createdParents ?? []).reversed() { rmdir(dir) }   // only when empty
        } catch {
            problems.append("\(error)")
        }
        if !problems.isEmpty { throw LabError(problems.joined(separator: "\n")) }
    }

    // MARK: - restart-agents

    /// Stops each node's agent (SIGTERM, SIGKILL after 5 s) and starts it again, one node at a
    /// time, each ready again before the next goes. Ready after a restart: its /readyz answers
    /// 200, or it rewrote its conflist (the first time, `up` waits for the conflist only).
    public func restartAgents(nodes only: [String], timeout: Double) throws {
        try Self.requireRoot()
        let (lock, loaded) = try lockAndLoad()
        defer { Sys.unlock(lock) }
        var state = loaded
        guard state.agents else { throw LabError("the lab in \(layout.stateDir) runs without agents (--no-agent)") }
        for name in only where state.node(name) == nil { throw LabError("\(name): not a lab node") }
        Interrupts.install()
        for i in state.nodes.indices where only.isEmpty || only.contains(state.nodes[i].name) {
            try Interrupts.check()
            let node = state.nodes[i]
            if let old = node.agent {
                if !Processes.stop([old], grace: 5).isEmpty {
                    warn("\(node.name): trellis-agent pid \(old.pid) did not stop within 5 s of SIGTERM: killed")
                }
            }
            let before = Self.modificationTime(layout.conflist(node.name))
            let started = Sys.now()
            let ref = try spawnAgent(node, state)
            state.nodes[i].agent = ref
            try state.save(layout)
            say("\(node.name): trellis-agent restarted, pid \(ref.pid)\(node.agent.map { " (was \($0.pid))" } ?? "")")
            while true {
                try Interrupts.check()
                let rewritten = Self.modificationTime(layout.conflist(node.name)).map { $0 != before } ?? false
                if (rewritten && conflistReady(node.name)) || Self.httpStatus(netns: node.netns, port: 9876, path: "/readyz") == 200 {
                    say("\(node.name): ready (\(String(format: "%.1f", Sys.now() - started)) s)")
                    break
                }
                if !Processes.isAlive(ref) {
                    Processes.reap(ref.pid)
                    throw LabError("\(node.name): trellis-agent (pid \(ref.pid)) exited after its restart" + logTail(node.name))
                }
                if Sys.now() - started > timeout {
                    throw LabError("\(node.name): trellis-agent (pid \(ref.pid)) not ready within \(Prober.secondsText(timeout)) s of its restart" + logTail(node.name))
                }
                Sys.sleep(milliseconds: 50)
            }
        }
    }

    static func modificationTime(_ path: String) -> Double? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
    }

    /// The status code of `GET path` on 127.0.0.1:port inside a namespace (nil: no answer).
    static func httpStatus(netns: String, port: UInt16, path: String, timeout: Double = 1) -> Int? {
        guard let ns = try? NetworkNamespace(path: LabLayout.netnsPath(netns)),
              let fd = try? ns.run({ socket(AF_INET, Sockets.streamType, 0) }), fd >= 0 else { return nil }
        defer { close(fd) }
        Sockets.setCloseOnExec(fd)
        Sockets.setNonBlocking(fd)
        let deadline = Sys.now() + timeout
        let address = SocketAddress(ip: .v4(0x7f00_0001), port: port)
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0, errno != EINPROGRESS { return nil }
        func wait(_ events: Int32) -> Bool {
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let ms = Int32(max(1, (deadline - Sys.now()) * 1000))
            return poll(&p, 1, ms) == 1
        }
        guard wait(Int32(POLLOUT)), Sockets.socketError(fd) == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !reply.contains(UInt8(ascii: "\n")), Sys.now() < deadline, wait(Int32(POLLIN)) {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        // "HTTP/1.1 200 OK"
        let line = String(decoding: reply.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = line.split(separator: " ")
        return parts.count >= 2 && parts[0].hasPrefix("HTTP/") ? Int(parts[1]) : nil
    }

    // MARK: - status

    public struct NodeStatus: Sendable {
        public var name: String
        public var nodeIP: String
        public var podCIDRs: [String]
        public var netns: String
        public var agentPID: Int32?
        public var agentAlive: Bool
        public var ready: Bool
    }

    public struct PodStatus: Sendable {
        public var namespace: String
        public var name: String
        public var node: String
        public var ips: [String]
        public var netns: String
        public var serverPID: Int32?
        public var serverAlive: Bool
    }

    public struct ServiceStatus: Sendable {
        public var namespace: String
        public var name: String
        public var clusterIP: String
        /// `5432/TCP`
        public var ports: [String]
        /// `ns/pod ip:port`, over every port.
        public var backends: [String]
        /// `shop/db 10.96.0.10 5432/TCP -> shop/db 10.244.2.2:5432`
        public var line: String {
            "\(namespace)/\(name) \(clusterIP) \(ports.joined(separator: ",")) -> "
                + (backends.isEmpty ? "(no backends)" : backends.joined(separator: ", "))
        }
    }

    public struct Status: Sendable {
        public var labID: String
        public var stateDir: String
        public var phase: String
        public var datapath: String
        public var agents: Bool
        public var underlayNetns: String
        public var nodes: [NodeStatus]
        public var pods: [PodStatus]
        /// NetworkPolicies, `namespace/name`.
        public var policies: [String]
        /// Services with their cluster IP, ports and current backends.
        public var services: [ServiceStatus] = []
        public var revision: Int

        public var json: [String: Any] {
            [
                "labID": labID, "stateDir": stateDir, "phase": phase, "datapath": datapath, "agents": agents,
                "policies": policies, "revision": revision,
                "services": services.map { s -> [String: Any] in
                    ["namespace": s.namespace, "name": s.name, "clusterIP": s.clusterIP, "ports": s.ports, "backends": s.backends]
                },
                "underlay": ["netns": underlayNetns, "device": Lab.underlayBridge, "bridge": Lab.underlayBridge,
                             "subnet": "192.168.200.0/\(LabLayout.underlayPrefix)"],
                "nodes": nodes.map { n -> [String: Any] in
                    ["name": n.name, "nodeIP": n.nodeIP, "podCIDRs": n.podCIDRs, "netns": n.netns,
                     "agentPID": n.agentPID.map { Int($0) as Any } ?? NSNull(), "agentAlive": n.agentAlive, "ready": n.ready]
                },
                "pods": pods.map { p -> [String: Any] in
                    ["namespace": p.namespace, "name": p.name, "node": p.node, "ips": p.ips, "netns": p.netns,
                     "serverPID": p.serverPID.map { Int($0) as Any } ?? NSNull(), "serverAlive": p.serverAlive]
                },
            ]
        }
    }

    public func status() throws -> Status {
        let state = try loadForReading()
        let nodes = state.nodes.map { n in
            let alive = n.agent.map(Processes.isAlive) ?? false
            return NodeStatus(name: n.name, nodeIP: n.nodeIP, podCIDRs: n.podCIDRs, netns: n.netns,
                              agentPID: n.agent?.pid, agentAlive: alive,
                              ready: state.phase == .ready && conflistReady(n.name) && (!state.agents || alive))
        }
        let pods = state.pods.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }.map { p in
            PodStatus(namespace: p.namespace, name: p.name, node: p.node, ips: p.ips, netns: p.netns,
                      serverPID: p.server?.pid, serverAlive: p.server.map(Processes.isAlive) ?? false)
        }
        let services = (state.services ?? []).sorted { $0.id < $1.id }.map { s in
            ServiceStatus(namespace: s.namespace, name: s.name, clusterIP: s.clusterIP, ports: s.ports.map(\.label),
                          backends: s.ports.flatMap { p in LabServices.backends(s, p, pods: state.pods).map { "\($0.pod) \($0.ip):\($0.port)" } })
        }
        return Status(labID: state.labID, stateDir: state.stateDir, phase: state.phase.rawValue, datapath: state.datapath,
                      agents: state.agents, underlayNetns: state.underlayNetns, nodes: nodes, pods: pods,
                      policies: (state.policies ?? []).map(\.id).sorted(), services: services, revision: state.revisionNumber)
    }

    // MARK: - probe

    public struct ProbeResult: Sendable {
        public var line: String
        public var ok: Bool
    }

    func findPod(_ ref: String, _ state: LabState) throws(LabError) -> PodRecord {
        let parts = ref.split(separator: "/", maxSplits: 1).map(String.init)
        let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", ref)
        guard let pod = state.pod(ns, name) else {
            throw LabError("pod \(ns)/\(name): not in the lab (`trellisctl lab status\(layout.stateFlag)` lists the pods)", exitCode: 2)
        }
        guard pod.phase == .running else { throw LabError("pod \(pod.id): not running yet", exitCode: 2) }
        return pod
    }

    /// `80`, `80/TCP`, `53/udp`, or a port name declared by `destination` (`http`).
    static func parsePort(_ text: String, destination: PodRecord?) throws(LabError) -> (UInt16, PortProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        var proto: PortProtocol = .tcp
        if parts.count == 2 {
            guard let p = PortProtocol(rawValue: parts[1].uppercased()) else {
                throw LabError("\(text): protocol must be TCP or UDP", exitCode: 2)
            }
            proto = p
        }
        if let n = Int(parts[0]), (1...65535).contains(n) { return (UInt16(n), proto) }
        if let destination, let named = destination.ports.first(where: { $0.name == parts[0] && (parts.count == 1 || $0.proto == proto) }) {
            return (UInt16(named.port), named.proto)
        }
        throw LabError("\(text): not a port (1-65535, optionally /TCP or /UDP)\(destination.map { " nor a port name of pod \($0.id)" } ?? "")", exitCode: 2)
    }

    static func destination(_ pod: PodRecord, ipv6: Bool) throws(LabError) -> IPAddress {
        let ips = pod.ips.compactMap { IPAddress($0) }
        guard let ip = ipv6 ? ips.first(where: { $0.family == .v6 }) : ips.first else {
            throw LabError("pod \(pod.id): has no \(ipv6 ? "IPv6 " : "")address", exitCode: 2)
        }
        return ip
    }

    /// Where a probe starts: a pod (`NS/POD`, or `POD` in default) or a node (`node:NAME` or a
    /// lab node's name), as (network namespace, name for the line).
    func findSource(_ ref: String, _ state: LabState) throws(LabError) -> (netns: String, id: String) {
        let nodeName = ref.hasPrefix("node:") ? String(ref.dropFirst(5)) : ref
        if let node = state.node(nodeName) { return (node.netns, "node:\(node.name)") }
        if ref.hasPrefix("node:") { throw LabError("\(ref): not a lab node", exitCode: 2) }
        let pod = try findPod(ref, state)
        return (pod.netns, pod.id)
    }

    public func probe(from: String, to: String, port: String, timeout: Double, ipv6: Bool = false) throws -> ProbeResult {
        try Self.requireRoot()
        let state = try loadForReading()
        let src = try findSource(from, state)
        if to.hasPrefix("svc:") { return try probeService(from: src, to: String(to.dropFirst(4)), port: port, timeout: timeout, state) }
        let dst = try findPod(to, state)
        let (number, proto) = try Self.parsePort(port, destination: dst)
        let address = SocketAddress(ip: try Self.destination(dst, ipv6: ipv6), port: number)
        let outcome = try Prober.run([ProbeRequest(sourceNetns: src.netns, address: address, proto: proto, expected: dst.id)],
                                     timeout: timeout)[0]
        return ProbeResult(line: "\(src.id) -> \(dst.id) \(address.text)/\(proto.rawValue): \(outcome.text(timeout: timeout))",
                           ok: outcome.ok)
    }

    /// A probe of a Service's cluster IP (`svc:NS/NAME`, port by number or by the Service port's
    /// name): connected when one of its backends answers.
    private func probeService(from src: (netns: String, id: String), to ref: String, port: String, timeout: Double,
                              _ state: LabState) throws -> ProbeResult {
        let parts = ref.split(separator: "/", maxSplits: 1).map(String.init)
        let (ns, name) = parts.count == 2 ? (parts[0], parts[1]) : ("default", ref)
        guard let service = state.services?.first(where: { $0.namespace == ns && $0.name == name }) else {
            throw LabError("service \(ns)/\(name): not in the lab (`trellisctl lab status\(layout.stateFlag)` lists the services)", exitCode: 2)
        }
        let pieces = port.split(separator: "/", maxSplits: 1).map(String.init)
        let wantProto = pieces.count == 2 ? PortProtocol(rawValue: pieces[1].uppercased()) : nil
        guard let sp = service.ports.first(where: {
            ($0.name == pieces[0] || String($0.port) == pieces[0]) && (wantProto == nil || $0.proto == wantProto)
        }) else {
            throw LabError("\(port): not a port of service \(service.id) (\(service.ports.map(\.label).joined(separator: ", ")))", exitCode: 2)
        }
        let backends = LabServices.backends(service, sp, pods: state.pods).map(\.pod)
        let address = SocketAddress(ip: IPAddress(service.clusterIP)!, port: UInt16(sp.port))
        let outcome = try Prober.run([ProbeRequest(sourceNetns: src.netns, address: address, proto: sp.proto,
                                                   expected: backends.first ?? "(no backend)", alsoExpected: Array(backends.dropFirst()))],
                                     timeout: timeout)[0]
        return ProbeResult(line: "\(src.id) -> svc:\(service.id) \(address.text)/\(sp.proto.rawValue): \(outcome.text(timeout: timeout))",
                           ok: outcome.ok)
    }

    /// The outcome of `probe --matrix`: every ordered pair of distinct pods on some ports.
    public struct Matrix: Sendable {
        public struct Cell: Sendable {
            public var from: String
            public var to: String
            public var port: UInt16
            public var proto: PortProtocol
            public var outcome: ProbeOutcome
            public var timeout: Double
        }
        /// Running pods, sorted; their ids head the rows and columns.
        public var pods: [String]
        /// The ports probed per destination, in order.
        public var ports: [String: [(UInt16, PortProtocol)]]
        /// Whether the ports were given (the same for every destination).
        public var portsGiven: Bool
        public var cells: [Cell]
        public var timeout: Double

        public func cell(from: String, to: String, port: UInt16, proto: PortProtocol) -> Cell? {
            cells.first { $0.from == from && $0.to == to && $0.port == port && $0.proto == proto }
        }

        /// The table `probe --matrix` prints.
        public var text: String {
            func label(_ d: String) -> String {
                let p = (ports[d] ?? []).map { "\($0.0)/\($0.1.rawValue)" }
                return !portsGiven && !p.isEmpty ? "\(d) \(p.joined(separator: ","))" : d
            }
            var table: [[String]] = [["FROM \\ TO"] + pods.map(label)]
            for s in pods {
                var row = [s]
                for d in pods {
                    if s == d { row.append("self"); continue }
                    let mine = (ports[d] ?? []).compactMap { cell(from: s, to: d, port: $0.0, proto: $0.1) }
                    row.append(mine.isEmpty ? "(no ports)" : mine.map { $0.outcome.ok ? "ok" : "--" }.joined(separator: " "))
                }
                table.append(row)
            }
            let anyPorts = pods.first.flatMap { ports[$0] } ?? []
            let what = !portsGiven ? "each destination's declared ports (in its column)"
                : anyPorts.map { "\($0.0)/\($0.1.rawValue)" }.joined(separator: " ")
            let header = "per cell: \(what); ok: connected and answered, --: refused, blocked or unreachable (timeout \(Prober.secondsText(timeout)) s)"
            return header + "\n" + Lab.render(table)
        }

        /// One object per probe: from, to, port, protocol, ok, outcome.
        public var json: JSONValue {
            .object([
                ("pods", .strings(pods)), ("timeoutSeconds", .number(timeout)),
                ("probes", .array(cells.map { c in
                    .object([("from", .string(c.from)), ("to", .string(c.to)), ("port", .int(Int(c.port))),
                             ("protocol", .string(c.proto.rawValue)), ("ok", .bool(c.outcome.ok)),
                             ("outcome", .string(c.outcome.text(timeout: c.timeout)))])
                })),
            ])
        }
    }

    /// Every ordered pair of distinct pods: on `ports` when given, otherwise on the ports each
    /// destination declares.
    public func matrix(ports portTexts: [String], timeout: Double, ipv6: Bool = false) throws -> Matrix {
        try Self.requireRoot()
        let state = try loadForReading()
        let pods = state.pods.filter { $0.phase == .running }.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
        guard !pods.isEmpty else { throw LabError("no pods in the lab (`trellisctl lab apply -f FILE` adds some)", exitCode: 2) }
        var given: [(UInt16, PortProtocol)] = []
        for t in portTexts { given.append(try Self.parsePort(t, destination: nil)) }
        func ports(of pod: PodRecord) -> [(UInt16, PortProtocol)] {
            if !given.isEmpty { return given }
            var seen = Set<PortSpec>()
            return pod.ports.compactMap { p in
                seen.insert(PortSpec(name: nil, port: p.port, proto: p.proto)).inserted ? (UInt16(p.port), p.proto) : nil
            }
        }
        guard pods.contains(where: { !ports(of: $0).isEmpty }) else {
            throw LabError("no pod declares a port; name some: --matrix 80/TCP 53/UDP", exitCode: 2)
        }
        var requests: [ProbeRequest] = []
        var meta: [(from: String, to: String, port: UInt16, proto: PortProtocol)] = []
        for s in pods {
            for d in pods where s.id != d.id {
                let ip = try Self.destination(d, ipv6: ipv6)
                for (port, proto) in ports(of: d) {
                    requests.append(ProbeRequest(sourceNetns: s.netns, address: SocketAddress(ip: ip, port: port),
                                                 proto: proto, expected: d.id))
                    meta.append((s.id, d.id, port, proto))
                }
            }
        }
        let outcomes = try Prober.run(requests, timeout: timeout)
        let cells = zip(meta, outcomes).map { m, o in
            Matrix.Cell(from: m.from, to: m.to, port: m.port, proto: m.proto, outcome: o, timeout: timeout)
        }
        return Matrix(pods: pods.map(\.id), ports: Dictionary(uniqueKeysWithValues: pods.map { ($0.id, ports(of: $0)) }),
                      portsGiven: !given.isEmpty, cells: cells, timeout: timeout)
    }

    /// Columns padded to their widest cell, two spaces apart.
    public static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
        }.joined(separator: "\n")
    }
}
