import Testing
import TrellisNet
@testable import TrellisPolicy

/// 5,000 pods in 50 namespaces on 10 nodes (20 workloads of 5 replicas per namespace, a tenth
/// of the pods with a per-pod label), 1,000 policies with pod, namespace and ipBlock peers,
/// named ports and ranges. The test only checks that compiling and updating finish and agree;
/// timings are printed (run with `-c release` to measure: hack/bench/policy-scale).
enum ScaleWorld {
    static let namespaces = (0..<50).map { NamespaceInfo(name: "ns-\($0)", labels: ["team": "t\($0 % 5)", "env": $0 % 2 == 0 ? "prod" : "dev"]) }
    static let nodes = (0..<10).map { NodeInfo(name: "node-\($0)", ips: [addr("192.168.1.\($0 + 1)")]) }

    static let pods: [PodInfo] = {
        var out: [PodInfo] = []
        for n in 0..<50 {
            for i in 0..<100 {
                let app = i / 5
                var labels: Labels = ["app": "app-\(app)", "tier": ["web", "api", "db"][app % 3], "pod-template-hash": "h\(n)-\(app)"]
                if i % 10 == 0 { labels["statefulset.kubernetes.io/pod-name"] = "app-\(app)-\(i % 5)" }
                if n == 0 && app == 0 { labels = ["k8s-app": "kube-dns"] }
                let k = n * 100 + i
                out.append(PodInfo(namespace: "ns-\(n)", name: "p-\(i)", labels: labels,
                                   ips: [addr("10.\(k % 10).\(k / 250).\(k % 250 + 1)")], node: "node-\(k % 10)",
                                   namedPorts: [NamedPort("http", 8080), NamedPort("metrics", 9090)]))
            }
        }
        return out
    }()

    static let policies: [NetworkPolicy] = {
        var out: [NetworkPolicy] = []
        for n in 0..<50 {
            let ns = "ns-\(n)"
            out.append(netpol(ns, "default-deny", types: [.ingress, .egress]))
            for app in 0..<19 {
                out.append(netpol(ns, "app-\(app)", select: sel(["app": "app-\(app)"]), types: [.ingress, .egress],
                    ingress: [
                        rule([.pods(sel(["app": "app-\((app + 1) % 20)"]))], [.named("http"), .tcp(8443, endPort: 8453)]),
                        rule([PolicyPeer(podSelector: sel(["tier": "web"]), namespaceSelector: sel(["team": "t\(app % 5)"]))], [.named("metrics")]),
                        rule([.block(block("172.16.\(app).0/24", except: ["172.16.\(app).128/25"]))], [.tcp(8080)]),
                    ],
                    egress: [
                        rule([.pods(sel([:], [.init(key: "tier", .in, ["api", "db"])]))], [.tcp(5432), .named("http")]),
                        rule([PolicyPeer(podSelector: sel(["k8s-app": "kube-dns"]), namespaceSelector: .everything)], [.udp(53), .tcp(53)]),
                        rule([.block(block("0.0.0.0/0", except: ["10.0.0.0/8", "192.168.0.0/16"]))], [.tcp(443)]),
                    ]))
            }
        }
        return out
    }()
}

@Suite struct PolicyScaleTests {
    func time<T>(_ what: String, _ body: () -> T) -> T {
        let clock = ContinuousClock()
        var out: T?
        let d = clock.measure { out = body() }
        print("policy-scale: \(what): \(d)")
        return out!
    }

    @Test func fiveThousandPodsAThousandPolicies() {
        #expect(ScaleWorld.pods.count == 5000 && ScaleWorld.policies.count == 1000)
        var node = time("full compile, one node of 10") {
            PolicyEngine(localNode: "node-3", policies: ScaleWorld.policies, pods: ScaleWorld.pods,
                         namespaces: ScaleWorld.namespaces, nodes: ScaleWorld.nodes)
        }
        let entries = time("materialize policy map") { node.policyMap.count }
        print("policy-scale: node-3: \(node.endpoints.count) endpoints, \(entries) policy entries, \(node.ipcache.count) ipcache entries, identities \(node.identityCount)")
        #expect(node.endpoints.count == 500)
        #expect(node.ipcache.count >= 5000)

        // A label change on a busy pod, a new pod, a policy change, a namespace relabel.
        var pod = ScaleWorld.pods[3 * 100 + 13]
        pod.labels["app"] = "app-0"
        let d1 = time("label change") { node.apply(.upsertPod(pod)) }
        let newPod = PodInfo(namespace: "ns-7", name: "new", labels: ["app": "app-4", "tier": "db"], ips: [addr("10.99.0.1")],
                             node: "node-3", namedPorts: [NamedPort("http", 8080)])
        let d2 = time("new local pod") { node.apply(.upsertPod(newPod)) }
        var policy = ScaleWorld.policies[1 + 7 * 20 + 4]
        policy.ingress.append(rule([.namespaces(sel(["env": "prod"]))], [.tcp(9000)]))
        let d3 = time("policy replaced") { node.apply(.upsertPolicy(policy)) }
        let d4 = time("namespace relabelled") { node.apply(.upsertNamespace(NamespaceInfo(name: "ns-11", labels: ["team": "t2", "env": "prod"]))) }
        print("policy-scale: diffs: \(d1); \(d2); \(d3); \(d4)")
        #expect(!d2.endpointsAdded.isEmpty)

        let fresh = time("full compile again") {
            PolicyEngine(localNode: "node-3", policies: Array(node.cluster.policies.values), pods: Array(node.cluster.pods.values),
                         namespaces: Array(node.cluster.namespaces.values), nodes: Array(node.cluster.nodes.values))
        }
        #expect(SymbolicState(node) == SymbolicState(fresh))
    }

    @Test func wholeClusterCompile() {
        let all = time("full compile, every pod local") {
            PolicyEngine(localNode: nil, policies: ScaleWorld.policies, pods: ScaleWorld.pods,
                         namespaces: ScaleWorld.namespaces, nodes: ScaleWorld.nodes)
        }
        #expect(all.endpoints.count == 5000)
        print("policy-scale: whole cluster: \(all.identityCount) identities")
    }
}
