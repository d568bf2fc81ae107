#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TrellisCNI
import TrellisCore
import TrellisJSON
import TrellisNet

/// The CNI network configuration list the agent writes once it is ready (docs/cni-config.md):
/// the runtime picks up the node's pod network only when this file appears, so a node never
/// schedules pods before its datapath can carry them.
public struct ConflistWriter: Sendable {
    public let directory: String
    public let fileName: String

    public static let networkName = "trellis"
    public static let cniVersion = "1.1.0"

    public init(directory: String, fileName: String) {
        self.directory = directory
        self.fileName = fileName
    }

    public var path: String { directory + "/" + fileName }

    /// The conflist for this node: one `trellis` plugin with an IPAM range per pod CIDR, each
    /// without `gateway`, so that the plugin takes `IPNetwork.defaultGateway`, as the agent's
    /// `OwnNode.routers` do.
    public static func render(mode: DatapathMode, mtu: Int, agentSocket: String?, podCIDRs: [IPNetwork],
                              ipamDataDir: String) -> JSONValue {
        let ranges: [JSONValue] = podCIDRs.map { .object([("subnet", .string($0.network.description))]) }
        // A nil agentSocket leaves the member out: the plugin alone, with no agent to ask (the
        // lab's --no-agent nodes).
        let plugin = JSONValue.object([
            ("type", .string("trellis")),
            ("mode", .string(mode.rawValue)),
            ("mtu", .int(mtu)),
            ("agentSocket", agentSocket.map(JSONValue.string)),
            ("ipam", .object([("ranges", .array(ranges)), ("dataDir", .string(ipamDataDir))])),
        ])
        return .object([
            ("cniVersion", .string(cniVersion)),
            ("name", .string(networkName)),
            ("plugins", .array([plugin])),
        ])
    }

    /// Checks a conflist the way the plugin will read it: each plugin entry with the list's
    /// `cniVersion` and `name`, as runtimes hand it over.
    public static func validate(_ conflist: JSONValue) throws(CNIError) -> [NetConf] {
        guard case .string(let version)? = conflist["cniVersion"], case .string(let name)? = conflist["name"],
              case .array(let plugins)? = conflist["plugins"], !plugins.isEmpty else {
            throw .invalidConfig("conflist: cniVersion, name and a non-empty plugins list are required")
        }
        var out: [NetConf] = []
        for plugin in plugins {
            guard case .object(var members) = plugin else { throw .invalidConfig("conflist: a plugin entry is not an object") }
            members.removeAll { $0.key == "cniVersion" || $0.key == "name" }
            members.insert(JSONMember(key: "name", value: .string(name)), at: 0)
            members.insert(JSONMember(key: "cniVersion", value: .string(version)), at: 0)
            out.append(try NetConf.parse(JSONValue.object(members).bytes))
        }
        return out
    }

    public enum Outcome: Sendable, Equatable {
        case written, unchanged
    }

    /// Validates, then writes atomically: a temporary file in the same folder, fsync, rename
    /// over the target, fsync of the folder. A file that already holds exactly this content is
    /// left alone (no needless inotify event for the runtime).
    @discardableResult
    public func write(_ conflist: JSONValue) throws -> Outcome {
        _ = try Self.validate(conflist)
        let bytes = Array(Self.pretty(conflist).utf8)
        if let existing = FileManager.default.contents(atPath: path), Array(existing) == bytes { return .unchanged }
        try Posix.makeDirectories(directory, mode: 0o755)
        let temp = directory + "/." + fileName + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError("create \(temp)") }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        do {
            defer { close(fd) }
            var written = 0
            while written < bytes.count {
                let n = bytes[written...].withUnsafeBytes { raw in Posix.retrying { Glibc.write(fd, raw.baseAddress, raw.count) } }
                guard n > 0 else { throw SystemError("write \(temp)") }
                written += n
            }
            guard fchmod(fd, 0o644) == 0 else { throw SystemError("chmod \(temp)") }
            guard fsync(fd) == 0 else { throw SystemError("fsync \(temp)") }
        }
        guard rename(temp, path) == 0 else { throw SystemError("rename \(temp) to \(path)") }
        ok = true
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        return .written
    }

    /// Indented JSON, members in order: the file is read by people too.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
                + (indent.isEmpty ? "\n" : "")
        case .object(let members) where !members.isEmpty:
            return "{\n" + members.map { inner + JSONValue.string($0.key).serialized + ": " + pretty($0.value, indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}" + (indent.isEmpty ? "\n" : "")
        default:
            return value.serialized
        }
    }
}
