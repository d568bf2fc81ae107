import Foundation
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

/// A pod's network, its server and its removal: the real plugin run as a runtime would (apply,
/// delete and down go through these).
extension Lab {
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
}
