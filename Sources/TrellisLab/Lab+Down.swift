import Foundation
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

/// `lab down`: undo everything of a lab, recorded or found by name.
extension Lab {
    public func down() throws {
        try Self.requireRoot()
        // From here on a Ctrl-C is noted and ignored: a half-finished cleanup helps nobody.
        Interrupts.install()
        var lock: Int32 = -1
        var state: LabState?
        var madeLockFile = false
        if Sys.isDirectory(layout.stateDir) {
            madeLockFile = !Sys.exists(layout.lockFile)
            lock = try lockState()
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
}
