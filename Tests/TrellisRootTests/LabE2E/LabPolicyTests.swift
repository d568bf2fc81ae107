import Foundation
import Glibc
import Testing
import TrellisNet
import TrellisPolicy
import TrellisTestSupport

/// NetworkPolicy in the lab's datapath, in the model of the upstream netpol e2e suite:
/// namespaces x, y, z with pods a (node-1), b (node-2), c (node-3) each, serving 80 and 81 over
/// TCP and UDP. Each scenario applies policies (and label changes) with `lab apply`, probes the
/// full 9x9 matrix on the four ports, and compares every cell with the reference evaluator
/// (`PolicyCluster.verdict`, itself checked against hand-written truth tables in the unit
/// suites) run on the lab's own objects and addresses.
@Suite("Lab NetworkPolicy end to end", .serialized,
       .needsRoot,
       .enabled(if: LabBinaries.ready, "needs trellisctl, trellis and trellis-agent beside the test bundle and the BPF objects in .build/bpf (hack/test.sh builds them)"))
struct LabPolicyTests {
    /// The lab and the test's model of what it holds.
    final class World {
        let state: String
        var namespaceLabels: [String: Labels] = [:]
        var podLabels: [PodKey: Labels] = [:]
        var policies: [PolicyKey: NetworkPolicy] = [:]
        var podIPs: [PodKey: [IPAddress]] = [:]
        var nodeCIDRs: [String: [IPNetwork]] = [:]
        var applied = 0

        static let namespaces = ["x", "y", "z"]
        static let pods = ["a", "b", "c"]
        static func node(of pod: String) -> String { "node-\(pods.firstIndex(of: pod)! + 1)" }

        init(state: String) {
            self.state = state
            for ns in Self.namespaces {
                namespaceLabels[ns] = ["ns": ns]
                for p in Self.pods { podLabels[PodKey(ns, p)] = ["pod": p] }
            }
        }

        /// Named ports as upstream names them; `web` is 80/TCP on a, 81/TCP on b and c.
        static func ports(of pod: String) -> [(name: String, port: Int, proto: String)] {
            [(pod == "a" ? "web" : "serve-80-tcp", 80, "TCP"), (pod == "a" ? "serve-81-tcp" : "web", 81, "TCP"),
             ("serve-80-udp", 80, "UDP"), ("serve-81-udp", 81, "UDP")]
        }

        func namespaceManifest(_ ns: String) -> String {
            let labels = (namespaceLabels[ns] ?? [:]).sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }
            return #"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "\#(ns)", "labels": {\#(labels.joined(separator: ", "))}}}"#
        }

        func podManifest(_ key: PodKey) -> String {
            let labels = (podLabels[key] ?? [:]).sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }
            let ports = Self.ports(of: key.name).map { #"{"name": "\#($0.name)", "containerPort": \#($0.port), "protocol": "\#($0.proto)"}"# }
            return #"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "\#(key.name)", "namespace": "\#(key.namespace)", "labels": {\#(labels.joined(separator: ", "))}}, "spec": {"nodeName": "\#(Self.node(of: key.name))", "containers": [{"name": "srv", "ports": [\#(ports.joined(separator: ", "))]}]}}"#
        }

        /// Applies a list of objects (JSON texts) with `lab apply` (or `lab delete`).
        func kubectl(_ verb: String, _ objects: [String]) throws {
            applied += 1
            let file = state + ".\(applied).json"
            try (#"{"apiVersion": "v1", "kind": "List", "items": ["# + objects.joined(separator: ",\n") + "]}")
                .write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let r = LabE2E.ctl(["lab", verb, "-f", file, "--state", state], timeout: 120)
            try #require(r.code == 0, "lab \(verb): \(r)")
        }

        func up(mode: String) throws {
            let up = LabE2E.ctl(["lab", "up", "--nodes", "3", "--datapath", mode, "--state", state,
                                 "--bpf-dir", LabBinaries.repo + "/.build/bpf"], timeout: 90)
            try #require(up.code == 0, "lab up: \(up)")
            try kubectl("apply", Self.namespaces.map(namespaceManifest)
                        + Self.namespaces.flatMap { ns in Self.pods.map { podManifest(PodKey(ns, $0)) } })
            let status = LabE2E.ctl(["lab", "status", "-o", "json", "--state", state])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any])
            for p in object["pods"] as? [[String: Any]] ?? [] {
                let key = PodKey(p["namespace"] as! String, p["name"] as! String)
                podIPs[key] = (p["ips"] as? [String] ?? []).compactMap(IPAddress.init)
            }
            for n in object["nodes"] as? [[String: Any]] ?? [] {
                nodeCIDRs[n["name"] as! String] = (n["podCIDRs"] as? [String] ?? []).compactMap(IPNetwork.init)
            }
            try #require(podIPs.count == 9 && podIPs.values.allSatisfy { $0.count == 2 }, "\(status)")
        }

        var cluster: PolicyCluster {
            PolicyCluster(
                policies: Array(policies.values),
                pods: podLabels.map { key, labels in
                    PodInfo(namespace: key.namespace, name: key.name, labels: labels, ips: podIPs[key] ?? [],
                            node: Self.node(of: key.name),
                            namedPorts: Self.ports(of: key.name).map { NamedPort($0.name, UInt16($0.port), Proto(name: $0.proto)!) })
                },
                namespaces: namespaceLabels.map { NamespaceInfo(name: $0.key, labels: $0.value) })
        }
    }

    /// One step of a scenario: what changes, then the matrix is checked.
    struct Step {
        var apply: [NetworkPolicy] = []
        var delete: [PolicyKey] = []
        var podLabels: [PodKey: Labels] = [:]
        var namespaceLabels: [String: Labels] = [:]
        var ipv6 = false
    }

    struct Scenario: CustomTestStringConvertible, Sendable {
        var name: String
        var steps: @Sendable (World) -> [Step]
        var testDescription: String { name }
    }

    static func sel(_ l: Labels, _ e: [LabelSelectorRequirement] = []) -> LabelSelector { LabelSelector(matchLabels: l, matchExpressions: e) }
    static func pol(_ ns: String, _ name: String, select: LabelSelector = .everything, types: [PolicyDirection]? = nil,
                    ingress: [PolicyRule] = [], egress: [PolicyRule] = []) -> NetworkPolicy {
        NetworkPolicy(namespace: ns, name: name, podSelector: select, policyTypes: types, ingress: ingress, egress: egress)
    }
    static func rule(_ peers: [PolicyPeer] = [], _ ports: [PolicyPort] = []) -> PolicyRule { PolicyRule(peers: peers, ports: ports) }

    static let scenarios: [Scenario] = [
        Scenario(name: "default deny ingress in x; then deny egress too") { _ in [
            Step(apply: [pol("x", "deny-ingress")]),
            Step(apply: [pol("x", "deny-egress", types: [.egress])], ipv6: true),
        ] },
        Scenario(name: "egress: default deny in x but UDP 80 to namespace z (DNS-style)") { _ in [
            Step(apply: [pol("x", "dns-only", types: [.egress],
                             egress: [rule([.namespaces(sel(["ns": "z"]))], [.udp(80)])])]),
        ] },
        Scenario(name: "namespaceSelector: x/a from namespace y on 80/TCP") { _ in [
            Step(apply: [pol("x", "a-from-y", select: sel(["pod": "a"]),
                             ingress: [rule([.namespaces(sel(["ns": "y"]))], [.tcp(80)])])]),
        ] },
        Scenario(name: "pod and namespace selector in one peer (AND), then as two peers (OR)") { _ in [
            Step(apply: [pol("x", "and", select: sel(["pod": "a"]),
                             ingress: [rule([PolicyPeer(podSelector: sel(["pod": "c"]), namespaceSelector: sel(["ns": "y"]))])])]),
            Step(apply: [pol("x", "and", select: sel(["pod": "a"]),
                             ingress: [rule([.pods(sel(["pod": "c"])), .namespaces(sel(["ns": "y"]))])])]),
        ] },
        Scenario(name: "matchExpressions: NotIn and Exists") { _ in [
            Step(apply: [pol("y", "exprs", select: sel([:], [.init(key: "pod", .notIn, ["a"])]),
                             ingress: [rule([PolicyPeer(podSelector: sel([:], [.init(key: "pod", .in, ["a", "b"])]),
                                                        namespaceSelector: sel([:], [.init(key: "ns", .exists)]))])])]),
        ] },
        Scenario(name: "ipBlock with except: x/a from node-2's pod CIDR but y/b") { w in
            let cidr4 = w.nodeCIDRs["node-2"]!.first { $0.family == .v4 }!
            let yb4 = w.podIPs[PodKey("y", "b")]!.first { $0.family == .v4 }!
            let cidr6 = w.nodeCIDRs["node-2"]!.first { $0.family == .v6 }!
            let yb6 = w.podIPs[PodKey("y", "b")]!.first { $0.family == .v6 }!
            return [
                Step(apply: [pol("x", "a-from-node-2", select: sel(["pod": "a"]), ingress: [rule([
                    .block(IPBlock(cidr: cidr4, except: [IPNetwork(address: yb4, prefixLength: 32)!])!),
                    .block(IPBlock(cidr: cidr6, except: [IPNetwork(address: yb6, prefixLength: 128)!])!),
                ])])]),
                Step(ipv6: true),
            ]
        },
        Scenario(name: "named ports: ingress on web resolves per destination, egress per peer") { _ in [
            Step(apply: [pol("x", "web-only", ingress: [rule([], [.named("web")])])]),
            Step(apply: [pol("y", "to-x-web", types: [.egress], egress: [rule([.namespaces(sel(["ns": "x"]))], [.named("web")])])]),
        ] },
        Scenario(name: "endPort: TCP 80-81 into z, not UDP") { _ in [
            Step(apply: [pol("z", "tcp-range", ingress: [rule([], [.tcp(80, endPort: 81)])])]),
        ] },
        Scenario(name: "policies are unioned; a replaced policy narrows; a deleted one restores") { _ in [
            Step(apply: [pol("x", "from-y", ingress: [rule([.namespaces(sel(["ns": "y"]))])]),
                         pol("x", "from-z-a", ingress: [rule([PolicyPeer(podSelector: sel(["pod": "a"]), namespaceSelector: sel(["ns": "z"]))])])]),
            Step(apply: [pol("x", "from-y", ingress: [rule([.namespaces(sel(["ns": "y"]))], [.udp(81)])])]),
            Step(delete: [PolicyKey("x", "from-z-a")]),
            Step(delete: [PolicyKey("x", "from-y")]),
        ] },
        Scenario(name: "a label change on a live pod, then on a namespace, changes the verdicts") { _ in [
            Step(apply: [pol("x", "from-blue", ingress: [rule([PolicyPeer(podSelector: sel(["color": "blue"]), namespaceSelector: .everything)])])]),
            Step(podLabels: [PodKey("y", "b"): ["pod": "b", "color": "blue"]]),
            Step(apply: [pol("x", "from-blue", ingress: [rule([.namespaces(sel(["team": "blue"]))])])]),
            Step(namespaceLabels: ["z": ["ns": "z", "team": "blue"]]),
            Step(podLabels: [PodKey("y", "b"): ["pod": "b"]], namespaceLabels: ["z": ["ns": "z"]]),
        ] },
        Scenario(name: "allow-all ingress overrides a default deny") { _ in [
            Step(apply: [pol("y", "deny"), pol("y", "allow-all", ingress: [rule()])]),
        ] },
    ]

    /// The bridge-mode run: the same datapath programs, another delivery path; a subset.
    static let bridgeScenarios = [0, 3, 5, 6, 9].map { scenarios[$0] }

    @Test("the x, y, z truth tables in the lab datapath (ebpf mode)")
    func ebpf() throws {
        try run(mode: "ebpf", Self.scenarios)
    }

    @Test("the x, y, z truth tables in the lab datapath (bridge mode, a subset)")
    func bridge() throws {
        try run(mode: "bridge", Self.bridgeScenarios)
    }

    func run(mode: String, _ scenarios: [Scenario]) throws {
        let state = "/tmp/trlt-np-\(getpid())-\(mode)"
        defer {
            _ = LabE2E.ctl(["lab", "down", "--state", state], timeout: 60)
            try? FileManager.default.removeItem(atPath: state)
        }
        let w = World(state: state)
        try w.up(mode: mode)
        // No policy: everything connects.
        try check(w, "no policies (\(mode))")
        for s in scenarios {
            for (i, step) in s.steps(w).enumerated() {
                try apply(step, to: w)
                try check(w, "\(s.name) (\(mode)), step \(i + 1)", ipv6: step.ipv6)
            }
            // Back to the world without policies, labels as at the start.
            try apply(Step(delete: Array(w.policies.keys),
                           podLabels: w.podLabels.filter { $0.value != ["pod": $0.key.name] }.mapValues { _ in [:] },
                           namespaceLabels: w.namespaceLabels.filter { $0.value != ["ns": $0.key] }.mapValues { _ in [:] }), to: w)
        }
        // Traffic from a pod's own node is always allowed (kubelet probes); explain agrees with the datapath.
        try apply(Step(apply: [Self.pol("x", "deny")]), to: w)
        let probe = LabE2E.ctl(["lab", "probe", "node-1", "x/a", "80", "--state", state])
        #expect(probe.code == 0, "kubelet-style probe under default deny: \(probe)")
        let denied = LabE2E.run(LabBinaries.binDir + "/trellisctl",
                                ["policy", "explain", "--lab", "--state", state, "--from", "y/b", "--to", "x/a", "--port", "80/TCP"])
        #expect(denied.code == 1 && denied.out.contains("DENIED") && denied.out.contains("no entry matches: denied"), "\(denied)")
    }

    /// Applies a step to the lab (and to the test's model).
    func apply(_ step: Step, to w: World) throws {
        var objects: [String] = []
        for (ns, labels) in step.namespaceLabels {
            w.namespaceLabels[ns] = labels.isEmpty ? ["ns": ns] : labels
            objects.append(w.namespaceManifest(ns))
        }
        for (key, labels) in step.podLabels {
            w.podLabels[key] = labels.isEmpty ? ["pod": key.name] : labels
            objects.append(w.podManifest(key))
        }
        for p in step.apply {
            w.policies[p.key] = p
            objects.append(p.manifest.json)
        }
        if !objects.isEmpty { try w.kubectl("apply", objects) }
        if !step.delete.isEmpty {
            try w.kubectl("delete", step.delete.map { w.policies[$0]!.manifest.json })
            for k in step.delete { w.policies[k] = nil }
        }
    }

    /// Probes the matrix and compares every cell with the reference verdict.
    func check(_ w: World, _ what: String, ipv6: Bool = false) throws {
        var args = ["lab", "probe", "--matrix", "80/TCP", "81/TCP", "80/UDP", "81/UDP", "-o", "json", "--timeout", "1",
                    "--state", w.state]
        if ipv6 { args.append("--ipv6") }
        let r = LabE2E.ctl(args, timeout: 60)
        try #require(r.code == 0, "\(what): matrix: \(r)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let probes = try #require(object["probes"] as? [[String: Any]])
        #expect(probes.count == 9 * 8 * 4, "\(what)")
        let cluster = w.cluster
        var wrong: [String] = []
        for p in probes {
            let from = PodKey.parse(p["from"] as! String), to = PodKey.parse(p["to"] as! String)
            let port = UInt16(p["port"] as! Int), proto = Proto(name: p["protocol"] as! String)!
            let expected = cluster.verdict(from: .pod(from), to: .pod(to), port: port, proto: proto, family: ipv6 ? .v6 : .v4)
            let ok = p["ok"] as! Bool
            if ok != expected.allowed {
                wrong.append("\(from) -> \(to) \(port)/\(proto): \(p["outcome"] as! String), expected \(expected.allowed ? "allowed" : "denied") (\(expected))")
            }
        }
        let differences = wrong.prefix(12).joined(separator: "\n")
        let agrees = wrong.isEmpty   // (a Bool: the expectation then prints the list once, not twice)
        #expect(agrees, "\(what): \(wrong.count) of \(probes.count) cells differ from the reference:\n\(differences)")
        if !wrong.isEmpty { print(LabE2E.ctl(["lab", "probe", "--matrix", "--state", w.state]).out) }
    }
}

extension PodKey {
    /// `ns/name`
    static func parse(_ s: String) -> PodKey {
        let parts = s.split(separator: "/", maxSplits: 1).map(String.init)
        return PodKey(parts[0], parts[1])
    }
}
