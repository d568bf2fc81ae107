import ArgumentParser
import Foundation
import TrellisCore
import TrellisLab

/// `trellisctl lab ...`: the local multi-node lab (see TrellisLab).
struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "A local multi-node cluster in network namespaces, with the real plugin and agents.",
        discussion: """
        Each node is a network namespace with an eth0 on a shared underlay bridge (itself in a namespace), a bpffs, a CNI config folder and (unless --no-agent) a real trellis-agent; each pod is a namespace wired by the real trellis plugin, running a small server on its declared ports. Nothing is created in the root network namespace. Needs root.

          trellisctl lab up --nodes 2
          trellisctl lab apply -f pods.yaml
          trellisctl lab probe default/a default/b 80/TCP
          trellisctl lab probe --matrix
          trellisctl lab down

        Commands work on the lab in --state (default \(LabLayout.defaultStateDir)); labs with different state directories are independent.
        """,
        subcommands: [LabUp.self, LabApply.self, LabDelete.self, LabProbe.self, LabStatus.self, LabRestartAgents.self, LabDown.self,
                      LabExec.self, LabServe.self, LabKubelet.self])
}

struct LabOptions: ParsableArguments {
    @Option(name: .customLong("state"), help: ArgumentHelp("The lab's state directory.", valueName: "dir"))
    var stateDir: String = LabLayout.defaultStateDir

    @Option(name: .customLong("bin-dir"),
            help: ArgumentHelp("Folder holding trellis and trellis-agent (default: the one `up` used, else beside trellisctl).", valueName: "dir"))
    var binDir: String?

    func lab() -> Lab { Lab(stateDir: stateDir, binDir: binDir) }
}

/// Runs a lab action; a `LabError` becomes its message on stderr and its exit code.
func labRun(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as LabError {
        if !e.message.isEmpty {   // empty: already reported
            FileHandle.standardError.write(Data("error: \(e.message)\n".utf8))
        }
        throw ExitCode(e.exitCode)
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// `--datapath bridge|ebpf`: TrellisCore's mode, read by the argument parser.
extension DatapathMode: ExpressibleByArgument {}

struct LabUp: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Create the nodes (and start their agents), wait until each is ready.",
        discussion: """
        Ready means: the node's agent has written its conflist. With --no-agent the lab writes a standalone conflist per node instead (pods on one node reach each other, nothing crosses nodes). A failed `up` removes what it made (unless --keep-on-failure).
        """)

    @OptionGroup var options: LabOptions

    @Option(help: "Number of nodes (node-1 ... node-N: 192.168.200.(10+i), pods 10.244.i.0/24 and fd00:10:244:i::/64).")
    var nodes: Int = 2

    @Option(help: "Datapath mode written into the agents' config (or the standalone conflists).")
    var datapath: DatapathMode = .ebpf

    @Flag(name: .customLong("no-agent"), help: "Start no agent; write standalone conflists.")
    var noAgent = false

    @Option(name: .customLong("bpf-dir"),
            help: ArgumentHelp("The agents' bpfObjectDir (default: .build/bpf of this repository when present).", valueName: "dir"))
    var bpfDir: String?

    @Option(help: "Seconds to wait for every agent's conflist.")
    var timeout: Double = 30

    @Flag(name: .customLong("keep-on-failure"), help: "Leave a failed lab in place for inspection (`down` removes it).")
    var keepOnFailure = false

    @Option(help: ArgumentHelp("Kubernetes mode: the lab's nodes are registered in this API server, the agents take the cluster state from it, a pod runner per node wires the pods bound to it; use kubectl for pods, namespaces and policies.", valueName: "file"))
    var kubeconfig: String?

    func run() throws {
        try labRun {
            try options.lab().up(Lab.UpOptions(nodes: nodes, datapath: datapath, agents: !noAgent, bpfDir: bpfDir,
                                               readyTimeout: timeout, keepOnFailure: keepOnFailure, kubeconfig: kubeconfig))
        }
    }
}

struct LabApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Create or update the Namespaces, Pods and NetworkPolicies of a manifest (YAML or JSON, multi-document, kind: List).",
        discussion: """
        Like `kubectl apply`: new objects are created, existing ones updated. Each new Pod (spec.nodeName: a lab node) becomes a network namespace wired by the real trellis plugin in its node, with a server on each declared containers[].ports[] (TCP: writes "<ns>/<pod>" and closes; UDP: answers each datagram with it). A re-applied Pod or Namespace with other labels is updated live (the pod keeps its namespace, IPs and server); a Pod's other fields cannot change (delete it first). A re-applied NetworkPolicy replaces the old one. Then waits until every agent has programmed the change (--wait), so a probe right after sees it.
        """)

    @OptionGroup var options: LabOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("The manifest (`-` for stdin).", valueName: "file"))
    var file: String

    @Option(help: "Seconds to wait for the agents to program the change (0: do not wait).")
    var wait: Double = 10

    func run() throws {
        try labRun { try options.lab().apply(file: file, wait: wait) }
    }
}

struct LabDelete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Remove the Pods, NetworkPolicies and Namespaces (with all in them) of a manifest.",
        discussion: "A pod: its server stopped, CNI DEL, its namespace removed. Then waits until every agent has programmed the change (--wait).")

    @OptionGroup var options: LabOptions

    @Option(name: .shortAndLong, help: ArgumentHelp("The manifest (`-` for stdin).", valueName: "file"))
    var file: String

    @Option(help: "Seconds to wait for the agents to program the change (0: do not wait).")
    var wait: Double = 10

    func run() throws {
        try labRun { try options.lab().delete(file: file, wait: wait) }
    }
}

struct LabProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Connect from one pod to another (from inside the source pod's namespace).",
        discussion: """
          trellisctl lab probe SOURCE NS/POD PORT[/TCP|/UDP]
          trellisctl lab probe --matrix [PORT/PROTO ...] [-o json]

        TCP: connected and the server's line read; UDP: a datagram sent and the reply received ("connected" then means the reply arrived). The source is a pod (NS/POD; without namespace it is in "default") or a lab node (node-1, node:node-1: what the node's own stack sends, as kubelet's probes). The destination is a pod, or a Service (svc:NS/NAME, its cluster IP: connected when one of its backends answers, through the node's kube-proxy stand-in). A port may also be a port name of the destination (of the Service). Exit 0 when connected, 1 when refused, blocked (no answer before --timeout) or unreachable, 2 on errors. --matrix probes every ordered pair of pods on the given ports (all declared ports when none) and exits 0.
        """)

    @OptionGroup var options: LabOptions

    @Argument(help: ArgumentHelp("SOURCE DESTINATION PORT, or the ports with --matrix.", valueName: "args"))
    var arguments: [String] = []

    @Flag(help: "Probe every ordered pair of pods.")
    var matrix = false

    @Option(help: "Seconds to wait for a connection and its answer.")
    var timeout: Double = 1

    @Flag(help: "Probe the destination's IPv6 address (default: its first address, IPv4).")
    var ipv6 = false

    @Option(name: .shortAndLong, help: "With --matrix: table or json (one object per probe).")
    var output: OutputFormat = .table

    func validate() throws {
        if !matrix && arguments.count != 3 {
            throw ValidationError("expected SOURCE DESTINATION PORT[/PROTO] (or --matrix [PORT/PROTO ...])")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        try labRun {
            let lab = options.lab()
            if matrix {
                let m = try lab.matrix(ports: arguments, timeout: timeout, ipv6: ipv6)
                print(output == .json ? m.json.serialized : m.text)
                return
            }
            let result = try lab.probe(from: arguments[0], to: arguments[1], port: arguments[2], timeout: timeout, ipv6: ipv6)
            print(result.line)
            if !result.ok { throw ExitCode(1) }
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct LabStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Nodes (IP, pod CIDRs, agent PID, alive, ready), pods (node, IPs) and network policies.")

    @OptionGroup var options: LabOptions

    @Option(name: .shortAndLong, help: "table or json.")
    var output: OutputFormat = .table

    func run() throws {
        try labRun {
            let s = try options.lab().status()
            switch output {
            case .json:
                let data = try JSONSerialization.data(withJSONObject: s.json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
            case .table:
                print("lab \(s.labID) in \(s.stateDir): \(s.phase), datapath \(s.datapath), \(s.agents ? "agents" : "no agents (--no-agent)")")
                var rows = [["NODE", "NODE IP", "POD CIDRS", "AGENT", "READY", "NETNS"]]
                for n in s.nodes {
                    let agent = n.agentPID.map { "\($0) (\(n.agentAlive ? "alive" : "dead"))" } ?? "-"
                    rows.append([n.name, n.nodeIP, n.podCIDRs.joined(separator: ","), agent, n.ready ? "yes" : "no", n.netns])
                }
                print(Lab.render(rows))
                print("")
                if s.pods.isEmpty {
                    print("no pods (`trellisctl lab apply -f FILE` adds some)")
                } else {
                    var podRows = [["POD", "NODE", "IPS", "SERVER", "NETNS"]]
                    for p in s.pods {
                        let server = p.serverPID.map { "\($0) (\(p.serverAlive ? "alive" : "dead"))" } ?? "-"
                        podRows.append(["\(p.namespace)/\(p.name)", p.node, p.ips.joined(separator: ","), server, p.netns])
                    }
                    print(Lab.render(podRows))
                }
                print("")
                print(s.policies.isEmpty ? "no network policies" : "network policies: " + s.policies.joined(separator: ", "))
                if !s.services.isEmpty {
                    print("services:")
                    for svc in s.services { print("  " + svc.line) }
                }
            }
        }
    }
}

struct LabRestartAgents: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart-agents",
        abstract: "Restart the nodes' agents one at a time (SIGTERM, start again, wait until ready).",
        discussion: "Ready after a restart: the agent's /readyz (127.0.0.1:9876 in the node's namespace) answers 200, or it rewrote its conflist.")

    @OptionGroup var options: LabOptions

    @Option(help: ArgumentHelp("Only this node (repeatable).", valueName: "name"))
    var node: [String] = []

    @Option(help: "Seconds to wait for each agent to be ready again.")
    var timeout: Double = 30

    func run() throws {
        try labRun { try options.lab().restartAgents(nodes: node, timeout: timeout) }
    }
}

struct LabDown: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Remove the lab: CNI DEL of every pod, servers and agents stopped by PID, namespaces, bpffs mounts, state.",
        discussion: "Idempotent; also removes what a failed or interrupted `up` left.")

    @OptionGroup var options: LabOptions

    func run() throws {
        try labRun { try options.lab().down() }
    }
}

// MARK: - hidden: the lab's own building blocks

struct LabExec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside a network namespace (setns on the main thread, then exec).",
        shouldDisplay: false)

    @Option(help: ArgumentHelp("The namespace (/var/run/netns/NAME).", valueName: "path"))
    var netns: String

    @Argument(parsing: .postTerminator, help: "-- CMD ARGS...")
    var command: [String] = []

    func run() throws {
        // Only returns on failure.
        let error = NamespaceExec.run(netns: netns, command: command)
        FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
        throw ExitCode(127)
    }
}

struct LabServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "A lab pod's server: answers \"<ns>/<pod>\" on the given TCP and UDP ports.",
        shouldDisplay: false)

    @Option(help: "The pod, <ns>/<pod>.")
    var id: String

    @Option(help: "A TCP port (repeatable).")
    var tcp: [UInt16] = []

    @Option(help: "A UDP port (repeatable).")
    var udp: [UInt16] = []

    func run() throws {
        do {
            try PodServer.run(identity: id, tcp: tcp, udp: udp)
        } catch {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct LabKubelet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubelet",
        abstract: "Kubernetes mode: wire the pods bound to a lab node, as kubelet would (started by `lab up`).",
        shouldDisplay: false)

    @OptionGroup var options: LabOptions

    @Option(help: "The lab node.")
    var node: String

    func run() throws {
        try labRun { try options.lab().runKubelet(node: node) }
    }
}
