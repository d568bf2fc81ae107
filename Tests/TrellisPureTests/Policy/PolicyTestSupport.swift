import CTrellisBPF
import Testing
import TrellisDatapathLayout
import TrellisNet
import TrellisPolicy

// MARK: - Building blocks

func addr(_ s: String) -> IPAddress { IPAddress(s)! }
func network(_ s: String) -> IPNetwork { IPNetwork(s)! }
func block(_ c: String, except: [String] = []) -> IPBlock { IPBlock(cidr: network(c), except: except.map(network))! }
func sel(_ labels: Labels = [:], _ exprs: [LabelSelectorRequirement] = []) -> LabelSelector {
    LabelSelector(matchLabels: labels, matchExpressions: exprs)
}
func rule(_ peers: [PolicyPeer] = [], _ ports: [PolicyPort] = []) -> PolicyRule { PolicyRule(peers: peers, ports: ports) }
func netpol(_ ns: String, _ name: String, select: LabelSelector = .everything, types: [PolicyDirection]? = nil,
            ingress: [PolicyRule] = [], egress: [PolicyRule] = []) -> NetworkPolicy {
    NetworkPolicy(namespace: ns, name: name, podSelector: select, policyTypes: types, ingress: ingress, egress: egress)
}

// MARK: - The upstream e2e world: namespaces x, y, z with pods a, b, c each

/// Pods named a are on node-a, b on node-b, c on node-c. Every pod listens (as far as policy
/// is concerned) on 80 and 81 over TCP, UDP and SCTP, with upstream's port names
/// (`serve-80-tcp`, ...), and names `web`/TCP differently: 80 on pods a, 81 on pods b and c.
enum NetpolWorld {
    static let namespaceNames = ["x", "y", "z"]
    static let podNames = ["a", "b", "c"]

    static func node(of pod: String) -> String { "node-\(pod)" }

    static func podIP(_ ns: String, _ pod: String, _ family: IPAddress.Family = .v4) -> IPAddress {
        let n = namespaceNames.firstIndex(of: ns)! + 11, p = podNames.firstIndex(of: pod)! + 1
        return family == .v4 ? addr("10.244.\(p).\(n)") : addr("fd00:244:\(p)::\(n)")
    }

    static func nodeIP(_ node: String, _ family: IPAddress.Family = .v4) -> IPAddress {
        let p = podNames.firstIndex(of: String(node.dropFirst(5)))! + 1
        return family == .v4 ? addr("192.168.0.\(p)") : addr("fd00:192::\(p)")
    }

    static func pod(_ ns: String, _ name: String, labels: Labels? = nil) -> PodInfo {
        var ports: [NamedPort] = []
        for port: UInt16 in [80, 81] {
            ports.append(NamedPort("serve-\(port)-tcp", port, .tcp))
            ports.append(NamedPort("serve-\(port)-udp", port, .udp))
            ports.append(NamedPort("serve-\(port)-sctp", port, .sctp))
        }
        ports.append(NamedPort("web", name == "a" ? 80 : 81, .tcp))
        return PodInfo(namespace: ns, name: name, labels: labels ?? ["pod": name],
                       ips: [podIP(ns, name), podIP(ns, name, .v6)], node: node(of: name), namedPorts: ports)
    }

    static var namespaces: [NamespaceInfo] { namespaceNames.map { NamespaceInfo(name: $0, labels: ["ns": $0]) } }
    static var nodes: [NodeInfo] {
        podNames.map { NodeInfo(name: node(of: $0), ips: [nodeIP(node(of: $0)), nodeIP(node(of: $0), .v6)]) }
    }
    static var pods: [PodInfo] { namespaceNames.flatMap { ns in podNames.map { pod(ns, $0) } } }

    /// The world as a sequence of changes (what an agent sees at start-up).
    static var baseChanges: [PolicyChange] {
        namespaces.map { .upsertNamespace($0) } + nodes.map { .upsertNode($0) } + pods.map { .upsertPod($0) }
    }
    static var nodeNames: [String] { podNames.map(node(of:)) }
}

// MARK: - Expected reachability, upstream `Reachability` style: a default, then exceptions

/// One end of a probe.
enum ProbeEnd: Hashable, Sendable, CustomStringConvertible {
    case pod(String, String)
    case node(String)
    case external(IPAddress)

    static func p(_ s: String) -> ProbeEnd {
        let parts = s.split(separator: "/")
        return .pod(String(parts[0]), String(parts[1]))
    }

    var description: String {
        switch self {
        case .pod(let ns, let n): "\(ns)/\(n)"
        case .node(let n): n
        case .external(let a): "\(a)"
        }
    }

    var endpoint: Endpoint {
        switch self {
        case .pod(let ns, let n): .pod(ns, n)
        case .node(let n): .node(n)
        case .external(let a): .address(a)
        }
    }

    func address(_ family: IPAddress.Family) -> IPAddress {
        switch self {
        case .pod(let ns, let n): NetpolWorld.podIP(ns, n, family)
        case .node(let n): NetpolWorld.nodeIP(n, family)
        case .external(let a): a
        }
    }
}

/// Which probe ends a reachability rule applies to.
enum Peer: Sendable {
    case any
    case ns(String)
    case pod(String)      // "x/a"
    case podName(String)  // "a" in every namespace
    case node(String)
    case external
    case address(String)
    case anyOf([Peer])

    func matches(_ e: ProbeEnd) -> Bool {
        switch (self, e) {
        case (.any, _): true
        case (.ns(let n), .pod(let ns, _)): n == ns
        case (.pod(let s), .pod(let ns, let n)): s == "\(ns)/\(n)"
        case (.podName(let s), .pod(_, let n)): s == n
        case (.node(let s), .node(let n)): s == n
        case (.external, .external): true
        case (.address(let s), .external(let a)): addr(s) == a
        case (.anyOf(let list), _): list.contains { $0.matches(e) }
        default: false
        }
    }
}

struct Reach: Sendable {
    struct Rule: Sendable {
        var from: Peer, to: Peer, port: UInt16?, proto: Proto?, allowed: Bool
    }
    var base: Bool
    var rules: [Rule] = []

    init(_ base: Bool = true) { self.base = base }

    func allow(from: Peer = .any, to: Peer = .any, port: UInt16? = nil, _ proto: Proto? = nil) -> Reach {
        var r = self
        r.rules.append(Rule(from: from, to: to, port: port, proto: proto, allowed: true))
        return r
    }

    func deny(from: Peer = .any, to: Peer = .any, port: UInt16? = nil, _ proto: Proto? = nil) -> Reach {
        var r = self
        r.rules.append(Rule(from: from, to: to, port: port, proto: proto, allowed: false))
        return r
    }

    func expected(_ from: ProbeEnd, _ to: ProbeEnd, _ port: UInt16, _ proto: Proto) -> Bool {
        var v = base
        for r in rules where r.from.matches(from) && r.to.matches(to)
            && (r.port == nil || r.port == port) && (r.proto == nil || r.proto == proto) {
            v = r.allowed
        }
        return v
    }
}

struct Probe: Hashable, Sendable, CustomStringConvertible {
    var from: ProbeEnd, to: ProbeEnd, port: UInt16, proto: Proto
    var description: String { "\(from) -> \(to) \(port)/\(proto)" }

    /// The 9x9 matrix over 80 and 81, TCP and UDP.
    static var matrix: [Probe] {
        var out: [Probe] = []
        for (port, proto) in [(UInt16(80), Proto.tcp), (81, .tcp), (80, .udp), (81, .udp)] {
            for fns in NetpolWorld.namespaceNames { for fp in NetpolWorld.podNames {
                for tns in NetpolWorld.namespaceNames { for tp in NetpolWorld.podNames {
                    out.append(Probe(from: .pod(fns, fp), to: .pod(tns, tp), port: port, proto: proto))
                } }
            } }
        }
        return out
    }
}

// MARK: - The datapath simulator: only compiled entries and LPM lookups

/// A BPF LPM trie: the longest stored prefix of the key's bits wins.
struct LPMTable<Value> {
    private var byLength: [UInt32: [[UInt8]: Value]] = [:]
    private var lengths: [UInt32] = []

    static func mask(_ data: [UInt8], _ bits: UInt32) -> [UInt8] {
        var out = data
        for i in 0..<out.count {
            let start = UInt32(i * 8)
            if start >= bits { out[i] = 0 } else if start + 8 > bits { out[i] &= ~UInt8(0xff >> (bits - start)) }
        }
        return out
    }

    mutating func insert(_ bits: UInt32, _ data: [UInt8], _ value: Value) {
        if byLength[bits] == nil { lengths.append(bits); lengths.sort(by: >) }
        byLength[bits, default: [:]][Self.mask(data, bits)] = value
    }

    mutating func remove(_ bits: UInt32, _ data: [UInt8]) {
        byLength[bits]?[Self.mask(data, bits)] = nil
    }

    func lookup(_ data: [UInt8]) -> Value? {
        for bits in lengths {
            if let v = byLength[bits]?[Self.mask(data, bits)] { return v }
        }
        return nil
    }

    var count: Int { byLength.values.reduce(0) { $0 + $1.count } }
}

/// The bytes an LPM trie matches: everything after a key's leading `__u32 prefixlen`.
private func lpmData<Key>(_ key: Key) -> [UInt8] {
    withUnsafeBytes(of: key) { Array($0.dropFirst(MemoryLayout<UInt32>.size)) }
}

/// The ipcache entry the datapath writes for a prefix (`struct trellis_lpm_key`, through
/// TrellisDatapath), as prefix length and matched bytes.
func ipcacheKey(_ n: IPNetwork) -> (UInt32, [UInt8]) {
    let k = trellis_lpm_key(n)
    return (k.prefixlen, lpmData(k))
}

extension PolicyMapKey {
    /// The `trellis_policy` entry the datapath writes for this key (`struct trellis_policy_key`,
    /// through TrellisDatapath), so the simulation matches on the real layout.
    var lpm: (bits: UInt32, data: [UInt8]) {
        let k = trellis_policy_key(self)
        return (k.prefixlen, lpmData(k))
    }
}

/// One node's maps, as the BPF programs see them.
struct NodeDatapath {
    var policy = LPMTable<Bool>()
    var ipcache = LPMTable<IPCacheEntry>()
    /// trellis_endpoints: local pod address -> policy endpoint id (written by the agent).
    var endpoints: [IPAddress: EndpointID] = [:]

    init(_ engine: PolicyEngine) {
        for k in engine.policyMap { policy.insert(k.lpm.bits, k.lpm.data, true) }
        for (n, e) in engine.ipcache { let (b, d) = ipcacheKey(n); ipcache.insert(b, d, e) }
        for (pod, ep) in engine.endpoints { for a in engine.cluster.pods[pod]?.ips ?? [] { endpoints[a] = ep } }
    }

    mutating func apply(_ op: DatapathOperation) {
        switch op {
        case .upsertPolicy(let k): policy.insert(k.lpm.bits, k.lpm.data, true)
        case .deletePolicy(let k): policy.remove(k.lpm.bits, k.lpm.data)
        case .upsertIPCache(let n, let e): let (b, d) = ipcacheKey(n); ipcache.insert(b, d, e)
        case .deleteIPCache(let n): let (b, d) = ipcacheKey(n); ipcache.remove(b, d)
        }
    }

    /// The per-packet policy check of bpf/lib/policy.h (`PolicyMapKey`): one ipcache LPM, up to three policy
    /// lookups.
    func allows(endpoint: EndpointID, _ direction: PolicyDirection, peer: IPAddress, _ proto: Proto, _ port: UInt16) -> Bool {
        let e = ipcache.lookup(ipcacheKey(.init(address: peer, prefixLength: peer.bitWidth)!).1)
        let id = e?.identity ?? ReservedIdentity.world
        let cid = e?.cidrIdentity ?? 0
        let dport = proto.hasPorts ? port : 0
        func probe(_ peer: Identity) -> Bool {
            let k = PolicyMapKey(endpoint: endpoint, direction: direction, peer: peer,
                                 ports: .ports(proto, PortPrefix(base: dport, bits: 16)))
            return policy.lookup(k.lpm.data) ?? false
        }
        return probe(id) || (cid != 0 && cid != id && probe(cid)) || probe(ReservedIdentity.any)
    }
}

/// Every node's datapath; a packet is checked at egress where it leaves a local pod and at
/// ingress where it reaches one.
struct SimulatedCluster {
    var nodes: [String: NodeDatapath] = [:]

    init(_ engines: [String: PolicyEngine]) {
        for (n, e) in engines { nodes[n] = NodeDatapath(e) }
    }

    func directions(_ src: IPAddress, _ dst: IPAddress, _ proto: Proto, _ port: UInt16) -> (egress: Bool?, ingress: Bool?) {
        var eg: Bool?, ing: Bool?
        for dp in nodes.values {
            if let ep = dp.endpoints[src] { eg = dp.allows(endpoint: ep, .egress, peer: dst, proto, port) }
            if let ep = dp.endpoints[dst] { ing = dp.allows(endpoint: ep, .ingress, peer: src, proto, port) }
        }
        return (eg, ing)
    }

    func allows(_ src: IPAddress, _ dst: IPAddress, _ proto: Proto, _ port: UInt16) -> Bool {
        let d = directions(src, dst, proto, port)
        return (d.egress ?? true) && (d.ingress ?? true)
    }
}

/// One engine per node, fed change by change.
struct Nodes {
    var engines: [String: PolicyEngine]

    init(_ names: [String] = NetpolWorld.nodeNames) {
        engines = Dictionary(uniqueKeysWithValues: names.map { ($0, PolicyEngine(localNode: $0)) })
    }

    /// Applies a change everywhere; returns each node's diff.
    @discardableResult
    mutating func apply(_ change: PolicyChange) -> [String: PolicyDiff] {
        var out: [String: PolicyDiff] = [:]
        for n in engines.keys.sorted() { out[n] = engines[n]!.apply(change) }
        return out
    }

    mutating func apply(_ changes: [PolicyChange]) { for c in changes { apply(c) } }

    /// Fresh engines compiled in one go from the same objects.
    var recompiled: Nodes {
        var n = self
        for (name, e) in engines {
            let c = e.cluster
            n.engines[name] = PolicyEngine(localNode: name, policies: Array(c.policies.values), pods: Array(c.pods.values),
                                           namespaces: Array(c.namespaces.values), nodes: Array(c.nodes.values))
        }
        return n
    }

    var simulated: SimulatedCluster { SimulatedCluster(engines) }
}

/// A compiled state with identity numbers replaced by what they stand for, so that two engines
/// that numbered differently can be compared.
struct SymbolicState: Equatable {
    var policy: Set<String>
    var ipcache: [String: String]

    init(_ e: PolicyEngine) {
        let podOf = Dictionary(uniqueKeysWithValues: e.endpoints.map { ($0.value, $0.key) })
        func name(_ id: Identity) -> String { e.labels(of: id)?.joined(separator: ",") ?? "?\(id)" }
        policy = Set(e.policyMap.map { k in
            "\(podOf[k.endpoint].map(\.description) ?? "?") \(k.direction) [\(name(k.peer))] \(k.ports)"
        })
        ipcache = Dictionary(uniqueKeysWithValues: e.ipcache.map { n, entry in
            ("\(n)", "[\(name(entry.identity))] cidr [\(entry.cidrIdentity == 0 ? "-" : name(entry.cidrIdentity))]")
        })
    }

    func difference(_ other: SymbolicState) -> String {
        var lines: [String] = []
        for k in policy.subtracting(other.policy).sorted() { lines.append("- policy \(k)") }
        for k in other.policy.subtracting(policy).sorted() { lines.append("+ policy \(k)") }
        for k in Set(ipcache.keys).union(other.ipcache.keys).sorted() where ipcache[k] != other.ipcache[k] {
            lines.append("ipcache \(k): \(ipcache[k] ?? "none") vs \(other.ipcache[k] ?? "none")")
        }
        return lines.prefix(30).joined(separator: "\n")
    }
}
