import TrellisNet

/// A change to the objects policy depends on. Upserts are `kubectl apply`-like: a new object
/// or a new version replacing the old one.
public enum PolicyChange: Sendable, Hashable, CustomStringConvertible {
    case upsertPod(PodInfo)
    case removePod(PodKey)
    case upsertNamespace(NamespaceInfo)
    case removeNamespace(String)
    case upsertPolicy(NetworkPolicy)
    case removePolicy(PolicyKey)
    case upsertNode(NodeInfo)
    case removeNode(String)

    public var description: String {
        switch self {
        case .upsertPod(let p): "upsert pod \(p.key)"
        case .removePod(let k): "remove pod \(k)"
        case .upsertNamespace(let n): "upsert namespace \(n.name)"
        case .removeNamespace(let n): "remove namespace \(n)"
        case .upsertPolicy(let p): "upsert policy \(p.key)"
        case .removePolicy(let k): "remove policy \(k)"
        case .upsertNode(let n): "upsert node \(n.name)"
        case .removeNode(let n): "remove node \(n)"
        }
    }
}

/// What one local pod's policy compiles to, for `trellisctl` and tests.
public struct EndpointPolicy: Sendable, Hashable {
    public var pod: PodKey
    public var endpoint: EndpointID
    public var identity: Identity
    public var isolatedIngress: Bool
    public var isolatedEgress: Bool
    /// Sorted.
    public var entries: [PolicyMapKey]

    /// Whether a direction has the allow-all shortcut (not isolated, or a rule with no peers
    /// and no ports).
    public func allowsAll(_ direction: PolicyDirection) -> Bool {
        entries.contains { $0.direction == direction && $0.peer == ReservedIdentity.any && $0.ports == .anyProtocol }
    }
}

/// The NetworkPolicy state of one node and its compiled form: `trellis_ipcache` entries for
/// every address, and `trellis_policy` entries for the node's pods (all pods when `localNode`
/// is nil). See `PolicyMapKey` and `IPCacheEntry` for the entries and `PolicyDiff` for the update order.
///
/// A full compile is `init(localNode:policies:pods:namespaces:nodes:)`, then `policyMap` and
/// `ipcache`. Each `apply` updates the state and returns the map writes that change brings,
/// recomputing only what it touches: the identities of the pods it changes, the ipcache
/// entries of their addresses (and of the prefixes and addresses inside ipBlocks it adds or
/// removes), and the entries of the pods selected by the policies that refer to an identity
/// that appeared or disappeared.
///
/// Cost: selectors are matched against identities (distinct label sets), not pods, through a
/// label index, with one cache per pass; pods sharing an identity share their compiled entries.
public struct PolicyEngine: Sendable {
    /// The node whose pods get policy entries and whose addresses are `host`; nil: every pod,
    /// and no `host` entries (for offline use).
    public let localNode: String?
    public private(set) var cluster = PolicyCluster()
    /// The ipcache content.
    public private(set) var ipcache: [IPNetwork: IPCacheEntry] = [:]

    // Identities.
    var labelIDs = IdentityTable<LabelIdentityKey>(range: ReservedIdentity.labelRange)
    var cidrIDs = IdentityTable<CIDRIdentityKey>(range: ReservedIdentity.cidrRange)
    var podIdentity: [PodKey: Identity] = [:]
    var idsByNamespace: [String: Set<Identity>] = [:]
    var idsByLabel: [String: [String: Set<Identity>]] = [:]
    var idsByNamedPort: [PortName: Set<Identity>] = [:]
    var cidrIDsByBlock: [IPBlock: Set<Identity>] = [:]

    // ipBlocks and the prefixes they name.
    var blockRefs: [IPBlock: Int] = [:]
    var blocksByCIDR: [IPNetwork: Set<IPBlock>] = [:]
    var prefixRefs: [IPNetwork: Int] = [:]
    var membership: [IPNetwork: [IPBlock]] = [:]
    var prefixLengths: [IPAddress.Family: [Int]] = [:]

    // Local endpoints and their compiled entries.
    var endpointIDs: [PodKey: EndpointID] = [:]
    var endpointClass: [EndpointID: Identity] = [:]
    var classEndpoints: [Identity: Set<EndpointID>] = [:]
    var localClassesByNamespace: [String: Set<Identity>] = [:]
    var classPolicies: [Identity: ClassPolicy] = [:]
    var nextEndpoint: EndpointID = 1
    /// What a restarted agent found programmed: endpoint ids and identity numbers it keeps.
    let adoption: PolicyAdoption

    public init(localNode: String? = nil) {
        self.localNode = localNode
        self.adoption = PolicyAdoption()
    }

    /// A full compile. With `adopting` (what a restarted agent reads from the pinned maps),
    /// local pods keep their endpoint ids and identities keep their numbers where the pinned
    /// fingerprint shows the same label set (or ipBlock membership); new ones are numbered
    /// above every number found programmed, so that none changes meaning. `PolicyDiff.between`
    /// the maps and the new compile then writes only what changed while no agent ran.
    public init(localNode: String? = nil, policies: [NetworkPolicy] = [], pods: [PodInfo] = [],
                namespaces: [NamespaceInfo] = [], nodes: [NodeInfo] = [], adopting: PolicyAdoption = PolicyAdoption()) {
        self.localNode = localNode
        self.adoption = adopting
        labelIDs.avoid(adopting.usedIdentities)
        cidrIDs.avoid(adopting.usedIdentities)
        if let top = adopting.usedEndpointIDs.max(), top >= nextEndpoint { nextEndpoint = top + 1 }
        var work = Work()
        for n in namespaces { cluster.upsert(n) }
        for n in nodes { cluster.upsert(n) }
        for p in pods { cluster.upsert(p); work.oldPods[p.key] = .some(nil) }
        for p in policies { cluster.upsert(p); work.oldPolicies[p.key] = .some(nil) }
        work.hostIPsBefore = []
        _ = process(work, wantDiff: false)
    }

    // MARK: - Queries

    /// The whole `trellis_policy` content.
    public var policyMap: Set<PolicyMapKey> {
        var out = Set<PolicyMapKey>()
        for (ep, cls) in endpointClass {
            for k in classPolicies[cls]?.entries ?? [] {
                var key = k
                key.endpoint = ep
                out.insert(key)
            }
        }
        return out
    }

    /// Every identity in use and its fingerprint (the content of `trellis_identities`).
    public var identityFingerprints: [Identity: UInt64] {
        var out: [Identity: UInt64] = [:]
        for (id, k) in labelIDs.keys { out[id] = k.fingerprint }
        for (id, k) in cidrIDs.keys { out[id] = k.fingerprint }
        return out
    }

    /// How many entries `policyMap` has (without building it).
    public var policyEntryCount: Int {
        endpointClass.values.reduce(0) { $0 + (classPolicies[$1]?.entries.count ?? 0) }
    }

    /// Local pods and their policy endpoint ids.
    public var endpoints: [PodKey: EndpointID] { endpointIDs }

    public func endpointID(of pod: PodKey) -> EndpointID? { endpointIDs[pod] }

    /// The label identity of a pod.
    public func identity(of pod: PodKey) -> Identity? { podIdentity[pod] }

    /// The label set behind an identity (`["app=web", "ns:name=x"]`; a CIDR identity's ipBlocks
    /// as `cidr:10.0.0.0/8 except 10.1.0.0/16`); nil when the number is not in use.
    public func labels(of identity: Identity) -> [String]? {
        if let name = ReservedIdentity.name(identity) { return ["reserved:\(name)"] }
        return labelIDs.key(identity)?.labels ?? cidrIDs.key(identity)?.labels
    }

    /// `256 (app=web, ns:name=x)`, `host`, ...
    public func describe(_ identity: Identity) -> String {
        if let name = ReservedIdentity.name(identity) { return name }
        guard let l = labels(of: identity) else { return "\(identity) (unknown)" }
        return "\(identity) (\(l.joined(separator: ", ")))"
    }

    public var identityCount: (label: Int, cidr: Int) { (labelIDs.count, cidrIDs.count) }

    /// The compiled policy of a local pod.
    public func compiledPolicy(for pod: PodKey) -> EndpointPolicy? {
        guard let ep = endpointIDs[pod], let cls = endpointClass[ep], let cp = classPolicies[cls] else { return nil }
        let entries = cp.entries.map { k -> PolicyMapKey in var key = k; key.endpoint = ep; return key }.sorted()
        return EndpointPolicy(pod: pod, endpoint: ep, identity: cls, isolatedIngress: cp.isolated.contains(.ingress),
                              isolatedEgress: cp.isolated.contains(.egress), entries: entries)
    }

    /// The reference verdict (see `PolicyCluster.verdict`).
    public func verdict(from source: Endpoint, to destination: Endpoint, port: UInt16, proto: Proto,
                        family: IPAddress.Family? = nil) -> Verdict {
        cluster.verdict(from: source, to: destination, port: port, proto: proto, family: family)
    }

    // MARK: - Changes

    /// Applies one change and returns the map writes it brings, ordered (see `PolicyDiff`).
    /// Re-applying an unchanged object returns an empty diff.
    public mutating func apply(_ change: PolicyChange) -> PolicyDiff {
        var work = Work()
        switch change {
        case .upsertPod(let pod):
            let old = cluster.upsert(pod)
            if old == pod { return PolicyDiff() }
            work.oldPods[pod.key] = .some(old)
        case .removePod(let key):
            guard let old = cluster.removePod(key) else { return PolicyDiff() }
            work.oldPods[key] = .some(old)
        case .upsertNamespace(let ns):
            let old = cluster.upsert(ns)
            if old == ns { return PolicyDiff() }
            for pod in cluster.pods(in: ns.name) { work.oldPods[pod.key] = .some(pod) }
        case .removeNamespace(let name):
            guard cluster.removeNamespace(name) != nil else { return PolicyDiff() }
            for pod in cluster.pods(in: name) { work.oldPods[pod.key] = .some(pod) }
        case .upsertPolicy(let policy):
            let old = cluster.upsert(policy)
            if old == policy { return PolicyDiff() }
            work.oldPolicies[policy.key] = .some(old)
        case .removePolicy(let key):
            guard let old = cluster.removePolicy(key) else { return PolicyDiff() }
            work.oldPolicies[key] = .some(old)
        case .upsertNode(let node):
            let hostBefore = hostIPs
            if cluster.upsert(node) == node { return PolicyDiff() }
            work.hostIPsBefore = hostBefore
        case .removeNode(let name):
            let hostBefore = hostIPs
            guard cluster.removeNode(name) != nil else { return PolicyDiff() }
            work.hostIPsBefore = hostBefore
        }
        return process(work, wantDiff: true)
    }

    /// What one change touches. Double optionals: `.some(nil)` = did not exist before.
    struct Work {
        var oldPods: [PodKey: PodInfo?] = [:]
        var oldPolicies: [PolicyKey: NetworkPolicy?] = [:]
        var hostIPsBefore: Set<IPAddress>?
    }

    var hostIPs: Set<IPAddress> {
        guard let localNode, let node = cluster.nodes[localNode] else { return [] }
        return Set(node.ips)
    }

    func isLocal(_ pod: PodInfo) -> Bool { localNode == nil || pod.node == localNode }

    // MARK: - The pass

    private mutating func process(_ work: Work, wantDiff: Bool) -> PolicyDiff {
        var diff = PolicyDiff()

        // 1. Label identities of the touched pods (retain the new before releasing the old, so
        //    a label set that stays in use keeps its number).
        var bornLabels = Set<Identity>(), diedLabels: [Identity: LabelIdentityKey] = [:]
        var oldIdentity: [PodKey: Identity] = [:]
        for key in work.oldPods.keys {
            if let old = podIdentity[key] { oldIdentity[key] = old }
            if let pod = cluster.pods[key] {
                let ik = LabelIdentityKey(namespace: pod.namespace, podLabels: pod.labels,
                                          namespaceLabels: cluster.namespaces[pod.namespace]?.labels ?? [:],
                                          namedPorts: pod.namedPorts)
                let (id, born) = labelIDs.retain(ik, preferring: adoption.identity(fingerprint: ik.fingerprint))
                podIdentity[key] = id
                if born { bornLabels.insert(id); indexLabelIdentity(id, ik, add: true) }
            } else {
                podIdentity[key] = nil
            }
        }
        for old in oldIdentity.values {
            guard let ik = labelIDs.key(old) else { continue }
            if labelIDs.release(old) {
                diedLabels[old] = ik
                indexLabelIdentity(old, ik, add: false)
            }
        }

        // 2. ipBlocks and their prefixes.
        var changedBlocks = Set<IPBlock>()
        if !work.oldPolicies.isEmpty {
            var delta: [IPBlock: Int] = [:]
            for (key, old) in work.oldPolicies {
                if let old { for b in Self.blocks(of: old) { delta[b, default: 0] -= 1 } }
                if let new = cluster.policies[key] { for b in Self.blocks(of: new) { delta[b, default: 0] += 1 } }
            }
            for (b, d) in delta where d != 0 {
                let before = blockRefs[b] ?? 0
                let after = before + d
                blockRefs[b] = after > 0 ? after : nil
                if (before == 0) != (after == 0) { changedBlocks.insert(b) }
            }
        }
        var affectedKeys = Set<IPNetwork>()
        if !changedBlocks.isEmpty {
            for b in changedBlocks {
                let alive = blockRefs[b] != nil
                if alive { blocksByCIDR[b.cidr, default: []].insert(b) } else {
                    blocksByCIDR[b.cidr]?.remove(b)
                    if blocksByCIDR[b.cidr]?.isEmpty == true { blocksByCIDR[b.cidr] = nil }
                }
                for p in [b.cidr] + b.except {
                    let n = (prefixRefs[p] ?? 0) + (alive ? 1 : -1)
                    prefixRefs[p] = n > 0 ? n : nil
                    affectedKeys.insert(p)
                }
            }
            for fam in [IPAddress.Family.v4, .v6] {
                prefixLengths[fam] = Set(prefixRefs.keys.filter { $0.family == fam }.map(\.prefixLength)).sorted(by: >)
            }
            // Memberships inside the changed blocks' cidrs, and every address there.
            let regions = Set(changedBlocks.map(\.cidr))
            for p in prefixRefs.keys where regions.contains(where: { $0.covers(p) }) { affectedKeys.insert(p) }
            for p in affectedKeys {
                if prefixRefs[p] != nil { membership[p] = blocksContaining(p) } else { membership[p] = nil }
            }
            for ip in cluster.podsByIP.keys where regions.contains(where: { $0.contains(ip) }) { affectedKeys.insert(.host(ip)) }
            for ip in hostIPs where regions.contains(where: { $0.contains(ip) }) { affectedKeys.insert(.host(ip)) }
        }

        // 3. ipcache entries of every touched key; CIDR identities referenced by entries.
        for (key, old) in work.oldPods {
            for ip in (old?.ips ?? []) + (cluster.pods[key]?.ips ?? []) { affectedKeys.insert(.host(ip)) }
        }
        if let before = work.hostIPsBefore {
            for ip in before.union(hostIPs) { affectedKeys.insert(.host(ip)) }
        }
        var bornCIDRs = Set<Identity>(), diedCIDRs: [Identity: CIDRIdentityKey] = [:]
        var released: [Identity] = []
        var upserts: [(IPNetwork, IPCacheEntry)] = [], deletes: [IPNetwork] = []
        for prefix in affectedKeys {
            let current = ipcache[prefix]
            var wanted: IPCacheEntry?
            if let (identity, cidrKey) = wantedEntry(prefix) {
                var cid: Identity = 0
                if let cidrKey {
                    let (id, born) = cidrIDs.retain(cidrKey, preferring: adoption.identity(fingerprint: cidrKey.fingerprint))
                    cid = id
                    if born { bornCIDRs.insert(id); indexCIDRIdentity(id, cidrKey, add: true) }
                }
                wanted = IPCacheEntry(identity: identity ?? cid, cidrIdentity: cid)
            }
            if let c = current, c.cidrIdentity != 0 { released.append(c.cidrIdentity) }
            if wanted != current {
                if let wanted { upserts.append((prefix, wanted)); ipcache[prefix] = wanted }
                else { deletes.append(prefix); ipcache[prefix] = nil }
            }
        }
        for id in released {
            guard let ck = cidrIDs.key(id) else { continue }
            if cidrIDs.release(id) { diedCIDRs[id] = ck; indexCIDRIdentity(id, ck, add: false) }
        }
        for id in bornLabels { if let k = labelIDs.key(id) { diff.identitiesBorn[id] = k.fingerprint } }
        for id in bornCIDRs { if let k = cidrIDs.key(id) { diff.identitiesBorn[id] = k.fingerprint } }
        diff.identitiesDied = (Array(diedLabels.keys) + Array(diedCIDRs.keys)).filter { diff.identitiesBorn[$0] == nil }.sorted()
        diff.ipcacheUpserts = upserts.sorted { IPNetwork.specificFirst($0.0, $1.0) }.map { (prefix: $0.0, entry: $0.1) }
        diff.ipcacheDeletes = deletes.sorted(by: IPNetwork.generalFirst)

        // 4. Local endpoints of the touched pods.
        var oldClassOf: [EndpointID: Identity] = [:]
        var touchedEndpoints = Set<EndpointID>()
        for key in work.oldPods.keys {
            let pod = cluster.pods[key]
            let ep = endpointIDs[key]
            if let ep, let cls = endpointClass[ep] { oldClassOf[ep] = cls }
            if let pod, isLocal(pod), let cls = podIdentity[key] {
                let id: EndpointID
                if let ep { id = ep } else {
                    if let kept = adoption.endpointIDs[key], endpointClass[kept] == nil,
                       !endpointIDs.values.contains(kept) {
                        id = kept
                    } else {
                        id = nextEndpoint
                        nextEndpoint += 1
                    }
                    endpointIDs[key] = id
                    diff.endpointsAdded[key] = id
                }
                if let old = endpointClass[id], old != cls { detach(id, from: old) }
                if endpointClass[id] != cls { attach(id, to: cls, namespace: pod.namespace) }
                touchedEndpoints.insert(id)
            } else if let ep {
                if let old = endpointClass[ep] { detach(ep, from: old) }
                endpointIDs[key] = nil
                diff.endpointsRemoved[key] = ep
                touchedEndpoints.insert(ep)
            }
        }

        // 5. Classes to recompile: those of policies changed, of policies referring to an
        //    identity that appeared or disappeared, and classes that are new here.
        var dirty = Set<Identity>()
        func markSelected(by policy: NetworkPolicy) {
            for cls in localClassesByNamespace[policy.namespace] ?? [] {
                if let k = labelIDs.key(cls), policy.podSelector.matches(k.podLabels) { dirty.insert(cls) }
            }
        }
        for (key, old) in work.oldPolicies {
            if let old { markSelected(by: old) }
            if let new = cluster.policies[key] { markSelected(by: new) }
        }
        if !bornLabels.isEmpty || !diedLabels.isEmpty || !bornCIDRs.isEmpty || !diedCIDRs.isEmpty {
            let labelKeys = bornLabels.compactMap { labelIDs.key($0) } + Array(diedLabels.values)
            let cidrKeys = bornCIDRs.compactMap { cidrIDs.key($0) } + Array(diedCIDRs.values)
            for policy in cluster.policies.values where work.oldPolicies[policy.key] == nil {
                if labelKeys.contains(where: { Self.policy(policy, refersTo: $0) })
                    || cidrKeys.contains(where: { Self.policy(policy, refersTo: $0) }) {
                    markSelected(by: policy)
                }
            }
        }
        for cls in classEndpoints.keys where classPolicies[cls] == nil { dirty.insert(cls) }

        // 6. Recompile.
        var cache = CompileCache()
        var oldPolicies: [Identity: ClassPolicy] = [:]
        for cls in dirty {
            if let old = classPolicies[cls] { oldPolicies[cls] = old }
            classPolicies[cls] = classEndpoints[cls] == nil ? nil : compileClass(cls, cache: &cache)
        }
        // Classes left without endpoints.
        for cls in Set(oldClassOf.values) where classEndpoints[cls] == nil {
            if let old = classPolicies.removeValue(forKey: cls) { oldPolicies[cls] = old }
        }
        guard wantDiff else { return diff }

        // 7. Policy map writes, per endpoint: (old class before) -> (class now).
        var affected = touchedEndpoints
        for cls in dirty { affected.formUnion(classEndpoints[cls] ?? []) }
        var upsertKeys: [PolicyMapKey] = [], deleteKeys: [PolicyMapKey] = []
        struct Pair: Hashable { var old: Identity?; var new: Identity? }
        var deltas: [Pair: (add: [PolicyMapKey], del: [PolicyMapKey])] = [:]
        let added = Set(diff.endpointsAdded.values)
        for ep in affected {
            let wasLocal = !added.contains(ep)
            let oldCls = wasLocal ? (oldClassOf[ep] ?? endpointClass[ep]) : nil
            let newCls = endpointClass[ep]
            let pair = Pair(old: oldCls, new: newCls)
            let delta: (add: [PolicyMapKey], del: [PolicyMapKey])
            if let d = deltas[pair] { delta = d } else {
                let before = oldCls.flatMap { oldPolicies[$0] ?? classPolicies[$0] }?.entries ?? []
                let after = newCls.flatMap { classPolicies[$0] }?.entries ?? []
                delta = (Array(after.subtracting(before)), Array(before.subtracting(after)))
                deltas[pair] = delta
            }
            for k in delta.add { var key = k; key.endpoint = ep; upsertKeys.append(key) }
            for k in delta.del { var key = k; key.endpoint = ep; deleteKeys.append(key) }
        }
        diff.policyUpserts = upsertKeys.sorted()
        diff.policyDeletes = deleteKeys.sorted()
        return diff
    }

    // MARK: - Pieces

    /// The entry an ipcache key should have: (identity, CIDR identity key). A nil identity
    /// means "the CIDR identity itself" (a prefix entry). Nil: no entry.
    private func wantedEntry(_ prefix: IPNetwork) -> (Identity?, CIDRIdentityKey?)? {
        if prefix.prefixLength == prefix.address.bitWidth {
            let ip = prefix.address
            if hostIPs.contains(ip) {
                return (ReservedIdentity.host, cidrKey(blocksAround(ip), []))
            }
            if let pod = cluster.podOwning(ip), let id = podIdentity[pod.key] {
                return (id, cidrKey(blocksAround(ip), pod.namedPorts))
            }
        }
        guard prefixRefs[prefix] != nil else { return nil }
        let blocks = membership[prefix] ?? []
        if blocks.isEmpty { return (ReservedIdentity.world, nil) }
        return (nil, cidrKey(blocks, []))
    }

    private func cidrKey(_ blocks: [IPBlock], _ ports: [NamedPort]) -> CIDRIdentityKey? {
        blocks.isEmpty ? nil : CIDRIdentityKey(blocks: blocks, namedPorts: ports)
    }

    /// The ipBlocks containing every address of `prefix` (a prefix the blocks name).
    private func blocksContaining(_ prefix: IPNetwork) -> [IPBlock] {
        var out: [IPBlock] = []
        for len in 0...prefix.prefixLength {
            let cidr = IPNetwork(address: prefix.address, prefixLength: len)!.network
            for b in blocksByCIDR[cidr] ?? [] where !b.except.contains(where: { $0.covers(prefix) }) {
                out.append(b)
            }
        }
        return out.sorted { $0.description < $1.description }
    }

    /// The ipBlocks containing an address: the membership of the longest prefix around it.
    private func blocksAround(_ ip: IPAddress) -> [IPBlock] {
        for len in prefixLengths[ip.family] ?? [] {
            let p = IPNetwork(address: ip, prefixLength: len)!.network
            if prefixRefs[p] != nil { return membership[p] ?? [] }
        }
        return []
    }

    private mutating func indexLabelIdentity(_ id: Identity, _ key: LabelIdentityKey, add: Bool) {
        func update(_ set: inout Set<Identity>) { if add { set.insert(id) } else { set.remove(id) } }
        update(&idsByNamespace[key.namespace, default: []])
        if idsByNamespace[key.namespace]?.isEmpty == true { idsByNamespace[key.namespace] = nil }
        for (k, v) in key.podLabels {
            update(&idsByLabel[k, default: [:]][v, default: []])
            if idsByLabel[k]?[v]?.isEmpty == true { idsByLabel[k]?[v] = nil }
            if idsByLabel[k]?.isEmpty == true { idsByLabel[k] = nil }
        }
        for np in key.namedPorts {
            let pn = PortName(name: np.name, proto: np.proto)
            update(&idsByNamedPort[pn, default: []])
            if idsByNamedPort[pn]?.isEmpty == true { idsByNamedPort[pn] = nil }
        }
    }

    private mutating func indexCIDRIdentity(_ id: Identity, _ key: CIDRIdentityKey, add: Bool) {
        for b in key.blocks {
            if add { cidrIDsByBlock[b, default: []].insert(id) } else {
                cidrIDsByBlock[b]?.remove(id)
                if cidrIDsByBlock[b]?.isEmpty == true { cidrIDsByBlock[b] = nil }
            }
        }
    }

    private mutating func attach(_ ep: EndpointID, to cls: Identity, namespace: String) {
        endpointClass[ep] = cls
        classEndpoints[cls, default: []].insert(ep)
        localClassesByNamespace[namespace, default: []].insert(cls)
    }

    private mutating func detach(_ ep: EndpointID, from cls: Identity) {
        endpointClass[ep] = nil
        classEndpoints[cls]?.remove(ep)
        if classEndpoints[cls]?.isEmpty == true {
            classEndpoints[cls] = nil
            if let ns = labelIDs.key(cls)?.namespace ?? namespaceOfDeadClass(cls) {
                localClassesByNamespace[ns]?.remove(cls)
                if localClassesByNamespace[ns]?.isEmpty == true { localClassesByNamespace[ns] = nil }
            }
        }
    }

    /// A class whose identity was released in this pass: find it in the namespace index.
    private func namespaceOfDeadClass(_ cls: Identity) -> String? {
        localClassesByNamespace.first { $0.value.contains(cls) }?.key
    }
}

/// What a restarted agent finds in the pinned maps, so that a new engine keeps endpoint ids
/// and identity numbers and gives no programmed number a new meaning (see
/// `PolicyEngine.init(...adopting:)`).
public struct PolicyAdoption: Sendable {
    /// The endpoint id each local pod's endpoint entries carry.
    public var endpointIDs: [PodKey: EndpointID]
    /// The identities of `trellis_identities`: number -> fingerprint of its labels.
    public var identityFingerprints: [Identity: UInt64]
    /// Every identity in the programmed maps (ipcache, policy peers, identities).
    public var usedIdentities: Set<Identity>
    /// Every endpoint id in the programmed maps.
    public var usedEndpointIDs: Set<EndpointID>
    private let byFingerprint: [UInt64: Identity]

    public init(endpointIDs: [PodKey: EndpointID] = [:], identityFingerprints: [Identity: UInt64] = [:],
                usedIdentities: Set<Identity> = [], usedEndpointIDs: Set<EndpointID> = []) {
        self.endpointIDs = endpointIDs
        self.identityFingerprints = identityFingerprints
        self.usedIdentities = usedIdentities.union(identityFingerprints.keys)
        self.usedEndpointIDs = usedEndpointIDs
        var inverse: [UInt64: Identity] = [:]
        for (id, f) in identityFingerprints.sorted(by: { $0.key < $1.key }) where inverse[f] == nil { inverse[f] = id }
        byFingerprint = inverse
    }

    /// Reads the programmed maps against the pods now known: an endpoint entry's id is its
    /// pod's when the pod is known by that address.
    public init(ipcache: [IPNetwork: IPCacheEntry], policy: Set<PolicyMapKey>, identities: [Identity: UInt64],
                endpointIDs byAddress: [IPAddress: EndpointID], pods: [PodInfo]) {
        var podByIP: [IPAddress: PodKey] = [:]
        for p in pods { for ip in p.ips where podByIP[ip] == nil { podByIP[ip] = p.key } }
        var endpoints: [PodKey: EndpointID] = [:]
        for (ip, id) in byAddress.sorted(by: { $0.key < $1.key }) where id != 0 {
            if let pod = podByIP[ip], endpoints[pod] == nil { endpoints[pod] = id }
        }
        var used = Set(ipcache.values.flatMap { [$0.identity, $0.cidrIdentity] })
        used.formUnion(policy.map(\.peer))
        self.init(endpointIDs: endpoints, identityFingerprints: identities, usedIdentities: used,
                  usedEndpointIDs: Set(byAddress.values).union(policy.map(\.endpoint)))
    }

    /// The number a label set (or membership) with this fingerprint had.
    func identity(fingerprint: UInt64) -> Identity? { byFingerprint[fingerprint] }
}
