import ArgumentParser
import Foundation
import TrellisAgent
import TrellisJSON
import TrellisLab
import TrellisNet
import TrellisPolicy

/// `trellisctl policy ...`: NetworkPolicy as Trellis sees it.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Inspect NetworkPolicy verdicts.",
        subcommands: [Explain.self])

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Why a connection is allowed or denied: the policies that isolate each end and the rules that allow it.",
            discussion: """
              trellisctl policy explain --from x/a --to y/b --port 80/TCP -f manifests/      (offline)
              trellisctl policy explain --from x/a --to y/b --port 80/TCP                    (live: the agent at --socket)
              trellisctl policy explain --from x/a --to y/b --port 80/TCP --lab              (live: the lab's agents)

            Ends: NAMESPACE/POD (a bare name is in "default"), node:NAME (the node's own stack, as kubelet's probes) or an IP address. Port: 80, 80/TCP, 53/UDP, 9000/SCTP, or ICMP. Offline, the manifests' Namespaces, Pods (labels, containers' named ports, status.podIPs for ipBlocks) and NetworkPolicies are read. Live, the agent answers from its view of the cluster and adds what its datapath would find at its own pods: the peer's identities and the allow entry that matches. Exit 0 when allowed, 1 when denied, 2 on errors.
            """)

        @Option(help: ArgumentHelp("The connection's source.", valueName: "end"))
        var from: String

        @Option(help: ArgumentHelp("The connection's destination.", valueName: "end"))
        var to: String

        @Option(help: ArgumentHelp("Destination port and protocol (80/TCP; ICMP).", valueName: "port"))
        var port: String

        @Option(name: .shortAndLong, help: ArgumentHelp("Manifests to explain from, offline (files or folders; repeatable).", valueName: "path"))
        var file: [String] = []

        @OptionGroup var target: AgentTarget

        @Flag(help: "Use the ends' IPv6 addresses (for ipBlocks).")
        var ipv6 = false

        @Option(name: .shortAndLong, help: "table or json.")
        var output: OutputFormat = .table

        func validate() throws {
            for (name, text) in [("--from", from), ("--to", to)] where ExplainRequest.endpoint(text) == nil {
                throw ValidationError("\(name) \(text): not NAMESPACE/POD, node:NAME or an IP address")
            }
            _ = try parsedPort()
        }

        func parsedPort() throws -> (UInt16, Proto) {
            let parts = port.split(separator: "/", maxSplits: 1).map(String.init)
            if parts.count == 1, let p = ExplainRequest.proto(parts[0]), !p.hasPorts { return (0, p) }
            guard let n = UInt16(parts[0]), n > 0 else { throw ValidationError("--port \(port): not a port (1-65535[/TCP|UDP|SCTP] or ICMP)") }
            let proto = parts.count == 2 ? ExplainRequest.proto(parts[1]) : .tcp
            guard let proto else { throw ValidationError("--port \(port): the protocol is not TCP, UDP or SCTP") }
            return (n, proto)
        }

        func run() throws {
            let (number, proto) = try parsedPort()
            let request = ExplainRequest(from: from, to: to, port: number, proto: proto, family: ipv6 ? .v6 : nil)
            var answers: [(String, JSONValue)] = []
            if !file.isEmpty {
                let engine: PolicyEngine
                do {
                    let (e, problems) = try OfflinePolicy.engine(manifests: file)
                    for p in problems { FileHandle.standardError.write(Data("warning: \(p)\n".utf8)) }
                    engine = e
                } catch {
                    throw fail("\(error)", code: 2)
                }
                answers.append(("manifests", .object(request.answer(engine, datapath: false))))
            } else {
                var clients = try target.clients()
                if target.lab && target.node.isEmpty {
                    // The agents of the two ends' nodes know their datapath; one of them suffices for the verdict.
                    let lab = Lab(stateDir: target.stateDir)
                    let nodes = [from, to].compactMap { try? lab.node(ofPod: $0) }
                    let wanted = clients.filter { nodes.contains($0.node) }
                    clients = wanted.isEmpty ? Array(clients.prefix(1)) : wanted
                }
                for (node, client) in clients {
                    do { answers.append((node, try client.call(request.json))) } catch {
                        throw fail("\(node): \(error)", code: 2)
                    }
                }
            }
            let allowed = answers.first.map { $0.1["allowed"] == .bool(true) } ?? false
            switch output {
            case .json:
                print(answers.count == 1 ? answers[0].1.serialized
                      : JSONValue.object(answers.map { ($0.0, $0.1) }).serialized)
            case .table:
                for (i, (node, answer)) in answers.enumerated() {
                    guard case .string(let text)? = answer["text"] else { continue }
                    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                    if answers.count > 1 {
                        // The verdict once, the datapath lines of every agent.
                        for line in lines where i == 0 || line.hasPrefix("  datapath") { print(line.hasPrefix("  datapath") ? "  [\(node)]" + line.dropFirst(1) : line) }
                    } else {
                        print(text)
                    }
                }
            }
            if !allowed { throw ExitCode(1) }
        }
    }
}
