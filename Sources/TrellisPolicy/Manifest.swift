import TrellisJSON
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
    public var json: String { JSONValue(self).serialized }
}
