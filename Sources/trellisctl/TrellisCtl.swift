import ArgumentParser
import Foundation
import TrellisCNI

/// The operator's CLI. It grows with the agent (status, endpoints, policy, monitor, lab).
@main
struct TrellisCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellisctl",
        abstract: "Operate Trellis: the CNI plugin, the node agent and the local lab.",
        version: TrellisVersion.string,
        subcommands: [StatusCommand.self, PolicyCommand.self, MonitorCommand.self, CNI.self, LabCommand.self])
}

enum TrellisVersion {
    static let string = "0.1.0"
}

struct CNI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cni",
        abstract: "Work with Trellis CNI configurations.",
        subcommands: [Validate.self])

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a .conflist or .conf the way the plugin will read it, without running it.",
            discussion: "Exit 0 when every trellis entry is valid; 1 with the plugin's own error (CNI code and the field it names) otherwise.")

        @Argument(help: "A CNI network configuration list (.conflist) or single configuration (.conf).")
        var file: String

        func run() throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("\(file): not a JSON object")
            }
            // A conflist gives name and cniVersion to each plugin, as the runtime does.
            let entries: [[String: Any]]
            if let plugins = root["plugins"] as? [[String: Any]] {
                entries = plugins.map { p in
                    var p = p
                    p["name"] = p["name"] ?? root["name"]
                    p["cniVersion"] = p["cniVersion"] ?? root["cniVersion"]
                    return p
                }
            } else {
                entries = [root]
            }
            var found = 0
            for (i, entry) in entries.enumerated() where entry["type"] as? String == "trellis" {
                found += 1
                let bytes = try JSONSerialization.data(withJSONObject: entry)
                do {
                    let conf = try NetConf.parse([UInt8](bytes))
                    let ranges = conf.ranges.map { "\($0.subnet) (\($0.rangeStart)-\($0.rangeEnd), gateway \($0.gateway))" }
                    print("plugins[\(i)]: ok: cniVersion \(conf.cniVersion), mode \(conf.mode), mtu \(conf.mtu), ranges \(ranges.joined(separator: ", "))")
                } catch {
                    print("plugins[\(i)]: error \(error.code): \(error.msg)")
                    throw ExitCode(1)
                }
            }
            if found == 0 {
                print("\(file): no plugin of type trellis")
                throw ExitCode(1)
            }
        }
    }
}
