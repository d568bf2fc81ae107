import ArgumentParser
import Foundation
import TrellisAgent
import TrellisLab

/// Which agent(s) a command talks to: one socket, or every node of a lab.
struct AgentTarget: ParsableArguments {
    @Option(help: ArgumentHelp("The agent's socket (its socketPath).", valueName: "path"))
    var socket: String = "/run/trellis/agent.sock"

    @Flag(help: "Talk to the agents of the local lab (every node, or --node) instead of --socket.")
    var lab = false

    @Option(name: .customLong("state"), help: ArgumentHelp("With --lab: the lab's state directory.", valueName: "dir"))
    var stateDir: String = LabLayout.defaultStateDir

    @Option(help: ArgumentHelp("With --lab: only this node's agent (repeatable).", valueName: "name"))
    var node: [String] = []

    /// (label, client) for every agent addressed.
    func clients(timeout: Int = 10) throws -> [(node: String, client: AgentSocketClient)] {
        guard lab else { return [(socket, AgentSocketClient(socketPath: socket, timeoutSeconds: timeout))] }
        let all = try Lab(stateDir: stateDir).agentSockets()
        for n in node where !all.contains(where: { $0.node == n }) {
            throw ValidationError("--node \(n): not a node of the lab in \(stateDir)")
        }
        return all.filter { node.isEmpty || node.contains($0.node) }
            .map { ($0.node, AgentSocketClient(socketPath: $0.socket, timeoutSeconds: timeout)) }
    }
}

/// Prints an error the way every trellisctl command does, and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode(code)
}
