import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The nodes' agents: started in their namespaces, waited for until ready (their conflist),
/// restarted one node at a time.
extension Lab {
    /// `trellis-agent --config DIR/nodes/NAME/agent.yaml` inside the node's namespace, in a
    /// session of its own, stdout and stderr appended to its log; the environment is ours.
    private func spawnAgent(_ node: NodeRecord, _ state: LabState) throws(LabError) -> ProcessRef {
        try Processes.spawn(
            selfExecutable,
            ["lab", "exec", "--netns", LabLayout.netnsPath(node.netns), "--", state.binDir + "/trellis-agent",
             "--config", layout.agentConfig(node.name)],
            environment: ProcessInfo.processInfo.environment, stdout: layout.agentLog(node.name), newSession: true)
    }

    func startAgents(_ state: inout LabState, timeout: Double) throws {
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
}
