import TrellisNet

// Writing policies back out: the canonical networking.k8s.io/v1 object of a NetworkPolicy (what
// `NetworkPolicy(parsing:)` reads back to the same value), and JSON text of a `PolicyValue`.
// The lab writes the policies it is given into the agents' manifests with these; benchmarks and
// tests generate them.

extension NetworkPolicy {
    /// The object as the API would return it (without server-set metadata).
    public var manifest: PolicyValue {
        var spec: [(key: String, value: PolicyValue)] = [("podSelector", podSelector.manifest)]
        if let types = policyTypes { spec.append(("policyTypes", .array(types.map { .string($0.rawValue) }))) }
        if !ingress.isEmpty { spec.append(("ingress", .array(ingress.map { $0.manifest(peersKey: "from") }))) }
        if !egress.isEmpty { spec.append(("egress", .array(egress.map { $0.manifest(peersKey: "to") }))) }
        return .object([
            ("apiVersion", "networking.k8s.io/v1"), ("kind", "NetworkPolicy"),
            ("metadata", .object([("name", .string(name)), ("namespace", .string(namespace))])),
            ("spec", .object(spec)),
        ])
    }
}

extension LabelSelector {
    public var manifest: PolicyValue {
        var out: [(key: String, value: PolicyValue)] = []
        if !matchLabels.isEmpty {
            out.append(("matchLabels", .object(matchLabels.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) })))
        }
        if !matchExpressions.isEmpty {
            out.append(("matchExpressions", .array(matchExpressions.map { r in
                var e: [(key: String, value: PolicyValue)] = [("key", .string(r.key)), ("operator", .string(r.operator.rawValue))]
                if !r.values.isEmpty { e.append(("values", .array(r.values.map(PolicyValue.string)))) }
                return .object(e)
            })))
        }
        return .object(out)
    }
}

extension PolicyRule {
    func manifest(peersKey: String) -> PolicyValue {
        var out: [(key: String, value: PolicyValue)] = []
        if !peers.isEmpty { out.append((peersKey, .array(peers.map(\.manifest)))) }
        if !ports.isEmpty { out.append(("ports", .array(ports.map(\.manifest)))) }
        return .object(out)
    }
}

extension PolicyPeer {
    var manifest: PolicyValue {
        var out: [(key: String, value: PolicyValue)] = []
        if let p = podSelector { out.append(("podSelector", p.manifest)) }
        if let n = namespaceSelector { out.append(("namespaceSelector", n.manifest)) }
        if let b = ipBlock {
            var block: [(key: String, value: PolicyValue)] = [("cidr", .string(b.cidr.description))]
            if !b.except.isEmpty { block.append(("except", .array(b.except.map { .string($0.description) }))) }
            out.append(("ipBlock", .object(block)))
        }
        return .object(out)
    }
}

extension PolicyPort {
    var manifest: PolicyValue {
        var out: [(key: String, value: PolicyValue)] = [("protocol", .string(proto.description))]
        switch port {
        case nil: break
        case .number(let n): out.append(("port", .number(Double(n))))
        case .named(let name): out.append(("port", .string(name)))
        }
        if let endPort { out.append(("endPort", .number(Double(endPort)))) }
        return .object(out)
    }
}

extension PolicyValue {
    /// Compact JSON text.
    public var json: String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .string(let s): Self.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, m) in members.enumerated() {
                if i > 0 { out += "," }
                Self.writeString(m.key, to: &out)
                out += ":"
                m.value.write(to: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }
}
