import ArgumentParser
import Foundation
import TrellisAgent
import TrellisJSON
import TrellisLab

/// `trellisctl status`: what an agent has programmed.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "An agent's state: ready or why not, the cluster revision programmed, counts, and its pods with their identity and policy.",
        discussion: "Exit 0 when every agent asked is ready, 1 otherwise (or unreachable).")

    @OptionGroup var target: AgentTarget

    @Option(name: .shortAndLong, help: "table or json.")
    var output: OutputFormat = .table

    func run() throws {
        var all: [(String, JSONValue)] = []
        var problems: [String] = []
        for (node, client) in try target.clients() {
            do { all.append((node, try client.call(.object([("op", .string("agent"))])))) } catch {
                problems.append("\(node): \(error)")
            }
        }
        switch output {
        case .json:
            let items = all.map(\.1) + problems.map { JSONValue.object([("ok", .bool(false)), ("error", .string($0))]) }
            print(items.count == 1 ? items[0].serialized : JSONValue.array(items).serialized)
        case .table:
            for (i, (_, s)) in all.enumerated() {
                if i > 0 { print("") }
                print(Self.summary(s))
                print(Self.endpoints(s))
            }
            for p in problems { FileHandle.standardError.write(Data("error: \(p)\n".utf8)) }
        }
        let ready = all.allSatisfy { $0.1["ready"] == .bool(true) }
        if !problems.isEmpty || !ready { throw ExitCode(1) }
    }

    static func text(_ v: JSONValue?) -> String {
        switch v {
        case .string(let s)?: s
        case .number(let n)?: String(Int(n))
        case .bool(let b)?: b ? "yes" : "no"
        default: "-"
        }
    }

    static func summary(_ s: JSONValue) -> String {
        let c = s["counts"]
        let state = s["ready"] == .bool(true) ? "ready" : "NOT READY (\(text(s["reason"])))"
        return "\(text(s["node"])): \(state), revision \(text(s["revision"]))\n"
            + "  \(text(c?["endpoints"])) endpoints, \(text(c?["pods"])) pods, \(text(c?["networkPolicies"])) network policies, "
            + "identities \(text(c?["labelIdentities"])) label + \(text(c?["cidrIdentities"])) CIDR, "
            + "\(text(c?["policyEntries"])) policy entries, \(text(c?["ipcacheEntries"])) ipcache entries, "
            + "\(text(c?["tunnels"])) tunnels, \(text(c?["peers"])) peers"
    }

    static func endpoints(_ s: JSONValue) -> String {
        guard case .array(let eps)? = s["endpoints"], !eps.isEmpty else { return "  no endpoints" }
        var rows = [["  POD", "HOST VETH", "IPS", "IDENTITY", "POLICY ID", "INGRESS", "EGRESS", "ENTRIES"]]
        for e in eps {
            var ips: [String] = []
            if case .array(let list)? = e["ips"] { ips = list.map { text($0) } }
            var labels: [String] = []
            if case .array(let list)? = e["identityLabels"] { labels = list.map { text($0) } }
            rows.append(["  " + text(e["pod"]), "\(text(e["hostIfname"])) (\(text(e["hostIfindex"])))", ips.joined(separator: ","),
                         "\(text(e["identity"])) (\(labels.joined(separator: ", ")))", text(e["policyID"]),
                         text(e["ingress"]), text(e["egress"]), text(e["policyEntries"])])
        }
        return Lab.render(rows)
    }
}
