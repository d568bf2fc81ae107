import TrellisJSON
import TrellisNet
import TrellisPolicy

/// `{"op":"explain","from":"x/a","to":"y/b","port":80,"protocol":"TCP"}`: the policy verdict
/// for a connection, with the policies and rules that decide it and the datapath entries
/// that match at this node's pods. Ends are `NAMESPACE/POD` (a bare name is in `default`),
/// `node:NAME`, or an IP address.
public struct ExplainRequest: Sendable, Equatable {
    public var from: String
    public var to: String
    public var port: UInt16
    public var proto: Proto
    /// Which of dual-stack ends' addresses to use; nil: the source's first.
    public var family: IPAddress.Family?

    public init(from: String, to: String, port: UInt16, proto: Proto, family: IPAddress.Family? = nil) {
        self.from = from
        self.to = to
        self.port = port
        self.proto = proto
        self.family = family
    }

    init(_ r: TreeReader) throws(FieldError) {
        from = try r.requiredString("from")
        to = try r.requiredString("to")
        guard let p = try r.integer("port") else { throw FieldError("port", "missing") }
        guard (0...65535).contains(p) else { throw FieldError("port", "\(p) is not a port (0 to 65535)") }
        port = UInt16(p)
        let protoText = try r.string("protocol") ?? "TCP"
        guard let proto = Self.proto(protoText) else {
            throw FieldError("protocol", "\"\(protoText)\" is not TCP, UDP, SCTP, ICMP or ICMPv6")
        }
        self.proto = proto
        switch try r.string("family") {
        case nil: family = nil
        case "IPv4": family = .v4
        case "IPv6": family = .v6
        case let other?: throw FieldError("family", "\"\(other)\" is not IPv4 or IPv6")
        }
        for (key, text) in [("from", from), ("to", to)] where Self.endpoint(text) == nil {
            throw FieldError(key, "\"\(text)\" is not NAMESPACE/POD, node:NAME or an IP address")
        }
    }

    /// `TCP`, `udp`, `ICMP`, ...
    public static func proto(_ text: String) -> Proto? {
        switch text.uppercased() {
        case "ICMP": .icmp
        case "ICMPV6": .icmpv6
        default: Proto(name: text.uppercased())
        }
    }

    /// `x/a` -> pod, `node:n1` -> node, `10.0.0.1` -> address, `a` -> pod default/a.
    public static func endpoint(_ text: String) -> Endpoint? {
        if text.hasPrefix("node:") {
            let name = String(text.dropFirst(5))
            return name.isEmpty ? nil : .node(name)
        }
        if let ip = IPAddress(text) { return .address(ip) }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1 where !parts[0].isEmpty: return .pod("default", parts[0])
        case 2 where !parts[0].isEmpty && !parts[1].isEmpty: return .pod(parts[0], parts[1])
        default: return nil
        }
    }

    public var json: JSONValue {
        .object([("op", .string("explain")), ("from", .string(from)), ("to", .string(to)), ("port", .int(Int(port))),
                 ("protocol", .string(proto.description)),
                 ("family", family.map { .string($0 == .v4 ? "IPv4" : "IPv6") })])
    }

    /// The explanation by `engine`, as the answer's members.
    public func answer(_ engine: PolicyEngine, datapath: Bool = true) -> [JSONMember] {
        let e = engine.explain(from: Self.endpoint(from)!, to: Self.endpoint(to)!, port: port, proto: proto,
                               family: family, datapath: datapath)
        return e.jsonMembers
    }
}

extension PolicyExplanation {
    /// The explanation as JSON members: `allowed`, `text` (what `trellisctl` prints), the
    /// per-direction decisions and the datapath checks.
    public var jsonMembers: [JSONMember] {
        func direction(_ d: DirectionVerdict?) -> JSONValue? {
            guard let d else { return nil }
            let decision: String
            switch d.decision {
            case .notIsolated: decision = "not-isolated"
            case .allowedByRules: decision = "allowed-by-rules"
            case .fromOwnNode: decision = "from-own-node"
            case .denied: decision = "denied"
            }
            return .object([
                ("pod", .string(d.pod.description)), ("allowed", .bool(d.allowed)), ("decision", .string(decision)),
                ("isolatedBy", .strings(d.isolatedBy.map(\.description))),
                ("allowedBy", .strings(d.allowedBy.map(\.description))),
                ("text", .string(d.description)),
            ])
        }
        let checks: [JSONValue] = datapath.map { c in
            .object([
                ("direction", .string(c.direction.word)), ("pod", .string(c.pod.description)),
                ("endpoint", .int(Int(c.endpoint))), ("peerAddress", c.peerAddress.map { .string("\($0)") }),
                ("peerIdentity", .int(Int(c.peerIdentity))),
                ("peerCIDRIdentity", c.peerCIDRIdentity == 0 ? nil : .int(Int(c.peerCIDRIdentity))),
                ("allowed", .bool(c.allowed)), ("entry", c.matchedBy.map { .string($0.description) }),
            ])
        }
        return [
            JSONMember(key: "allowed", value: .bool(verdict.allowed)),
            JSONMember(key: "text", value: .string(description)),
            JSONMember(key: "egress", value: direction(verdict.egress) ?? .null),
            JSONMember(key: "ingress", value: direction(verdict.ingress) ?? .null),
            JSONMember(key: "datapath", value: .array(checks)),
            JSONMember(key: "datapathAgrees", value: .bool(datapathAgrees)),
        ]
    }
}
