import TrellisNet

/// A container port name with its protocol: what a named policy port refers to.
struct PortName: Hashable, Sendable {
    var name: String
    var proto: Proto
}

/// The ports one rule set allows towards one peer identity, merged.
struct PortAccumulator {
    var anyProtocol = false
    var ranges: [Proto: [ClosedRange<UInt16>]] = [:]

    mutating func add(_ proto: Proto, _ range: ClosedRange<UInt16>) {
        if !anyProtocol { ranges[proto, default: []].append(range) }
    }

    /// The fewest port matches covering exactly the union.
    func matches() -> [PortMatch] {
        if anyProtocol { return [.anyProtocol] }
        var out: [PortMatch] = []
        for proto in ranges.keys.sorted() {
            let sorted = ranges[proto]!.sorted { $0.lowerBound < $1.lowerBound }
            var merged: [ClosedRange<UInt16>] = []
            for r in sorted {
                if let last = merged.last, UInt32(r.lowerBound) <= UInt32(last.upperBound) + 1 {
                    merged[merged.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
                } else {
                    merged.append(r)
                }
            }
            for r in merged { out += PortPrefix.cover(r).map { .ports(proto, $0) } }
        }
        return out
    }
}

/// What a local pod's entries are compiled from: its label identity (namespace, labels, named
/// ports). Pods sharing it share their entries, except for the endpoint id in the key.
struct ClassPolicy: Sendable, Equatable {
    /// Keys with endpoint 0.
    var entries: Set<PolicyMapKey> = []
    var isolated: Set<PolicyDirection> = []
}

extension PolicyEngine {
    /// Everything one compile pass reuses: selector matches and per-namespace policy lists.
    /// Valid while identities and policies do not change (one `apply`).
    struct CompileCache {
        var peerMatches: [PeerCacheKey: [Identity]] = [:]
        var policiesByNamespace: [String: [NetworkPolicy]] = [:]
    }

    struct PeerCacheKey: Hashable {
        var namespace: String
        var podSelector: LabelSelector?
        var namespaceSelector: LabelSelector?
    }

    /// The entries of pods with label identity `cls`.
    func compileClass(_ cls: Identity, cache: inout CompileCache) -> ClassPolicy {
        guard let key = labelIDs.key(cls) else { return ClassPolicy() }
        var out = ClassPolicy()
        let policies: [NetworkPolicy]
        if let p = cache.policiesByNamespace[key.namespace] { policies = p } else {
            policies = cluster.policies(in: key.namespace)
            cache.policiesByNamespace[key.namespace] = policies
        }
        for direction in PolicyDirection.allCases {
            let isolating = policies.filter { $0.applies(to: direction) && $0.podSelector.matches(key.podLabels) }
            if isolating.isEmpty {
                out.entries.insert(PolicyMapKey(endpoint: 0, direction: direction, peer: ReservedIdentity.any, ports: .anyProtocol))
                continue
            }
            out.isolated.insert(direction)
            var acc: [Identity: PortAccumulator] = [:]
            if direction == .ingress { acc[ReservedIdentity.host, default: .init()].anyProtocol = true }
            for policy in isolating {
                for rule in policy.rules(direction) {
                    add(rule, of: policy, direction, subjectPorts: key.namedPorts, into: &acc, cache: &cache)
                }
            }
            for (peer, ports) in acc {
                for m in ports.matches() {
                    out.entries.insert(PolicyMapKey(endpoint: 0, direction: direction, peer: peer, ports: m))
                }
            }
        }
        return out
    }

    private func add(_ rule: PolicyRule, of policy: NetworkPolicy, _ direction: PolicyDirection,
                     subjectPorts: [NamedPort], into acc: inout [Identity: PortAccumulator], cache: inout CompileCache) {
        var peers: [Identity] = []
        if rule.peers.isEmpty {
            peers = [ReservedIdentity.any]
        } else {
            var seen = Set<Identity>()
            for peer in rule.peers {
                let ids: [Identity]
                if let block = peer.ipBlock {
                    ids = Array(cidrIDsByBlock[block] ?? [])
                } else {
                    ids = selectorMatches(peer, policyNamespace: policy.namespace, cache: &cache)
                }
                for id in ids where seen.insert(id).inserted { peers.append(id) }
            }
        }
        if rule.ports.isEmpty {
            for id in peers { acc[id, default: .init()].anyProtocol = true }
            return
        }
        for port in rule.ports {
            switch port.port {
            case nil, .number:
                let range = port.numericRange!
                for id in peers { acc[id, default: .init()].add(port.proto, range) }
            case .named(let name):
                if direction == .ingress {
                    // Resolved at the destination: the selected pod itself.
                    for np in subjectPorts where np.name == name && np.proto == port.proto {
                        for id in peers { acc[id, default: .init()].add(port.proto, np.port...np.port) }
                    }
                } else if rule.peers.isEmpty {
                    // Any destination that is a pod with this port: every label identity having it.
                    for id in idsByNamedPort[PortName(name: name, proto: port.proto)] ?? [] {
                        for np in namedPorts(of: id) where np.name == name && np.proto == port.proto {
                            acc[id, default: .init()].add(port.proto, np.port...np.port)
                        }
                    }
                } else {
                    // Resolved at each destination identity (its pods share their ports).
                    for id in peers {
                        for np in namedPorts(of: id) where np.name == name && np.proto == port.proto {
                            acc[id, default: .init()].add(port.proto, np.port...np.port)
                        }
                    }
                }
            }
        }
    }

    func namedPorts(of id: Identity) -> [NamedPort] {
        if let k = labelIDs.key(id) { return k.namedPorts }
        if let k = cidrIDs.key(id) { return k.namedPorts }
        return []
    }

    /// The label identities a pod/namespace selector peer of a policy in `policyNamespace`
    /// selects, through the label index.
    func selectorMatches(_ peer: PolicyPeer, policyNamespace: String, cache: inout CompileCache) -> [Identity] {
        let ck = PeerCacheKey(namespace: policyNamespace, podSelector: peer.podSelector, namespaceSelector: peer.namespaceSelector)
        if let hit = cache.peerMatches[ck] { return hit }
        var namespaces = Set<String>()
        if let nsSel = peer.namespaceSelector {
            for ns in idsByNamespace.keys where nsSel.matches(cluster.namespaceLabels(ns)) { namespaces.insert(ns) }
        } else {
            namespaces.insert(policyNamespace)
        }
        let podSel = peer.podSelector ?? .everything
        var candidates: Set<Identity>?
        func consider(_ s: Set<Identity>) { if candidates == nil || s.count < candidates!.count { candidates = s } }
        for (k, v) in podSel.matchLabels { consider(idsByLabel[k]?[v] ?? []) }
        for r in podSel.matchExpressions {
            switch r.operator {
            case .in: consider(r.values.reduce(into: Set<Identity>()) { $0.formUnion(idsByLabel[r.key]?[$1] ?? []) })
            case .exists: consider((idsByLabel[r.key] ?? [:]).values.reduce(into: Set<Identity>()) { $0.formUnion($1) })
            case .notIn, .doesNotExist: break
            }
        }
        var out: [Identity] = []
        if let candidates {
            for id in candidates {
                guard let key = labelIDs.key(id), namespaces.contains(key.namespace), podSel.matches(key.podLabels) else { continue }
                out.append(id)
            }
        } else {
            for ns in namespaces {
                for id in idsByNamespace[ns] ?? [] {
                    if let key = labelIDs.key(id), podSel.matches(key.podLabels) { out.append(id) }
                }
            }
        }
        out.sort()
        cache.peerMatches[ck] = out
        return out
    }

    /// Whether some rule of `policy` could produce an entry for the label identity `key`: a
    /// selector peer selecting it, or an egress rule without peers naming one of its ports.
    static func policy(_ policy: NetworkPolicy, refersTo key: LabelIdentityKey) -> Bool {
        for direction in policy.effectivePolicyTypes {
            for rule in policy.rules(direction) {
                if rule.peers.isEmpty {
                    if direction == .egress, rule.ports.contains(where: { p in
                        if case .named(let n) = p.port { return key.namedPorts.contains { $0.name == n && $0.proto == p.proto } }
                        return false
                    }) { return true }
                    continue
                }
                for peer in rule.peers where peer.ipBlock == nil {
                    if let ns = peer.namespaceSelector {
                        guard ns.matches(key.effectiveNamespaceLabels) else { continue }
                    } else if key.namespace != policy.namespace {
                        continue
                    }
                    if (peer.podSelector ?? .everything).matches(key.podLabels) { return true }
                }
            }
        }
        return false
    }

    /// Whether some rule of `policy` names one of the ipBlocks of a CIDR identity.
    static func policy(_ policy: NetworkPolicy, refersTo key: CIDRIdentityKey) -> Bool {
        for direction in policy.effectivePolicyTypes {
            for rule in policy.rules(direction) {
                for peer in rule.peers {
                    if let b = peer.ipBlock, key.blocks.contains(b) { return true }
                }
            }
        }
        return false
    }

    /// The distinct ipBlocks of the directions a policy applies to.
    static func blocks(of policy: NetworkPolicy) -> Set<IPBlock> {
        var out = Set<IPBlock>()
        for direction in policy.effectivePolicyTypes {
            for rule in policy.rules(direction) { for peer in rule.peers { if let b = peer.ipBlock { out.insert(b) } } }
        }
        return out
    }
}
