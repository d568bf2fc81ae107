import Foundation
import TrellisCore
import TrellisJSON
import TrellisNet
import TrellisPolicy

/// A drop as `trellisctl monitor` shows it: the datapath's event with the pods and nodes its
/// addresses belong to, named by this agent's view of the cluster.
public struct MonitorEvent: Sendable, Equatable {
    public var time: Date
    public var node: String
    public var event: DatapathDropEvent
    /// `namespace/pod`, or `node:NAME` for a node's address; nil when unknown (the world).
    public var sourceName: String?
    public var destinationName: String?

    /// One JSON line (what the socket streams and `trellisctl monitor -o json` prints).
    public var json: JSONValue {
        func end(_ ip: IPAddress?, _ port: UInt16, _ name: String?) -> JSONValue {
            .object([("ip", ip.map { .string("\($0)") }), ("port", port == 0 ? nil : .int(Int(port))),
                     ("name", name.map(JSONValue.string))])
        }
        return .object([
            ("time", .string(Self.timeText(time))), ("node", .string(node)),
            ("reason", .string(event.reasonLabel)), ("reasonText", .string(event.reasonText)),
            ("direction", .string(event.directionLabel)), ("protocol", .string(Self.protocolName(event.proto))),
            ("source", end(event.source, event.sourcePort, sourceName)),
            ("destination", end(event.destination, event.destinationPort, destinationName)),
            ("ifindex", .int(Int(event.ifindex))), ("length", .int(Int(event.length))),
        ])
    }

    static func protocolName(_ p: UInt8) -> String {
        p == 0 ? "-" : Proto(rawValue: p).description
    }

    static func timeText(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}

/// Addresses to names, from the agent's policy view of the cluster (a value: copied out of the
/// controller for the monitor's thread).
public struct NameIndex: Sendable {
    let cluster: PolicyCluster?

    public init() { cluster = nil }
    public init(_ cluster: PolicyCluster) { self.cluster = cluster }

    public func name(of ip: IPAddress?) -> String? {
        guard let ip, let cluster else { return nil }
        if let pod = cluster.podOwning(ip) { return pod.key.description }
        if let node = cluster.nodeOwning(ip) { return "node:\(node.name)" }
        return nil
    }
}

/// `{"op":"monitor","reasons":["policy_ingress"],"pods":["x/a","y/"]}`: which drops to stream.
/// Reasons are `DropReason` labels (or `code_N` for a code the agent does not know). No reasons: all; no pods: all. A pod entry `NS/` matches every pod of a namespace; an entry
/// matches when either end is that pod.
public struct MonitorFilter: Sendable, Equatable {
    public var reasons: [String]
    public var pods: [String]

    public init(reasons: [String] = [], pods: [String] = []) {
        self.reasons = reasons
        self.pods = pods
    }

    init(_ r: TreeReader) throws(FieldError) {
        reasons = try r.strings("reasons")
        pods = try r.strings("pods")
    }

    public var json: JSONValue {
        .object([("op", .string("monitor")), ("reasons", .strings(reasons)), ("pods", .strings(pods))])
    }

    public func matches(_ e: MonitorEvent) -> Bool {
        if !reasons.isEmpty, !reasons.contains(e.event.reasonLabel) { return false }
        if pods.isEmpty { return true }
        return [e.sourceName, e.destinationName].contains { name in
            guard let name else { return false }
            return pods.contains { $0.hasSuffix("/") ? name.hasPrefix($0) : name == $0 }
        }
    }
}
