import TrellisNet

/// One problem with one field, named by its path in the object (`spec.ingress[0].ports[1].endPort`).
public struct FieldProblem: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { path.isEmpty ? message : "\(path) \(message)" }
}

/// A NetworkPolicy that does not validate; every problem found is listed.
///
/// `description`: `policy x/deny: spec.ingress[0].ports[1].endPort 79 < port 80`, problems
/// separated by "; ".
public struct PolicyParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// "NetworkPolicy" (the only kind this module parses).
    public var kind: String
    /// `namespace/name` (or just the name, or "(unnamed)").
    public var object: String
    public var problems: [FieldProblem]

    package init(kind: String, object: String, problems: [FieldProblem]) {
        self.kind = kind
        self.object = object
        self.problems = problems
    }

    public var description: String {
        let what = kind == "NetworkPolicy" ? "policy" : kind.lowercased()
        return "\(what) \(object): " + problems.map(\.description).joined(separator: "; ")
    }
}

// MARK: - NetworkPolicy

extension NetworkPolicy {
    /// Reads and validates a NetworkPolicy object (`apiVersion`, `kind`, `metadata`, `spec`) as
    /// `kubectl apply` would accept it, with the API server's validation rules:
    ///
    /// - a peer gives `podSelector` and/or `namespaceSelector`, or `ipBlock` alone;
    /// - `ipBlock.cidr` is a CIDR (host bits are cleared), each `except` lies strictly inside it;
    /// - a port's `protocol` is TCP (default), UDP or SCTP; `port` an integer 1-65535 or a port
    ///   name (IANA service name syntax); `endPort` only with a numeric `port`, and >= it;
    /// - selector operators In/NotIn need values, Exists/DoesNotExist take none;
    /// - `policyTypes` entries are Ingress or Egress; unknown fields are errors (so a typo does
    ///   not silently widen a peer).
    ///
    /// `metadata.namespace` defaults to `defaultNamespace`.
    public init(parsing value: PolicyValue, defaultNamespace: String = "default") throws(PolicyParseError) {
        var p = TreeParser()
        let (namespace, name, _) = p.metadata(value, kind: "NetworkPolicy", apiVersion: "networking.k8s.io/v1",
                                              defaultNamespace: defaultNamespace)
        var policy = NetworkPolicy(namespace: namespace, name: name)
        if let spec = p.object(value["spec"], "spec", allowed: ["podSelector", "policyTypes", "ingress", "egress"]) {
            if let sel = p.selector(spec["podSelector"], "spec.podSelector") { policy.podSelector = sel }
            if let types = p.array(spec["policyTypes"], "spec.policyTypes") {
                var out: [PolicyDirection] = []
                for (i, t) in types.enumerated() {
                    let path = "spec.policyTypes[\(i)]"
                    guard let s = p.string(t, path) else { continue }
                    if let d = p.policyType(s, path), !out.contains(d) { out.append(d) }
                }
                p.policyTypeCount(types.count)
                policy.policyTypes = out
            }
            for direction in PolicyDirection.allCases {
                let field = direction == .ingress ? "ingress" : "egress"
                let peersField = direction == .ingress ? "from" : "to"
                guard let rules = p.array(spec[field], "spec.\(field)") else { continue }
                var out: [PolicyRule] = []
                for (i, r) in rules.enumerated() {
                    let path = "spec.\(field)[\(i)]"
                    guard p.object(r, path, allowed: [peersField, "ports"]) != nil else { continue }
                    var rule = PolicyRule()
                    for (j, peer) in (p.array(r[peersField], "\(path).\(peersField)") ?? []).enumerated() {
                        if let v = p.peer(peer, "\(path).\(peersField)[\(j)]") { rule.peers.append(v) }
                    }
                    for (j, port) in (p.array(r["ports"], "\(path).ports") ?? []).enumerated() {
                        if let v = p.port(port, "\(path).ports[\(j)]") { rule.ports.append(v) }
                    }
                    out.append(rule)
                }
                if direction == .ingress { policy.ingress = out } else { policy.egress = out }
            }
        }
        if !p.problems.isEmpty {
            throw PolicyParseError(kind: "NetworkPolicy", object: "\(namespace)/\(name.isEmpty ? "(unnamed)" : name)",
                                   problems: p.problems)
        }
        self = policy
    }
}

// MARK: - The reader

/// Typed access to a `PolicyValue` tree that records problems instead of stopping at the
/// first one. Absent members and nulls read as nil.
///
/// The checks of values already typed (a label, an operator, a CIDR, a port) are methods of
/// their own, visible to the package: a NetworkPolicy that comes typed (from the Kubernetes
/// client) is converted by the same checks, with the same messages, without a detour through
/// a tree.
package struct TreeParser {
    package var problems: [FieldProblem] = []

    package init() {}

    package mutating func fail(_ path: String, _ message: String) { problems.append(FieldProblem(path, message)) }

    // MARK: Checks of typed values

    package mutating func labelKey(_ key: String, _ path: String) {
        if let problem = K8sSyntax.labelKeyProblem(key) { fail(path, problem) }
    }

    package mutating func labelValue(_ value: String, _ path: String) {
        if let problem = K8sSyntax.labelValueProblem(value) { fail(path, problem) }
    }

    /// Labels (or `matchLabels`) already read as strings; checked in key order.
    package mutating func labels(_ labels: [String: String], _ path: String) -> Labels {
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            labelKey(key, "\(path).\(key)")
            labelValue(value, "\(path).\(key)")
        }
        return labels
    }

    package mutating func policyType(_ text: String, _ path: String) -> PolicyDirection? {
        guard let d = PolicyDirection(rawValue: text) else {
            fail(path, "\"\(text)\" is not Ingress or Egress")
            return nil
        }
        return d
    }

    package mutating func policyTypeCount(_ count: Int) {
        if count > 2 { fail("spec.policyTypes", "may not list more than two types") }
    }

    /// `matchExpressions[].key`, at `ep` (the expression's path).
    package mutating func requirementKey(_ key: String, _ ep: String) {
        if key.isEmpty { fail("\(ep).key", "missing") }
        else { labelKey(key, "\(ep).key") }
    }

    /// The operator of an expression (nil: not given) and whether its values fit it.
    package mutating func requirement(key: String, operator opText: String?, values: [String], _ ep: String)
        -> LabelSelectorRequirement? {
        guard let opText else {
            fail("\(ep).operator", "missing (In, NotIn, Exists or DoesNotExist)")
            return nil
        }
        guard let op = LabelSelectorRequirement.Operator(rawValue: opText) else {
            fail("\(ep).operator", "\"\(opText)\" is not In, NotIn, Exists or DoesNotExist")
            return nil
        }
        let needsValues = op == .in || op == .notIn
        if needsValues && values.isEmpty {
            fail("\(ep).values", "must be non-empty for \(op.rawValue)")
            return nil
        }
        if !needsValues && !values.isEmpty {
            fail("\(ep).values", "must be empty for \(op.rawValue)")
            return nil
        }
        return LabelSelectorRequirement(key: key, op, values)
    }

    /// Which of podSelector, namespaceSelector and ipBlock a peer gives.
    package mutating func peerFields(_ given: [String], _ path: String) {
        if given.isEmpty { fail(path, "must specify podSelector, namespaceSelector or ipBlock") }
        if given.contains("ipBlock"), given.count > 1 {
            fail(path, "may not combine ipBlock with podSelector or namespaceSelector")
        }
    }

    /// `ipBlock.cidr`, at `path` (the ipBlock's).
    package mutating func blockCIDR(_ text: String, _ path: String) -> IPNetwork? {
        guard let cidr = IPNetwork(text) else {
            fail("\(path).cidr", "\"\(text)\" is not a CIDR (address/prefix length)")
            return nil
        }
        return cidr
    }

    /// One `ipBlock.except` entry, at `ep`: a strict subset of `cidr`.
    package mutating func blockExcept(_ text: String, of cidr: IPNetwork, _ ep: String) -> IPNetwork? {
        guard let e = IPNetwork(text) else { fail(ep, "\"\(text)\" is not a CIDR (address/prefix length)"); return nil }
        if e.family != cidr.family {
            fail(ep, "\(text) is not the same address family as cidr \(cidr.network)")
            return nil
        }
        if !(e.prefixLength > cidr.prefixLength && cidr.network.contains(e.first)) {
            fail(ep, "\(text) is not inside cidr \(cidr.network) (an except must be a strict subset)")
            return nil
        }
        return e
    }

    package mutating func protocolName(_ text: String, _ path: String) -> Proto? {
        guard let p = Proto(name: text) else { fail(path, "\"\(text)\" is not TCP, UDP or SCTP"); return nil }
        return p
    }

    package mutating func namedPort(_ name: String, _ path: String) -> PolicyPort.Port {
        if let problem = K8sSyntax.portNameProblem(name) { fail(path, problem) }
        return .named(name)
    }

    package mutating func portNumber(_ n: Int, _ path: String) -> UInt16? {
        guard (1...65535).contains(n) else { fail(path, "\(n) is not a port number (1 to 65535)"); return nil }
        return UInt16(n)
    }

    /// `endPort` given as `end`, with the port read (nil: absent or wrong) and whether one was given.
    package mutating func endPort(_ end: UInt16, port: PolicyPort.Port?, portGiven: Bool, _ path: String) -> UInt16? {
        switch port {
        case nil:
            if !portGiven { fail(path, "may not be given without port") }
            return nil
        case .named(let name):
            fail(path, "may not be given with the named port \"\(name)\"")
            return nil
        case .number(let start):
            if end < start { fail(path, "\(end) < port \(start)") }
            return end
        }
    }

    // MARK: Reading the tree

    private func present(_ v: PolicyValue?) -> PolicyValue? {
        guard let v, v != .null else { return nil }
        return v
    }

    /// The members of an object; nil (with a problem when it is something else) otherwise.
    /// With `allowed`, other member names are problems too.
    mutating func object(_ v: PolicyValue?, _ path: String, allowed: Set<String>?) -> PolicyValue? {
        guard let v = present(v) else { return nil }
        guard case .object(let members) = v else { fail(path, "expected a mapping, got \(v.brief)"); return nil }
        if let allowed {
            for m in members where !allowed.contains(m.key) {
                fail(path.isEmpty ? m.key : "\(path).\(m.key)", "is not a known field (known: \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        return v
    }

    mutating func array(_ v: PolicyValue?, _ path: String) -> [PolicyValue]? {
        guard let v = present(v) else { return nil }
        guard case .array(let items) = v else { fail(path, "expected a list, got \(v.brief)"); return nil }
        return items
    }

    mutating func string(_ v: PolicyValue?, _ path: String) -> String? {
        guard let v = present(v) else { return nil }
        guard case .string(let s) = v else { fail(path, "expected a string, got \(v.brief)"); return nil }
        return s
    }

    mutating func integer(_ v: PolicyValue?, _ path: String) -> Int? {
        guard let v = present(v) else { return nil }
        guard case .number(let n) = v, n.rounded() == n, abs(n) < 1e15 else {
            fail(path, "expected an integer, got \(v.brief)")
            return nil
        }
        return Int(n)
    }

    mutating func portNumber(_ v: PolicyValue?, _ path: String) -> UInt16? {
        guard let n = integer(v, path) else { return nil }
        return portNumber(n, path)
    }

    mutating func stringMap(_ v: PolicyValue?, _ path: String, values: Bool) -> Labels {
        guard let obj = object(v, path, allowed: nil), case .object(let members) = obj else { return [:] }
        var out: Labels = [:]
        for m in members {
            let p = "\(path).\(m.key)"
            labelKey(m.key, p)
            switch m.value {
            case .string(let s):
                if values { labelValue(s, p) }
                out[m.key] = s
            case .null: out[m.key] = ""
            default: fail(p, "expected a string, got \(m.value.brief)")
            }
        }
        return out
    }

    /// `metadata.name` (required), `metadata.namespace`, `metadata.labels`; checks `kind` and
    /// `apiVersion` when present.
    mutating func metadata(_ value: PolicyValue, kind: String, apiVersion: String, defaultNamespace: String?)
        -> (namespace: String, name: String, labels: Labels) {
        guard object(value, "", allowed: nil) != nil else {
            if value == .null { fail("", "expected a \(kind) object, got null") }
            return (defaultNamespace ?? "", "", [:])
        }
        if let k = string(value["kind"], "kind"), k != kind { fail("kind", "\"\(k)\" is not \(kind)") }
        if let v = string(value["apiVersion"], "apiVersion"), v != apiVersion {
            fail("apiVersion", "\"\(v)\" is not \(apiVersion)")
        }
        guard let meta = object(value["metadata"], "metadata", allowed: nil) else {
            fail("metadata", "missing")
            return (defaultNamespace ?? "", "", [:])
        }
        let name = string(meta["name"], "metadata.name") ?? ""
        if name.isEmpty { fail("metadata.name", "missing") }
        let namespace = string(meta["namespace"], "metadata.namespace") ?? defaultNamespace ?? ""
        return (namespace, name, stringMap(meta["labels"], "metadata.labels", values: true))
    }

    mutating func selector(_ v: PolicyValue?, _ path: String) -> LabelSelector? {
        guard let obj = object(v, path, allowed: ["matchLabels", "matchExpressions"]) else { return nil }
        var sel = LabelSelector(matchLabels: stringMap(obj["matchLabels"], "\(path).matchLabels", values: true))
        for (i, e) in (array(obj["matchExpressions"], "\(path).matchExpressions") ?? []).enumerated() {
            let ep = "\(path).matchExpressions[\(i)]"
            guard object(e, ep, allowed: ["key", "operator", "values"]) != nil else { continue }
            let key = string(e["key"], "\(ep).key") ?? ""
            requirementKey(key, ep)
            var values: [String] = []
            for (j, item) in (array(e["values"], "\(ep).values") ?? []).enumerated() {
                if let s = string(item, "\(ep).values[\(j)]") {
                    labelValue(s, "\(ep).values[\(j)]")
                    values.append(s)
                }
            }
            let opText = string(e["operator"], "\(ep).operator")
            if let r = requirement(key: key, operator: opText, values: values, ep) { sel.matchExpressions.append(r) }
        }
        return sel
    }

    mutating func peer(_ v: PolicyValue?, _ path: String) -> PolicyPeer? {
        guard let obj = object(v, path, allowed: ["podSelector", "namespaceSelector", "ipBlock"]) else {
            if present(v) == nil { fail(path, "must specify podSelector, namespaceSelector or ipBlock") }
            return nil
        }
        let before = problems.count
        var peer = PolicyPeer()
        peerFields(["podSelector", "namespaceSelector", "ipBlock"].filter { present(obj[$0]) != nil }, path)
        peer.podSelector = selector(obj["podSelector"], "\(path).podSelector")
        peer.namespaceSelector = selector(obj["namespaceSelector"], "\(path).namespaceSelector")
        if let b = object(obj["ipBlock"], "\(path).ipBlock", allowed: ["cidr", "except"]) {
            peer.ipBlock = ipBlock(b, "\(path).ipBlock")
        }
        return problems.count == before ? peer : nil
    }

    mutating func ipBlock(_ b: PolicyValue, _ path: String) -> IPBlock? {
        guard let text = string(b["cidr"], "\(path).cidr") else {
            if present(b["cidr"]) == nil { fail("\(path).cidr", "missing") }
            return nil
        }
        guard let cidr = blockCIDR(text, path) else { return nil }
        var except: [IPNetwork] = []
        var ok = true
        for (i, item) in (array(b["except"], "\(path).except") ?? []).enumerated() {
            let ep = "\(path).except[\(i)]"
            guard let s = string(item, ep), let e = blockExcept(s, of: cidr, ep) else { ok = false; continue }
            except.append(e)
        }
        return ok ? IPBlock(cidr: cidr, except: except) : nil
    }

    mutating func port(_ v: PolicyValue?, _ path: String) -> PolicyPort? {
        guard let obj = object(v, path, allowed: ["protocol", "port", "endPort"]) else { return nil }
        let before = problems.count
        var out = PolicyPort()
        if let s = string(obj["protocol"], "\(path).protocol"), let p = protocolName(s, "\(path).protocol") { out.proto = p }
        switch present(obj["port"]) {
        case nil: break
        case .string(let name)?: out.port = namedPort(name, "\(path).port")
        case let other?:
            if let n = portNumber(other, "\(path).port") { out.port = .number(n) }
        }
        if let end = portNumber(obj["endPort"], "\(path).endPort") {
            out.endPort = endPort(end, port: out.port, portGiven: present(obj["port"]) != nil, "\(path).endPort")
        }
        return problems.count == before ? out : nil
    }
}
