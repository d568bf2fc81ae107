import Foundation
import Testing
import TrellisNet
@testable import TrellisPolicy

@Suite struct LabelSelectorTests {
    let labels: Labels = ["app": "web", "tier": "front", "env": ""]

    @Test func emptySelectsEverything() {
        #expect(LabelSelector.everything.matches([:]))
        #expect(LabelSelector.everything.matches(labels))
        #expect(LabelSelector.everything.description == "{}")
    }

    @Test func matchLabelsAreANDed() {
        #expect(sel(["app": "web"]).matches(labels))
        #expect(sel(["app": "web", "tier": "front"]).matches(labels))
        #expect(!sel(["app": "web", "tier": "back"]).matches(labels))
        #expect(sel(["env": ""]).matches(labels))
        #expect(!sel(["env": ""]).matches(["app": "web"]))
    }

    @Test(arguments: [
        (LabelSelectorRequirement(key: "app", .in, ["web", "api"]), true),
        (LabelSelectorRequirement(key: "app", .in, ["api"]), false),
        (LabelSelectorRequirement(key: "missing", .in, ["x"]), false),
        (LabelSelectorRequirement(key: "app", .notIn, ["api"]), true),
        (LabelSelectorRequirement(key: "app", .notIn, ["web"]), false),
        (LabelSelectorRequirement(key: "missing", .notIn, ["x"]), true),  // absent key: NotIn holds
        (LabelSelectorRequirement(key: "tier", .exists), true),
        (LabelSelectorRequirement(key: "env", .exists), true),  // empty value still exists
        (LabelSelectorRequirement(key: "missing", .exists), false),
        (LabelSelectorRequirement(key: "missing", .doesNotExist), true),
        (LabelSelectorRequirement(key: "app", .doesNotExist), false),
    ])
    func operators(_ r: LabelSelectorRequirement, _ expected: Bool) {
        #expect(r.matches(labels) == expected)
    }

    @Test func expressionsAndLabelsTogether() {
        let s = sel(["app": "web"], [.init(key: "tier", .in, ["front"]), .init(key: "legacy", .doesNotExist)])
        #expect(s.matches(labels))
        #expect(!s.matches(labels.merging(["legacy": "1"]) { a, _ in a }))
        #expect(s.description == "app=web,tier in (front),!legacy")
    }
}

@Suite struct PolicyParserTests {
    /// A policy manifest with one field replaced.
    func manifest(ingress: PolicyValue = [], egress: PolicyValue? = nil, extraSpec: [(String, PolicyValue)] = []) -> PolicyValue {
        var spec: [(key: String, value: PolicyValue)] = [("podSelector", [:]), ("ingress", ingress)]
        if let egress { spec.append(("egress", egress)) }
        spec += extraSpec.map { (key: $0.0, value: $0.1) }
        return ["apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": ["name": "deny", "namespace": "x"], "spec": .object(spec)]
    }

    func error(_ v: PolicyValue) -> String {
        do {
            _ = try NetworkPolicy(parsing: v)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func aCompletePolicy() throws {
        let p = try NetworkPolicy(parsing: [
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": ["name": "web", "namespace": "shop"],
            "spec": [
                "podSelector": ["matchLabels": ["app": "web"]],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [[
                    "from": [
                        ["ipBlock": ["cidr": "10.0.0.7/8", "except": ["10.1.0.0/16"]]],
                        ["namespaceSelector": ["matchLabels": ["team": "a"]], "podSelector": ["matchExpressions": [["key": "role", "operator": "Exists"]]]],
                    ],
                    "ports": [["port": 80], ["protocol": "UDP", "port": "dns"], ["protocol": "SCTP", "port": 9000, "endPort": 9100], ["protocol": "TCP"]],
                ]],
                "egress": [["to": [["podSelector": [:]]]], [:]],
            ],
        ])
        #expect(p.key == PolicyKey("shop", "web"))
        #expect(p.podSelector == sel(["app": "web"]))
        #expect(p.effectivePolicyTypes == [.ingress, .egress])
        let r = try #require(p.ingress.first)
        #expect(r.peers[0].ipBlock == block("10.0.0.0/8", except: ["10.1.0.0/16"]))  // host bits cleared
        #expect(r.peers[1] == PolicyPeer(podSelector: sel([:], [.init(key: "role", .exists)]), namespaceSelector: sel(["team": "a"])))
        #expect(r.ports == [.tcp(80), .named("dns", .udp), .sctp(9000, endPort: 9100), PolicyPort(.tcp)])
        #expect(p.egress == [rule([.pods(.everything)]), rule()])
    }

    @Test func defaults() throws {
        let p = try NetworkPolicy(parsing: ["metadata": ["name": "p"], "spec": ["egress": [[:]]]])
        #expect(p.namespace == "default")
        #expect(p.podSelector == .everything)
        #expect(p.policyTypes == nil)
        #expect(p.effectivePolicyTypes == [.ingress, .egress])  // egress rules present
        let q = try NetworkPolicy(parsing: ["metadata": ["name": "q"], "spec": ["egress": []]], defaultNamespace: "x")
        #expect(q.namespace == "x")
        #expect(q.effectivePolicyTypes == [.ingress])  // an empty egress list does not count
        let r = try NetworkPolicy(parsing: ["metadata": ["name": "r"], "spec": ["policyTypes": ["Egress"]]])
        #expect(r.effectivePolicyTypes == [.egress])
    }

    @Test(arguments: [
        ("endPort below port", ["ports": [["port": 81], ["port": 80, "endPort": 79]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[1].endPort 79 < port 80"),
        ("invalid CIDR", ["from": [["ipBlock": ["cidr": "10.0.0.0/33"]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].ipBlock.cidr \"10.0.0.0/33\" is not a CIDR (address/prefix length)"),
        ("bare address", ["from": [["ipBlock": ["cidr": "10.0.0.1"]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].ipBlock.cidr \"10.0.0.1\" is not a CIDR (address/prefix length)"),
        ("except outside cidr", ["from": [["ipBlock": ["cidr": "10.1.0.0/16", "except": ["10.2.0.0/24"]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].ipBlock.except[0] 10.2.0.0/24 is not inside cidr 10.1.0.0/16 (an except must be a strict subset)"),
        ("except equal to cidr", ["from": [["ipBlock": ["cidr": "10.1.0.0/16", "except": ["10.1.0.0/16"]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].ipBlock.except[0] 10.1.0.0/16 is not inside cidr 10.1.0.0/16 (an except must be a strict subset)"),
        ("except of another family", ["from": [["ipBlock": ["cidr": "10.1.0.0/16", "except": ["fd00::/64"]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].ipBlock.except[0] fd00::/64 is not the same address family as cidr 10.1.0.0/16"),
        ("endPort with a named port", ["ports": [["port": "http", "endPort": 90]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].endPort may not be given with the named port \"http\""),
        ("endPort without port", ["ports": [["endPort": 90]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].endPort may not be given without port"),
        ("unknown operator", ["from": [["podSelector": ["matchExpressions": [["key": "a", "operator": "Matches", "values": ["b"]]]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].podSelector.matchExpressions[0].operator \"Matches\" is not In, NotIn, Exists or DoesNotExist"),
        ("In without values", ["from": [["namespaceSelector": ["matchExpressions": [["key": "a", "operator": "In"]]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values must be non-empty for In"),
        ("NotIn with empty values", ["from": [["podSelector": ["matchExpressions": [["key": "a", "operator": "NotIn", "values": []]]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].podSelector.matchExpressions[0].values must be non-empty for NotIn"),
        ("Exists with values", ["from": [["podSelector": ["matchExpressions": [["key": "a", "operator": "Exists", "values": ["b"]]]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].podSelector.matchExpressions[0].values must be empty for Exists"),
        ("ipBlock with a selector", ["from": [["ipBlock": ["cidr": "10.0.0.0/8"], "podSelector": [:]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0] may not combine ipBlock with podSelector or namespaceSelector"),
        ("empty peer", ["from": [[:]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0] must specify podSelector, namespaceSelector or ipBlock"),
        ("unknown protocol", ["ports": [["protocol": "ICMP", "port": 1]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].protocol \"ICMP\" is not TCP, UDP or SCTP"),
        ("lower-case protocol", ["ports": [["protocol": "tcp"]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].protocol \"tcp\" is not TCP, UDP or SCTP"),
        ("port out of range", ["ports": [["port": 70000]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].port 70000 is not a port number (1 to 65535)"),
        ("numeric string port", ["ports": [["port": "80"]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].port \"80\" is not a port name (it must contain at least one letter)"),
        ("port name too long", ["ports": [["port": "a-very-long-port-name"]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].port \"a-very-long-port-name\" is not a port name (1 to 15 characters)"),
        ("fractional port", ["ports": [["port": 80.5]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].ports[0].port expected an integer, got 80.5"),
        ("typo in a peer", ["from": [["namespaceSelecter": [:]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].namespaceSelecter is not a known field (known: ipBlock, namespaceSelector, podSelector); spec.ingress[0].from[0] must specify podSelector, namespaceSelector or ipBlock"),
        ("egress keyword in an ingress rule", ["to": [["podSelector": [:]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].to is not a known field (known: from, ports)"),
        ("bad label value", ["from": [["podSelector": ["matchLabels": ["app": "no spaces"]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].podSelector.matchLabels.app \"no spaces\" is not a label value (at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"),
        ("bad label key", ["from": [["podSelector": ["matchExpressions": [["key": "-a", "operator": "Exists"]]]]]] as PolicyValue,
         "policy x/deny: spec.ingress[0].from[0].podSelector.matchExpressions[0].key \"-a\" is not a label key (name part: 1-63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"),
    ])
    func validation(_ what: String, _ badRule: PolicyValue, _ message: String) {
        #expect(error(manifest(ingress: [badRule])) == message, "\(what)")
    }

    @Test func specLevelProblems() {
        #expect(error(manifest(extraSpec: [("policyTypes", ["Ingress", "Sideways"])]))
            == "policy x/deny: spec.policyTypes[1] \"Sideways\" is not Ingress or Egress")
        #expect(error(["kind": "NetworkPolicy", "spec": [:]]) == "policy default/(unnamed): metadata missing")
        #expect(error(["kind": "Pod", "metadata": ["name": "p"]]) == "policy default/p: kind \"Pod\" is not NetworkPolicy")
        #expect(error(["apiVersion": "extensions/v1beta1", "metadata": ["name": "p"]])
            == "policy default/p: apiVersion \"extensions/v1beta1\" is not networking.k8s.io/v1")
        #expect(error(manifest(egress: [["from": [[:]]]]))
            == "policy x/deny: spec.egress[0].from is not a known field (known: ports, to)")
        #expect(error(manifest(extraSpec: [("podselector", [:])]))
            == "policy x/deny: spec.podselector is not a known field (known: egress, ingress, podSelector, policyTypes)")
        #expect(error("just a string") == "policy default/(unnamed): expected a mapping, got \"just a string\"")
    }

    @Test func everyProblemIsReported() throws {
        let v = manifest(ingress: [["from": [["ipBlock": ["cidr": "nope"]]], "ports": [["port": 0]]]])
        do {
            _ = try NetworkPolicy(parsing: v)
            Issue.record("expected an error")
        } catch {
            #expect(error.object == "x/deny")
            #expect(error.problems.map(\.path) == ["spec.ingress[0].from[0].ipBlock.cidr", "spec.ingress[0].ports[0].port"])
        }
    }

    @Test func decodesFromJSONThroughCodable() throws {
        let json = """
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "allow-dns", "namespace": "x"},
         "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"port": "dns-tcp"}]}]}}
        """
        let value = try JSONDecoder().decode(PolicyValue.self, from: Data(json.utf8))
        let p = try NetworkPolicy(parsing: value)
        #expect(p.egress == [rule([], [.udp(53), .named("dns-tcp")])])
        #expect(p.effectivePolicyTypes == [.egress])
    }
}

@Suite struct PolicyIdentityTests {
    func engine(_ pods: [PodInfo], policies: [NetworkPolicy] = [], namespaces: [NamespaceInfo] = NetpolWorld.namespaces) -> PolicyEngine {
        PolicyEngine(localNode: nil, policies: policies, pods: pods, namespaces: namespaces, nodes: [])
    }

    func pod(_ ns: String, _ name: String, _ labels: Labels, _ ip: String, ports: [NamedPort] = []) -> PodInfo {
        PodInfo(namespace: ns, name: name, labels: labels, ips: [addr(ip)], node: "n1", namedPorts: ports)
    }

    @Test func oneIdentityPerLabelSetFrom256() throws {
        let e = engine([pod("x", "a1", ["app": "a"], "10.0.0.1"), pod("x", "a2", ["app": "a"], "10.0.0.2"),
                        pod("y", "a3", ["app": "a"], "10.0.0.3"), pod("x", "b", ["app": "b"], "10.0.0.4")])
        let a1 = try #require(e.identity(of: PodKey("x", "a1")))
        #expect(e.identity(of: PodKey("x", "a2")) == a1)
        #expect(e.identity(of: PodKey("y", "a3")) != a1)  // another namespace: another set
        #expect(e.identity(of: PodKey("x", "b")) != a1)
        #expect(ReservedIdentity.labelRange.contains(a1) && a1 >= 256)
        #expect(e.labels(of: a1) == ["app=a", "ns:name=x", "ns:ns=x"])
        #expect(e.identityCount.label == 3)
        #expect(e.ipcache[network("10.0.0.2/32")] == IPCacheEntry(identity: a1))
    }

    @Test func reservedIdentities() {
        #expect(ReservedIdentity.host == 1 && ReservedIdentity.world == 2 && ReservedIdentity.unmanaged == 3 && ReservedIdentity.any == 0)
        var e = PolicyEngine(localNode: "n1")
        _ = e.apply(.upsertNode(NodeInfo(name: "n1", ips: [addr("192.168.0.1")])))
        _ = e.apply(.upsertNode(NodeInfo(name: "n2", ips: [addr("192.168.0.2")])))
        #expect(e.ipcache == [network("192.168.0.1/32"): IPCacheEntry(identity: ReservedIdentity.host)])
        #expect(e.describe(1) == "host" && e.describe(2) == "world")
    }

    @Test func namedPortsArePartOfTheIdentity() throws {
        let e = engine([pod("x", "a", ["app": "w"], "10.0.0.1", ports: [NamedPort("web", 80)]),
                        pod("x", "b", ["app": "w"], "10.0.0.2", ports: [NamedPort("web", 8080)]),
                        pod("x", "c", ["app": "w"], "10.0.0.3", ports: [NamedPort("web", 80)])])
        let a = try #require(e.identity(of: PodKey("x", "a")))
        #expect(e.identity(of: PodKey("x", "b")) != a)
        #expect(e.identity(of: PodKey("x", "c")) == a)
        #expect(e.labels(of: a) == ["app=w", "ns:name=x", "ns:ns=x", "port:web/TCP=80"])
    }

    /// Two replicas with the same labels and different numbers for one port name: an egress
    /// rule on that name allows each its own number only.
    @Test func egressNamedPortIsExactForReplicasWithDifferentNumbers() {
        let pods = [pod("x", "client", ["app": "client"], "10.0.0.9"),
                    pod("y", "w1", ["app": "w"], "10.0.0.1", ports: [NamedPort("web", 80)]),
                    pod("y", "w2", ["app": "w"], "10.0.0.2", ports: [NamedPort("web", 8080)])]
        let p = netpol("x", "to-web", types: [.egress], egress: [rule([.namespaces(.everything)], [.named("web")])])
        let e = engine(pods, policies: [p])
        let sim = SimulatedCluster(["n1": e])
        for (dst, port, want) in [("10.0.0.1", UInt16(80), true), ("10.0.0.1", 8080, false), ("10.0.0.2", 8080, true), ("10.0.0.2", 80, false)] {
            #expect(sim.allows(addr("10.0.0.9"), addr(dst), .tcp, port) == want, "\(dst):\(port)")
            #expect(e.verdict(from: .pod("x", "client"), to: .address(addr(dst)), port: port, proto: .tcp).allowed == want)
        }
    }

    @Test func namespaceLabelsArePrefixedAndChangeTheIdentity() throws {
        var e = engine([pod("x", "a", ["app": "a"], "10.0.0.1")])
        let before = try #require(e.identity(of: PodKey("x", "a")))
        let d = e.apply(.upsertNamespace(NamespaceInfo(name: "x", labels: ["ns": "x", "team": "blue"])))
        let after = try #require(e.identity(of: PodKey("x", "a")))
        #expect(after != before)
        #expect(e.labels(of: after) == ["app=a", "ns:name=x", "ns:ns=x", "ns:team=blue"])
        #expect(e.labels(of: before) == nil)  // released
        #expect(d.ipcacheUpserts.map(\.entry) == [IPCacheEntry(identity: after)])
    }

    @Test func numbersAreStableAndNotReusedAtOnce() throws {
        var e = engine([pod("x", "a", ["app": "a"], "10.0.0.1"), pod("x", "b", ["app": "b"], "10.0.0.2")])
        let a = try #require(e.identity(of: PodKey("x", "a")))
        let b = try #require(e.identity(of: PodKey("x", "b")))
        // Unrelated changes keep the numbers.
        _ = e.apply(.upsertPolicy(netpol("x", "deny")))
        _ = e.apply(.upsertPod(pod("y", "c", ["app": "c"], "10.0.0.3")))
        #expect(e.identity(of: PodKey("x", "a")) == a && e.identity(of: PodKey("x", "b")) == b)
        // A relabel to a new set frees b's number; the next new set does not get it.
        _ = e.apply(.upsertPod(pod("x", "b", ["app": "b2"], "10.0.0.2")))
        let b2 = try #require(e.identity(of: PodKey("x", "b")))
        _ = e.apply(.upsertPod(pod("x", "d", ["app": "d"], "10.0.0.4")))
        #expect(b2 != b && e.identity(of: PodKey("x", "d")) != b)
        // Back to a set in use: its number.
        _ = e.apply(.upsertPod(pod("x", "b", ["app": "a"], "10.0.0.2")))
        #expect(e.identity(of: PodKey("x", "b")) == a)
    }

    @Test func cidrIdentitiesAndExcepts() throws {
        let pods = [pod("x", "a", ["app": "a"], "10.1.2.3"), pod("x", "b", ["app": "b"], "10.2.0.1")]
        let p = netpol("x", "p", ingress: [rule([.block(block("10.0.0.0/8", except: ["10.1.0.0/16"]))])])
        let e = engine(pods, policies: [p])
        let outer = try #require(e.ipcache[network("10.0.0.0/8")])
        let except = try #require(e.ipcache[network("10.1.0.0/16")])
        #expect(ReservedIdentity.cidrRange.contains(outer.identity) && outer.cidrIdentity == outer.identity)
        #expect(except == IPCacheEntry(identity: ReservedIdentity.world))  // in no block
        #expect(e.labels(of: outer.identity) == ["cidr:10.0.0.0/8 except 10.1.0.0/16"])
        // LPM of an address in the except hits another identity than the cidr around it.
        let sim = NodeDatapath(e)
        let inExcept = sim.ipcache.lookup(ipcacheKey(network("10.1.200.1/32")).1)
        let inCIDR = sim.ipcache.lookup(ipcacheKey(network("10.200.0.1/32")).1)
        #expect(inExcept?.identity == ReservedIdentity.world && inCIDR?.identity == outer.identity)
        // A pod inside the block carries the block's CIDR identity next to its label identity.
        let b = try #require(e.ipcache[network("10.2.0.1/32")])
        #expect(b.identity == e.identity(of: PodKey("x", "b")) && b.cidrIdentity == outer.identity)
        let a = try #require(e.ipcache[network("10.1.2.3/32")])
        #expect(a.cidrIdentity == 0)
        // Another block over the same prefix: the prefix's membership, hence its identity, changes.
        var e2 = e
        _ = e2.apply(.upsertPolicy(netpol("x", "q", ingress: [rule([.block(block("10.0.0.0/8"))])])))
        let both = try #require(e2.ipcache[network("10.0.0.0/8")])
        #expect(both.identity != outer.identity)
        #expect(e2.labels(of: both.identity) == ["cidr:10.0.0.0/8", "cidr:10.0.0.0/8 except 10.1.0.0/16"])
        #expect(e2.ipcache[network("10.1.0.0/16")].map { e2.labels(of: $0.identity) } == ["cidr:10.0.0.0/8"])
    }

    @Test func ipv6Blocks() throws {
        let e = engine([pod("x", "a", ["app": "a"], "fd00:1::5")],
                       policies: [netpol("x", "p", ingress: [rule([.block(block("fd00::/16", except: ["fd00:1::/32"]))])])])
        #expect(e.ipcache[network("fd00:1::5/128")]?.cidrIdentity == 0)
        #expect(e.ipcache[network("fd00::/16")].map { ReservedIdentity.cidrRange.contains($0.identity) } == true)
    }
}

@Suite struct PolicyMapEntryTests {
    @Test func portRangesBecomeAlignedBlocks() {
        #expect(PortPrefix.cover(80...80) == [PortPrefix(base: 80, bits: 16)])
        #expect(PortPrefix.cover(0...65535) == [PortPrefix(base: 0, bits: 0)])
        #expect(PortPrefix.cover(80...81) == [PortPrefix(base: 80, bits: 15)])
        #expect(PortPrefix.cover(1024...2047) == [PortPrefix(base: 1024, bits: 6)])
        #expect(PortPrefix.cover(1...65535).count == 16)
        #expect(PortPrefix.cover(1...65534).count == 30)
        var rng = SeededRandom(42)
        for _ in 0..<300 {
            let a = UInt16.random(in: 0...UInt16.max, using: &rng), b = UInt16.random(in: 0...UInt16.max, using: &rng)
            let r = min(a, b)...max(a, b)
            let blocks = PortPrefix.cover(r)
            #expect(blocks.count <= 30)
            #expect(blocks.map { UInt32($0.range.count) }.reduce(0, +) == UInt32(r.count))
            #expect(blocks.allSatisfy { r.contains($0.range.lowerBound) && r.contains($0.range.upperBound) })
        }
    }

    @Test func portBlocksMatchByPrefix() {
        // The key bytes themselves: DatapathMapLayoutTests.policyKeyBytes.
        let range = PolicyMapKey(endpoint: 1, direction: .ingress, peer: 7, ports: .ports(.tcp, PortPrefix(base: 0x1234, bits: 8)))
        #expect(range.lpm.bits == 88)
        var t = LPMTable<Bool>()
        t.insert(range.lpm.bits, range.lpm.data, true)
        let probe = PolicyMapKey(endpoint: 1, direction: .ingress, peer: 7, ports: .ports(.tcp, PortPrefix(base: 0x12ff, bits: 16)))
        #expect(t.lookup(probe.lpm.data) == true)
        let miss = PolicyMapKey(endpoint: 1, direction: .ingress, peer: 7, ports: .ports(.tcp, PortPrefix(base: 0x1300, bits: 16)))
        #expect(t.lookup(miss.lpm.data) == nil)
        let otherPeer = PolicyMapKey(endpoint: 1, direction: .ingress, peer: 8, ports: .ports(.tcp, PortPrefix(base: 0x1234, bits: 16)))
        #expect(t.lookup(otherPeer.lpm.data) == nil)
    }

    @Test func rangesAreMergedPerPeer() throws {
        let p = netpol("x", "p", select: sel(["pod": "a"]),
                       ingress: [rule([], [.tcp(80), .tcp(81), .tcp(82, endPort: 83), .udp(53)]), rule([], [.tcp(81)])])
        let e = PolicyEngine(localNode: "node-a", policies: [p], pods: NetpolWorld.pods, namespaces: NetpolWorld.namespaces,
                             nodes: NetpolWorld.nodes)
        let c = try #require(e.compiledPolicy(for: PodKey("x", "a")))
        #expect(c.isolatedIngress && !c.isolatedEgress)
        #expect(c.allowsAll(.egress) && !c.allowsAll(.ingress))
        let ingress = c.entries.filter { $0.direction == .ingress }.map { "\(e.describe($0.peer)) \($0.ports)" }
        #expect(ingress == ["any TCP/80-83", "any UDP/53", "host any"])
    }
}

@Suite struct PolicyExplainTests {
    let cluster = PolicyCluster(
        policies: [netpol("x", "deny-all"), netpol("y", "allow-x", ingress: [rule([.namespaces(sel(["ns": "x"]))], [.tcp(80)])]),
                   netpol("y", "also", select: sel(["pod": "a"]), ingress: [rule([], [.tcp(80)])])],
        pods: NetpolWorld.pods, namespaces: NetpolWorld.namespaces, nodes: NetpolWorld.nodes)

    @Test func deniedByDefaultDeny() {
        let v = cluster.verdict(from: .pod("y", "b"), to: .pod("x", "a"), port: 80, proto: .tcp)
        #expect(!v.allowed)
        #expect(v.egress?.decision == .notIsolated)
        #expect(v.ingress?.isolatedBy == [PolicyKey("x", "deny-all")])
        #expect(v.description == "denied by default-deny in x: pod x/a is isolated for ingress by policy x/deny-all and no rule allows it")
    }

    @Test func allowedByRules() {
        let v = cluster.verdict(from: .pod("x", "b"), to: .pod("y", "a"), port: 80, proto: .tcp)
        #expect(v.allowed)
        #expect(v.ingress?.allowedBy == [RuleRef(PolicyKey("y", "allow-x"), .ingress, 0), RuleRef(PolicyKey("y", "also"), .ingress, 0)])
        #expect(v.description == "allowed: egress at x/b: allowed, not isolated for egress (no policy selecting it applies to Egress); ingress at y/a: allowed by y/allow-x ingress[0], y/also ingress[0]")
        let denied = cluster.verdict(from: .pod("z", "b"), to: .pod("y", "b"), port: 80, proto: .tcp)
        #expect(denied.description == "denied by default-deny in y: pod y/b is isolated for ingress by policy y/allow-x and no rule allows it")
    }

    @Test func nodesAndAddresses() {
        #expect(cluster.verdict(from: .node("node-a"), to: .pod("x", "a"), port: 80, proto: .tcp).ingress?.decision == .fromOwnNode)
        #expect(!cluster.verdict(from: .node("node-b"), to: .pod("x", "a"), port: 80, proto: .tcp).allowed)
        // An address of a known pod or node is that pod or node.
        #expect(cluster.verdict(from: .address(addr("192.168.0.1")), to: .pod("x", "a"), port: 80, proto: .tcp).allowed)
        let v = cluster.verdict(from: .address(addr("10.244.2.11")), to: .pod("y", "c"), port: 80, proto: .tcp)
        #expect(v.egress?.pod == PodKey("x", "b") && v.allowed)
        #expect(cluster.verdict(from: .address(addr("8.8.8.8")), to: .address(addr("1.1.1.1")), port: 80, proto: .tcp).description
            == "allowed: neither end is a pod")
        // ICMP is matched only by rules without ports.
        #expect(!cluster.verdict(from: .pod("x", "b"), to: .pod("y", "b"), port: 0, proto: .icmp).allowed)
    }
}
