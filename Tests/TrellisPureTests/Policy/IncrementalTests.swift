import Testing
import TrellisNet
@testable import TrellisPolicy

/// SplitMix64: deterministic, so a failing seed reproduces.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random pods, namespaces and policies over a small vocabulary, so that changes collide:
/// shared label sets, IP reuse, overlapping ipBlocks, named ports with different numbers.
struct RandomWorld {
    var rng: SeededRandom
    var pods: [PodKey: PodInfo] = [:]
    var freeIPs: [Int] = Array(1...40)
    var policies: Set<PolicyKey> = []

    static let nodes = NetpolWorld.nodeNames
    static let blocks: [IPBlock] = [
        block("10.244.0.0/16", except: ["10.244.2.0/24"]), block("10.244.1.0/24"), block("10.244.1.5/32"),
        block("10.244.0.0/16", except: ["10.244.1.0/26", "10.244.3.0/24"]),
        block("203.0.113.0/24", except: ["203.0.113.128/25"]), block("203.0.113.128/25"),
        block("fd00:244::/32", except: ["fd00:244:3::/48"]), block("192.168.0.0/24", except: ["192.168.0.3/32"]),
        block("0.0.0.0/0", except: ["10.0.0.0/8"]),
    ]

    init(seed: UInt64) { rng = SeededRandom(seed) }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &rng)] }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }

    static func podIP(_ n: Int, node: String, _ family: IPAddress.Family) -> IPAddress {
        let k = nodes.firstIndex(of: node)! + 1
        return family == .v4 ? addr("10.244.\(k).\(n)") : addr("fd00:244:\(k)::\(n)")
    }

    mutating func labels() -> Labels {
        var l: Labels = ["pod": pick(["a", "b", "c"])]
        if chance(0.3) { l["role"] = pick(["db", "web"]) }
        return l
    }

    mutating func selector() -> LabelSelector {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: return .everything
        case 1: return sel(["pod": pick(["a", "b", "c"])])
        case 2: return sel([:], [.init(key: "pod", .in, [pick(["a", "b"]), "c"])])
        case 3: return sel([:], [.init(key: "pod", .notIn, [pick(["a", "b", "c"])])])
        case 4: return sel([:], [.init(key: "role", pick([.exists, .doesNotExist]))])
        default: return sel(["pod": pick(["a", "b"]), "role": "db"])
        }
    }

    mutating func nsSelector() -> LabelSelector {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return .everything
        case 1: return sel(["ns": pick(["x", "y", "z"])])
        case 2: return sel([:], [.init(key: "team", .exists)])
        default: return sel([:], [.init(key: "ns", .notIn, [pick(["x", "y"])])])
        }
    }

    mutating func peer() -> PolicyPeer {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return .pods(selector())
        case 1: return .namespaces(nsSelector())
        case 2: return PolicyPeer(podSelector: selector(), namespaceSelector: nsSelector())
        default: return .block(pick(Self.blocks))
        }
    }

    mutating func port() -> PolicyPort {
        pick([.tcp(80), .udp(81), .tcp(80, endPort: 81), .named("web"), .named("serve-80-udp", .udp),
              PolicyPort(.udp), .sctp(80), .tcp(81, endPort: 1024)])
    }

    mutating func rules() -> [PolicyRule] {
        (0..<Int.random(in: 0...2, using: &rng)).map { _ in
            let peers = chance(0.25) ? [] : (0..<Int.random(in: 1...2, using: &rng)).map { _ in peer() }
            let ports = chance(0.4) ? [] : (0..<Int.random(in: 1...2, using: &rng)).map { _ in port() }
            return rule(peers, ports)
        }
    }

    mutating func policy() -> NetworkPolicy {
        let types: [PolicyDirection]? = pick([nil, [.ingress], [.egress], [.ingress, .egress]])
        return netpol(pick(["x", "y", "z"]), "p\(Int.random(in: 0..<6, using: &rng))", select: chance(0.3) ? .everything : selector(),
                      types: types, ingress: rules(), egress: rules())
    }

    mutating func newPod(_ key: PodKey) -> PodInfo? {
        guard !freeIPs.isEmpty else { return nil }
        let n = freeIPs.remove(at: Int.random(in: 0..<freeIPs.count, using: &rng))
        let node = pick(Self.nodes)
        var ports = [NamedPort("web", pick([80, 81])), NamedPort("serve-80-udp", 80, .udp)]
        if chance(0.3) { ports.append(NamedPort("serve-80-sctp", 80, .sctp)) }
        return PodInfo(namespace: key.namespace, name: key.name, labels: labels(),
                       ips: [Self.podIP(n, node: node, .v4), Self.podIP(n, node: node, .v6)], node: node, namedPorts: ports)
    }

    /// The next change; the world's own view follows it.
    mutating func change() -> PolicyChange {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1, 2:
            let key = PodKey(pick(["x", "y", "z"]), "p\(Int.random(in: 0..<6, using: &rng))")
            if var pod = pods[key] {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:
                    return removePod(key)
                case 1 where !pod.ips.isEmpty:  // back to pending (its address released)
                    releaseIP(of: pod)
                    pod.node = nil
                    pod.ips = []
                default:
                    if pod.ips.isEmpty {
                        guard let fresh = newPod(key) else { return change() }
                        pod.ips = fresh.ips
                        pod.node = fresh.node
                    } else {
                        pod.labels = labels()
                    }
                }
                pods[key] = pod
                return .upsertPod(pod)
            }
            guard let pod = newPod(key) else { return change() }
            pods[key] = pod
            return .upsertPod(pod)
        case 3:
            guard let key = pods.keys.sorted().randomElement(using: &rng) else { return change() }
            return removePod(key)
        case 4:
            let ns = pick(["x", "y", "z"])
            var labels: Labels = ["ns": pick([ns, "x", "y"])]
            if chance(0.4) { labels["team"] = "blue" }
            return .upsertNamespace(NamespaceInfo(name: ns, labels: labels))
        case 5, 6, 7:
            let p = policy()
            policies.insert(p.key)
            return .upsertPolicy(p)
        case 8:
            guard let key = policies.sorted().randomElement(using: &rng) else { return change() }
            policies.remove(key)
            return .removePolicy(key)
        default:
            let node = pick(Self.nodes)
            let k = Self.nodes.firstIndex(of: node)! + 1
            let ips = chance(0.8) ? [addr("192.168.0.\(k)"), addr("fd00:192::\(k)")] : [addr("192.168.0.\(k + 10)")]
            return .upsertNode(NodeInfo(name: node, ips: ips))
        }
    }

    private mutating func removePod(_ key: PodKey) -> PolicyChange {
        if let old = pods.removeValue(forKey: key) { releaseIP(of: old) }
        return .removePod(key)
    }

    private mutating func releaseIP(of pod: PodInfo) {
        if let a = pod.ips.first, case .v4(let v) = a { freeIPs.append(Int(v & 0xff)) }
    }

    /// Probes between every two pods with addresses, and from and to outside and the nodes.
    func probes(_ cluster: PolicyCluster) -> [(Probe, IPAddress.Family)] {
        let live = cluster.pods.values.filter { !$0.ips.isEmpty }.map { ProbeEnd.pod($0.namespace, $0.name) }
        let outside: [ProbeEnd] = [.external(addr("203.0.113.5")), .external(addr("203.0.113.200")), .external(addr("10.244.1.77")),
                                   .node("node-a"), .node("node-b")]
        var out: [(Probe, IPAddress.Family)] = []
        for a in live {
            for b in live {
                for (port, proto) in [(UInt16(80), Proto.tcp), (81, .udp), (80, .sctp)] {
                    out.append((Probe(from: a, to: b, port: port, proto: proto), .v4))
                }
                out.append((Probe(from: a, to: b, port: 81, proto: .tcp), .v6))
            }
            for o in outside {
                out.append((Probe(from: o, to: a, port: 80, proto: .tcp), .v4))
                out.append((Probe(from: a, to: o, port: 81, proto: .udp), .v4))
            }
            out.append((Probe(from: .external(addr("fd00:244:3::9")), to: a, port: 80, proto: .tcp), .v6))
        }
        return out
    }
}

@Suite struct PolicyIncrementalTests {
    /// After every change of a random sequence: the incremental state equals a fresh full
    /// compile, the compiled entries (through the simulator) agree with the reference evaluator
    /// on every probe, and no intermediate state of the diff breaks a stable decision.
    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func randomChangesMatchFullCompileAndSemantics(seed: UInt64) {
        var world = RandomWorld(seed: seed)
        var nodes = Nodes()
        nodes.apply(NetpolWorld.namespaces.map { .upsertNamespace($0) } + NetpolWorld.nodes.map { .upsertNode($0) })
        var failures = 0
        for step in 0..<70 where failures == 0 {
            let change = world.change()
            let before = nodes.simulated
            let beforeCluster = nodes.engines["node-a"]!.cluster
            let beforeProbes = world.probes(beforeCluster)
            let diffs = nodes.apply(change)
            let cluster = nodes.engines["node-a"]!.cluster
            let after = nodes.simulated
            // Transition safety per direction, by family.
            for family in [IPAddress.Family.v4, .v6] {
                var probes = beforeProbes.filter { $0.1 == family }.map(\.0)
                if case .upsertPod(let p) = change {  // a pod's hairpin to itself during its own update: see PolicyDiff
                    probes.removeAll { $0.from == .pod(p.namespace, p.name) && $0.to == $0.from }
                }
                checkTransition(from: before, diffs: diffs, to: after, probes: probes, family: family, change: change) { end, fam in
                    let a = end.address(fam, in: beforeCluster), b = end.address(fam, in: cluster)
                    return a == b ? a : nil
                }
            }
            // Compile == semantics.
            let fresh = nodes.recompiled.simulated
            for (p, family) in world.probes(cluster) {
                let ref = nodes.engines["node-a"]!.verdict(from: p.from.endpoint, to: p.to.endpoint, port: p.port, proto: p.proto, family: family)
                let src = p.from.address(family, in: cluster), dst = p.to.address(family, in: cluster)
                guard let src, let dst else { continue }
                let inc = after.allows(src, dst, p.proto, p.port), full = fresh.allows(src, dst, p.proto, p.port)
                if inc != ref.allowed || full != ref.allowed {
                    Issue.record("seed \(seed) step \(step) (\(change)): \(p) \(family): reference \(ref.allowed), compiled \(inc), recompiled \(full) -- \(ref)")
                    failures += 1
                    break
                }
            }
            // Incremental == full compile, identity numbers aside.
            for (name, engine) in nodes.engines {
                let a = SymbolicState(engine), b = SymbolicState(nodes.recompiled.engines[name]!)
                if a != b {
                    Issue.record("seed \(seed) step \(step) (\(change)) node \(name):\n\(a.difference(b))")
                    failures += 1
                }
            }
        }
    }

    @Test func reapplyingAnObjectIsAnEmptyDiff() {
        var nodes = Nodes()
        nodes.apply(NetpolWorld.baseChanges)
        let p = netpol("x", "p", select: sel(["pod": "a"]), ingress: [rule([.block(block("10.244.0.0/16"))])])
        nodes.apply(.upsertPolicy(p))
        for change in [PolicyChange.upsertPolicy(p), .upsertPod(NetpolWorld.pod("x", "a")), .upsertNamespace(NetpolWorld.namespaces[0]),
                       .upsertNode(NetpolWorld.nodes[0]), .removePolicy(PolicyKey("x", "nope")), .removePod(PodKey("x", "nope"))] {
            for (node, d) in nodes.apply(change) { #expect(d.isEmpty, "\(change) on \(node): \(d)") }
        }
    }

    @Test func unrelatedChangesTouchNothing() {
        var e = PolicyEngine(localNode: "node-a")
        for c in NetpolWorld.baseChanges { _ = e.apply(c) }
        _ = e.apply(.upsertPolicy(netpol("x", "deny")))
        // A namespace without pods.
        #expect(e.apply(.upsertNamespace(NamespaceInfo(name: "empty", labels: ["ns": "y"]))).isEmpty)
        // A policy selecting no pod of this node, without ipBlocks.
        #expect(e.apply(.upsertPolicy(netpol("y", "deny-b", select: sel(["pod": "b"])))).isEmpty)
        // A policy in a namespace without pods.
        #expect(e.apply(.upsertPolicy(netpol("empty", "deny"))).isEmpty)
        // Another node's addresses.
        #expect(e.apply(.upsertNode(NodeInfo(name: "node-b", ips: [addr("192.168.0.99")]))).isEmpty)
        // A pod on another node with a label set already in use: only its address.
        let twin = PodInfo(namespace: "x", name: "b2", labels: ["pod": "b"], ips: [addr("10.244.2.50")], node: "node-b",
                           namedPorts: NetpolWorld.pod("x", "b").namedPorts)
        let d = e.apply(.upsertPod(twin))
        #expect(d.policyUpserts.isEmpty && d.policyDeletes.isEmpty && d.endpointsAdded.isEmpty)
        #expect(d.ipcacheUpserts.map(\.prefix) == [network("10.244.2.50/32")])
        #expect(d.ipcacheUpserts.first?.entry.identity == e.identity(of: PodKey("x", "b")))
    }

    @Test func aNewlyIsolatingPolicyWritesItsAllowsBeforeDroppingTheAllowAll() throws {
        var e = PolicyEngine(localNode: "node-a")
        for c in NetpolWorld.baseChanges { _ = e.apply(c) }
        let ep = try #require(e.endpointID(of: PodKey("x", "a")))
        let d = e.apply(.upsertPolicy(netpol("x", "from-b", select: sel(["pod": "a"]), ingress: [rule([.pods(sel(["pod": "b"]))])])))
        let ops = d.operations
        let allowAll = PolicyMapKey(endpoint: ep, direction: .ingress, peer: ReservedIdentity.any, ports: .anyProtocol)
        let dropAllowAll = try #require(ops.firstIndex(of: .deletePolicy(allowAll)))
        let peer = try #require(e.identity(of: PodKey("x", "b")))
        let allowB = PolicyMapKey(endpoint: ep, direction: .ingress, peer: peer, ports: .anyProtocol)
        let host = PolicyMapKey(endpoint: ep, direction: .ingress, peer: ReservedIdentity.host, ports: .anyProtocol)
        #expect(try #require(ops.firstIndex(of: .upsertPolicy(allowB))) < dropAllowAll)
        #expect(try #require(ops.firstIndex(of: .upsertPolicy(host))) < dropAllowAll)
        #expect(d.ipcacheUpserts.isEmpty && d.ipcacheDeletes.isEmpty)
        // And back: the allow-all first, then the rest goes.
        let back = e.apply(.removePolicy(PolicyKey("x", "from-b"))).operations
        #expect(back.first == .upsertPolicy(allowAll))
        #expect(Set(back.dropFirst()) == [.deletePolicy(allowB), .deletePolicy(host)])
    }

    @Test func newLocalPodIsProgrammedBeforeItHasAnAddressAndFailsClosedUntilThen() throws {
        var e = PolicyEngine(localNode: "node-a")
        for c in NetpolWorld.baseChanges { _ = e.apply(c) }
        _ = e.apply(.upsertPolicy(netpol("x", "deny")))
        // Known from the API before CNI ADD: no address yet, but its entries are ready.
        let pending = PodInfo(namespace: "x", name: "new", labels: ["pod": "a"], node: "node-a")
        let d1 = e.apply(.upsertPod(pending))
        let ep = try #require(d1.endpointsAdded[PodKey("x", "new")])
        #expect(d1.policyUpserts.contains { $0.endpoint == ep && $0.direction == .ingress && $0.peer == ReservedIdentity.host })
        #expect(d1.policyUpserts.contains { $0.endpoint == ep && $0.direction == .egress && $0.peer == ReservedIdentity.any })
        #expect(d1.ipcacheUpserts.isEmpty)
        // Its address arrives: only the ipcache entry.
        var running = pending
        running.ips = [addr("10.244.1.99")]
        let d2 = e.apply(.upsertPod(running))
        #expect(d2.policyUpserts.isEmpty && d2.policyDeletes.isEmpty)
        #expect(d2.ipcacheUpserts.map(\.prefix) == [network("10.244.1.99/32")])
        // An endpoint without entries (e.g. before the first write) allows nothing.
        var dp = NodeDatapath(e)
        for k in e.policyMap where k.endpoint == ep { dp.apply(.deletePolicy(k)) }
        #expect(!dp.allows(endpoint: ep, .egress, peer: addr("8.8.8.8"), .tcp, 80))
        // Removal: the endpoint's entries and its address go.
        let d3 = e.apply(.removePod(PodKey("x", "new")))
        #expect(d3.endpointsRemoved == [PodKey("x", "new"): ep])
        #expect(!d3.policyDeletes.isEmpty && d3.policyDeletes.allSatisfy { $0.endpoint == ep })
        #expect(d3.ipcacheDeletes == [network("10.244.1.99/32")])
        #expect(!e.policyMap.contains { $0.endpoint == ep })
    }

    @Test func aPodMovingAwayFromTheNodeLosesItsEndpoint() throws {
        var e = PolicyEngine(localNode: "node-a")
        for c in NetpolWorld.baseChanges { _ = e.apply(c) }
        let ep = try #require(e.endpointID(of: PodKey("y", "a")))
        var moved = NetpolWorld.pod("y", "a")
        moved.node = "node-b"
        let d = e.apply(.upsertPod(moved))
        #expect(d.endpointsRemoved == [PodKey("y", "a"): ep])
        #expect(e.endpointID(of: PodKey("y", "a")) == nil)
        #expect(!e.policyMap.contains { $0.endpoint == ep })
    }

    @Test func startUpAgainstProgrammedMaps() {
        let e = PolicyEngine(localNode: "node-a", policies: [netpol("x", "deny")], pods: NetpolWorld.pods,
                             namespaces: NetpolWorld.namespaces, nodes: NetpolWorld.nodes)
        var stalePolicy = e.policyMap
        let stale = PolicyMapKey(endpoint: 999, direction: .egress, peer: 5000, ports: .anyProtocol)
        stalePolicy.insert(stale)
        var staleIPCache = e.ipcache
        staleIPCache[network("10.9.9.9/32")] = IPCacheEntry(identity: 300)
        staleIPCache[network("10.244.1.11/32")] = IPCacheEntry(identity: 301)
        let d = PolicyDiff.between(programmedPolicy: stalePolicy, programmedIPCache: staleIPCache,
                                   wantedPolicy: e.policyMap, wantedIPCache: e.ipcache)
        #expect(d.policyUpserts.isEmpty)
        #expect(d.policyDeletes == [stale])
        #expect(d.ipcacheDeletes == [network("10.9.9.9/32")])
        #expect(d.ipcacheUpserts.map(\.prefix) == [network("10.244.1.11/32")])
        #expect(PolicyDiff.between(programmedPolicy: e.policyMap, programmedIPCache: e.ipcache,
                                   wantedPolicy: e.policyMap, wantedIPCache: e.ipcache).isEmpty)
    }
}

extension ProbeEnd {
    /// The address in a cluster whose pods may have moved (random worlds).
    func address(_ family: IPAddress.Family, in cluster: PolicyCluster) -> IPAddress? {
        switch self {
        case .pod(let ns, let n): cluster.pods[PodKey(ns, n)]?.ips.first { $0.family == family }
        case .node(let n): cluster.nodes[n]?.ips.first { $0.family == family }
        case .external(let a): a.family == family ? a : nil
        }
    }
}
