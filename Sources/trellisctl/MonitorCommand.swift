import ArgumentParser
import Dispatch
import Foundation
import TrellisAgent
import TrellisCore
import TrellisJSON

/// `trellisctl monitor`: the datapath's drops as they happen, named by pod.
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Live drop events: time, node, reason, where, protocol, source and destination (address, port, pod).",
        discussion: """
          trellisctl monitor                         the agent at --socket
          trellisctl monitor --lab --reason policy_ingress --pod x/a
          trellisctl monitor --lab -o json --count 10

        Reasons: \(reasonList). --pod matches either end; --namespace every pod of a namespace. Runs until Ctrl-C, --count events or --duration seconds.
        """)

    /// Every reason the datapath reports, from the one definition (`DropReason`).
    static let reasonList = DropReason.allCases.map(\.label).joined(separator: ", ")

    @OptionGroup var target: AgentTarget

    @Option(help: ArgumentHelp("Only drops for this reason (repeatable).", valueName: "reason"))
    var reason: [String] = []

    @Option(help: ArgumentHelp("Only drops to or from this pod, NS/POD (repeatable).", valueName: "pod"))
    var pod: [String] = []

    @Option(help: ArgumentHelp("Only drops to or from pods of this namespace (repeatable).", valueName: "ns"))
    var namespace: [String] = []

    @Option(name: .shortAndLong, help: "table (one line per drop) or json (one object per line).")
    var output: OutputFormat = .table

    @Option(help: "Stop after this many events.")
    var count: Int?

    @Option(help: "Stop after this many seconds.")
    var duration: Double?

    func validate() throws {
        // `code_N`: a code of a newer datapath than this trellisctl knows.
        for r in reason where DropReason.allCases.allSatisfy({ $0.label != r }) && !r.hasPrefix("code_") {
            throw ValidationError("unknown drop reason '\(r)'; one of: \(Self.reasonList)")
        }
    }

    func run() throws {
        let filter = MonitorFilter(reasons: reason, pods: pod.map { $0.contains("/") ? $0 : "default/\($0)" } + namespace.map { "\($0)/" })
        let clients = try target.clients()
        let printed = Locked(0)
        let done = DispatchSemaphore(value: 0)
        let failures = Locked<[String]>([])
        for (node, client) in clients {
            Thread {
                do {
                    try client.stream(filter.json) { event in
                        let keepGoing = printed.withLock { n -> Bool in
                            if let count, n >= count { return false }
                            print(output == .json ? event.serialized : Self.line(event))
                            fflush(nil)
                            n += 1
                            return count.map { n < $0 } ?? true
                        }
                        if !keepGoing { done.signal() }
                        return keepGoing
                    }
                } catch {
                    failures.withLock { $0.append("\(node): \(error)") }
                }
                done.signal()
            }.start()
        }
        if let duration {
            _ = done.wait(timeout: .now() + duration)
        } else {
            done.wait()
        }
        // One ended: for --count the total is reached; otherwise an agent went away.
        if count == nil || printed.current < count! {
            let f = failures.current
            if !f.isEmpty, duration == nil || f.count == clients.count { throw fail(f.joined(separator: "; ")) }
        }
    }

    /// `01:23:45.123 node-1 policy_ingress from_underlay TCP 10.244.2.5:43512 (x/b) -> 10.244.1.7:80 (y/a)`
    static func line(_ e: JSONValue) -> String {
        if case .number(let lost)? = e["lost"] { return "(\(Int(lost)) events lost: the monitor was too slow)" }
        func text(_ v: JSONValue?) -> String { if case .string(let s)? = v { s } else { "-" } }
        func end(_ v: JSONValue?) -> String {
            guard let v else { return "-" }
            var s = text(v["ip"])
            if case .number(let p)? = v["port"] { s += s.contains(":") ? " port \(Int(p))" : ":\(Int(p))" }
            if case .string(let n)? = v["name"] { s += " (\(n))" }
            return s
        }
        let time = text(e["time"]).split(separator: "T").last.map { String($0.dropLast()) } ?? ""
        return "\(time) \(text(e["node"])) \(text(e["reason"])) \(text(e["direction"])) \(text(e["protocol"])) "
            + "\(end(e["source"])) -> \(end(e["destination"]))"
    }
}
