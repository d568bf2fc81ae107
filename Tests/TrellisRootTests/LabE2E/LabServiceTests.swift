import Foundation
import Glibc
import Testing
import TrellisTestSupport

/// Kubernetes Services in the lab, both datapath modes: the agents read the Services (their
/// cluster IPs become the datapath's Service set), and every node runs a kube-proxy stand-in
/// (nftables DNAT), so a connection to a cluster IP is translated by the node's stack to a
/// backend on the same node or on another one, and must come back through the stack to be
/// de-NATed. Policy applies to the backend chosen, not to the cluster IP. The node's own
/// stack reaches pods on other nodes through the overlay device. Uses the shipped examples
/// (lab-pods.yaml, lab-services.yaml, lab-policies.yaml).
@Suite("Lab Services end to end", .serialized,
       .needsRoot,
       .enabled(if: LabBinaries.ready, "needs trellisctl, trellis and trellis-agent beside the test bundle and the BPF objects in .build/bpf (hack/test.sh builds them)"))
struct LabServiceTests {
    static let examples = LabBinaries.repo + "/deploy/examples/"

    func ctl(_ args: [String], _ state: String, timeout: TimeInterval = 60) -> LabE2E.Run {
        LabE2E.ctl(args + ["--state", state], timeout: timeout)
    }

    /// Every (from, to, port, expected) probe; all mismatches in one message.
    func expectProbes(_ cases: [(String, String, String, Bool)], _ state: String, _ what: String) {
        var wrong: [String] = []
        for (from, to, port, want) in cases {
            let r = ctl(["lab", "probe", from, to, port, "--timeout", "1"], state)
            if (r.code == 0) != want { wrong.append("\(from) -> \(to) \(port): want \(want ? "connected" : "blocked"), got: \(r.out)\(r.err)") }
        }
        #expect(wrong.isEmpty, "\(what):\n\(wrong.joined(separator: "\n"))")
    }

    @Test("ClusterIPs across nodes and on one node, the node's own traffic, policy on the backends, restarts", arguments: ["ebpf", "bridge"])
    func services(mode: String) throws {
        let state = "/tmp/trlt-svc-\(getpid())-\(mode)"
        defer {
            _ = ctl(["lab", "down"], state)
            try? FileManager.default.removeItem(atPath: state)
        }
        let up = ctl(["lab", "up", "--nodes", "3", "--datapath", mode, "--bpf-dir", LabBinaries.repo + "/.build/bpf"], state, timeout: 90)
        try #require(up.code == 0, "lab up: \(up)")
        try #require(ctl(["lab", "apply", "-f", Self.examples + "lab-pods.yaml"], state, timeout: 120).code == 0)
        let applied = ctl(["lab", "apply", "-f", Self.examples + "lab-services.yaml"], state)
        try #require(applied.code == 0, "\(applied)")
        #expect(applied.out.contains("service/ops/dns created: 10.96.0.10 53/UDP 53/TCP"), "the address asked for: \(applied.out)")

        // Every agent holds the three cluster IPs and a route into its overlay device per other node.
        func counts() throws -> [[String: Any]] {
            let status = LabE2E.run(LabBinaries.binDir + "/trellisctl", ["status", "--lab", "--state", state, "-o", "json"])
            let agents = try #require(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [[String: Any]], "\(status)")
            return agents.map { ($0["counts"] as? [String: Any]) ?? [:] }
        }
        let before = try counts()
        #expect(before.map { $0["serviceAddresses"] as? Int } == [3, 3, 3], "\(before)")
        #expect(before.map { $0["overlayRoutes"] as? Int } == [4, 4, 4], "two nodes x (IPv4 + IPv6): \(before)")

        // web and cart on node-1, db and cache on node-2, dns and monitor on node-3.
        expectProbes([
            ("shop/web", "svc:shop/db", "sql", true),        // pod -> ClusterIP -> pod on another node
            ("shop/cache", "svc:shop/db", "sql", true),      // ... on the same node
            ("shop/web", "svc:ops/dns", "53/UDP", true),
            ("shop/web", "svc:ops/dns", "53/TCP", true),
            ("ops/dns", "svc:shop/web", "http", true),
            ("node-1", "svc:shop/db", "sql", true),          // the node's stack -> ClusterIP -> another node's pod
            ("node-2", "svc:shop/db", "sql", true),
            ("node-3", "shop/web", "80", true),              // the node's stack -> another node's pod, directly
        ] + (mode == "ebpf" ? [("shop/db", "svc:shop/db", "sql", true)] : []),   // hairpin (see docs/policy.md for bridge)
                     state, "\(mode), no policy")

        // Policy: shop isolated both ways; egress only to shop's pods and DNS to ops/dns; db
        // and cache take only web and cart. Verdicts follow the backend behind the cluster IP.
        try #require(ctl(["lab", "apply", "-f", Self.examples + "lab-policies.yaml"], state).code == 0)
        let monitorSvc = #"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "monitor", "namespace": "ops"}, "spec": {"selector": {"app": "monitor"}, "ports": [{"name": "metrics", "port": 9100, "targetPort": "metrics"}]}}"#
        let file = state + ".monitor.json"
        try monitorSvc.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        try #require(ctl(["lab", "apply", "-f", file], state).code == 0)
        expectProbes([
            ("shop/web", "svc:shop/db", "sql", true),        // db admits web: through the cluster IP too
            ("shop/cart", "svc:shop/db", "sql", true),
            ("ops/monitor", "svc:shop/db", "sql", false),    // db's ingress, checked against monitor
            ("shop/db", "svc:ops/dns", "53/UDP", true),      // egress allowed to the DNS pods, reached by their ClusterIP
            ("shop/web", "svc:ops/monitor", "metrics", false), // egress to monitor's pod: denied behind its ClusterIP
            ("shop/web", "ops/monitor", "9100", false),      // ... as directly
            ("ops/dns", "svc:shop/web", "http", true),
        ], state, "\(mode), lab-policies.yaml")

        // The agents restart: Service set, overlay device and routes are adopted; traffic flows.
        let restart = ctl(["lab", "restart-agents"], state, timeout: 120)
        #expect(restart.code == 0, "\(restart)")
        expectProbes([
            ("shop/web", "svc:shop/db", "sql", true), ("ops/monitor", "svc:shop/db", "sql", false),
            ("node-1", "svc:ops/dns", "53/TCP", true),
        ], state, "\(mode), after the agents restarted")

        // The Services go: the datapath forgets their addresses; pods still reach each other directly.
        try #require(ctl(["lab", "delete", "-f", Self.examples + "lab-services.yaml"], state).code == 0)
        #expect(try counts().map { $0["serviceAddresses"] as? Int } == [1, 1, 1], "ops/monitor's stays")
        expectProbes([("shop/web", "shop/db", "5432", true)], state, "\(mode), Services deleted")
        let gone = ctl(["lab", "probe", "shop/web", "svc:shop/db", "sql"], state)
        #expect(gone.code == 2 && gone.err.contains("not in the lab"), "\(gone)")
    }
}
