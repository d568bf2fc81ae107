import TrellisKube
import TrellisNet
import TrellisPolicy

// The Kubernetes client's NetworkPolicy (as the API returned it, already typed) converted to
// the policy engine's model field by field. The checks are the manifest parser's own
// (`TreeParser`'s checks of typed values, in the parser's order), so a policy the parser would
// refuse is refused here with the same problems and paths.

extension TrellisPolicy.NetworkPolicy {
    package init(_ kube: TrellisKube.NetworkPolicy) throws(PolicyParseError) {
        var p = TreeParser()
        let namespace = kube.metadata.namespace ?? "default"
        let name = kube.metadata.name ?? ""
        if name.isEmpty { p.fail("metadata.name", "missing") }
        _ = p.labels(kube.metadata.labels ?? [:], "metadata.labels")
        var policy = TrellisPolicy.NetworkPolicy(namespace: namespace, name: name)
        let spec = kube.spec
        policy.podSelector = p.selector(spec.podSelector, "spec.podSelector")
        if let types = spec.policyTypes {
            var out: [PolicyDirection] = []
            for (i, text) in types.enumerated() {
                if let d = p.policyType(text, "spec.policyTypes[\(i)]"), !out.contains(d) { out.append(d) }
            }
            p.policyTypeCount(types.count)
            policy.policyTypes = out
        }
        policy.ingress = (spec.ingress ?? []).enumerated().map { i, rule in
            p.rule(peers: rule.from ?? [], ports: rule.ports ?? [], "spec.ingress[\(i)]", peersField: "from")
        }
        policy.egress = (spec.egress ?? []).enumerated().map { i, rule in
            p.rule(peers: rule.to ?? [], ports: rule.ports ?? [], "spec.egress[\(i)]", peersField: "to")
        }
        if !p.problems.isEmpty {
            throw PolicyParseError(kind: "NetworkPolicy", object: "\(namespace)/\(name.isEmpty ? "(unnamed)" : name)",
                                   problems: p.problems)
        }
        self = policy
    }
}

extension TreeParser {
    mutating func rule(peers: [TrellisKube.NetworkPolicyPeer], ports: [TrellisKube.NetworkPolicyPort], _ path: String,
                       peersField: String) -> PolicyRule {
        var rule = PolicyRule()
        for (j, peer) in peers.enumerated() {
            if let v = self.peer(peer, "\(path).\(peersField)[\(j)]") { rule.peers.append(v) }
        }
        for (j, port) in ports.enumerated() {
            if let v = self.port(port, "\(path).ports[\(j)]") { rule.ports.append(v) }
        }
        return rule
    }

    mutating func selector(_ kube: TrellisKube.LabelSelector, _ path: String) -> TrellisPolicy.LabelSelector {
        var sel = TrellisPolicy.LabelSelector(matchLabels: labels(kube.matchLabels ?? [:], "\(path).matchLabels"))
        for (i, e) in (kube.matchExpressions ?? []).enumerated() {
            let ep = "\(path).matchExpressions[\(i)]"
            requirementKey(e.key, ep)
            let values = e.values ?? []
            for (j, value) in values.enumerated() { labelValue(value, "\(ep).values[\(j)]") }
            if let r = requirement(key: e.key, operator: e.operator, values: values, ep) { sel.matchExpressions.append(r) }
        }
        return sel
    }

    mutating func peer(_ kube: TrellisKube.NetworkPolicyPeer, _ path: String) -> PolicyPeer? {
        let before = problems.count
        let given = [("podSelector", kube.podSelector != nil), ("namespaceSelector", kube.namespaceSelector != nil),
                     ("ipBlock", kube.ipBlock != nil)].filter(\.1).map(\.0)
        peerFields(given, path)
        var peer = PolicyPeer()
        peer.podSelector = kube.podSelector.map { selector($0, "\(path).podSelector") }
        peer.namespaceSelector = kube.namespaceSelector.map { selector($0, "\(path).namespaceSelector") }
        if let block = kube.ipBlock { peer.ipBlock = ipBlock(block, "\(path).ipBlock") }
        return problems.count == before ? peer : nil
    }

    mutating func ipBlock(_ kube: TrellisKube.IPBlock, _ path: String) -> TrellisPolicy.IPBlock? {
        guard let cidr = blockCIDR(kube.cidr, path) else { return nil }
        var except: [IPNetwork] = []
        var ok = true
        for (i, text) in (kube.except ?? []).enumerated() {
            if let e = blockExcept(text, of: cidr, "\(path).except[\(i)]") { except.append(e) } else { ok = false }
        }
        return ok ? TrellisPolicy.IPBlock(cidr: cidr, except: except) : nil
    }

    mutating func port(_ kube: TrellisKube.NetworkPolicyPort, _ path: String) -> PolicyPort? {
        let before = problems.count
        var out = PolicyPort()
        if let text = kube.protocol, let proto = protocolName(text, "\(path).protocol") { out.proto = proto }
        switch kube.port {
        case nil: break
        case .string(let name)?: out.port = namedPort(name, "\(path).port")
        case .int(let n)?: if let number = portNumber(n, "\(path).port") { out.port = .number(number) }
        }
        if let n = kube.endPort, let end = portNumber(n, "\(path).endPort") {
            out.endPort = endPort(end, port: out.port, portGiven: kube.port != nil, "\(path).endPort")
        }
        return problems.count == before ? out : nil
    }
}
