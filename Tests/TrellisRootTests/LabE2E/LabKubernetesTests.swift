import Foundation
import Glibc
import Testing
import TrellisKube
import TrellisTestSupport

/// The lab's Kubernetes mode against the API server stand-in (TLS with a private CA, bearer
/// tokens from a file): nodes registered, agents on the `kubernetes` source, pods made and
/// relabelled with the real kubectl, and the resilience the agent owes a real cluster.
@Suite("Lab in Kubernetes mode (API server stand-in)", .serialized,
       .needsRoot,
       .enabled(if: LabBinaries.ready, "needs trellisctl, trellis and trellis-agent beside the test bundle and the BPF objects in .build/bpf (hack/test.sh builds them)"),
       .enabled(if: HostTools.onPath("kubectl") != nil, "needs kubectl on PATH"),
       .enabled(if: HostTools.onPath("python3") != nil && HostTools.onPath("openssl") != nil,
                "needs python3 (the stand-in) and openssl (its certificates)"))
struct LabKubernetesTests {
    static let world = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: x, labels: {team: blue}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: "y", labels: {team: red}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: a, namespace: x, labels: {app: a}}
    spec:
      nodeName: node-1
      containers: [{name: srv, image: agnhost, ports: [{name: http, containerPort: 80}, {containerPort: 81, protocol: UDP}]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: b, namespace: "y", labels: {app: b}}
    spec:
      nodeName: node-2
      containers: [{name: srv, image: agnhost, ports: [{name: http, containerPort: 80}]}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: c, namespace: x, labels: {app: c}}
    spec:
      nodeName: node-2
      containers: [{name: srv, image: agnhost, ports: [{name: http, containerPort: 80}]}]
    """

    static let policy = """
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: a-from-clients, namespace: x}
    spec:
      podSelector: {matchLabels: {app: a}}
      ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}], ports: [{port: http}]}]
    """

    struct Env {
        let state: String
        let kubeconfig: String
        let tokenFile: String

        func kubectl(_ args: [String], stdin: String? = nil) throws -> CommandResult {
            try runCommand([HostTools.onPath("kubectl")!, "--kubeconfig", kubeconfig] + args, stdin: stdin)
        }

        func probe(_ from: String, _ to: String, _ port: String, timeout: String = "0.5") -> Bool {
            LabE2E.ctl(["lab", "probe", from, to, port, "--timeout", timeout, "--state", state]).code == 0
        }

        /// How long until the probe's verdict is `want` (nil: not within `limit` seconds).
        func secondsUntil(_ from: String, _ to: String, _ port: String, is want: Bool, limit: Double) -> Double? {
            let start = Date()
            while Date().timeIntervalSince(start) < limit {
                if probe(from, to, port, timeout: "0.3") == want { return Date().timeIntervalSince(start) }
            }
            return nil
        }

        func agentStatus() throws -> [[String: Any]] {
            let r = LabE2E.run(LabBinaries.binDir + "/trellisctl", ["status", "--lab", "--state", state, "-o", "json"])
            return try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]], "\(r)")
        }

        func policyWrites() throws -> [Int] {
            try agentStatus().map { (($0["counts"] as? [String: Any])?["policyWrites"] as? Int) ?? -1 }
        }
    }

    @Test("kubectl drives pods and policies; relists, a rotated token and a 30 s API outage leave the datapath alone")
    func kubernetesMode() async throws {
        let tls = try TLSMaterial.shared()
        let standin = try StandIn.start(StandInOptions(tls: tls, tokens: ["token-1"], bookmarkInterval: 1))
        defer { standin.stop() }
        let dir = TempDir("lab-kube")
        defer { dir.remove() }
        dir.write("token", "token-1\n")
        dir.write("kubeconfig", """
            apiVersion: v1
            kind: Config
            clusters: [{name: standin, cluster: {server: "\(standin.url)", certificate-authority: "\(tls.caCert)"}}]
            users: [{name: trellis, user: {tokenFile: "\(dir.file("token"))"}}]
            contexts: [{name: lab, context: {cluster: standin, user: trellis}}]
            current-context: lab
            """)
        let env = Env(state: "/tmp/trlt-kube-\(getpid())", kubeconfig: dir.file("kubeconfig"), tokenFile: dir.file("token"))
        defer {
            _ = LabE2E.ctl(["lab", "down", "--state", env.state], timeout: 60)
            try? FileManager.default.removeItem(atPath: env.state)
        }

        // Nodes registered, agents up on the kubernetes source, the condition set.
        let up = LabE2E.ctl(["lab", "up", "--nodes", "2", "--kubeconfig", env.kubeconfig, "--state", env.state,
                             "--bpf-dir", LabBinaries.repo + "/.build/bpf"], timeout: 90)
        try #require(up.code == 0, "lab up: \(up)")
        let node = try env.kubectl(["get", "node", "node-1", "-o", "json"])
        let nodeObject = try #require(try JSONSerialization.jsonObject(with: Data(node.stdout.utf8)) as? [String: Any], "\(node)")
        #expect((nodeObject["spec"] as? [String: Any])?["podCIDRs"] as? [String] == ["10.244.1.0/24", "fd00:10:244:1::/64"])
        let conditions = ((nodeObject["status"] as? [String: Any])?["conditions"] as? [[String: Any]]) ?? []
        #expect(conditions.contains { $0["type"] as? String == "NetworkUnavailable" && $0["status"] as? String == "False"
            && $0["reason"] as? String == "TrellisIsUp" }, "\(conditions)")

        // Pods made with kubectl are wired by the pod runners and reachable.
        let applied = try env.kubectl(["apply", "-f", "-"], stdin: Self.world)
        try #require(applied.status == 0, "\(applied)")
        var running = 0
        for _ in 0..<100 {
            let pods = try env.kubectl(["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.status.phase} {.status.podIP}{\"\\n\"}{end}"])
            running = pods.stdout.split(separator: "\n").filter { $0.hasPrefix("Running 10.244.") }.count
            if running == 3 { break }
            usleep(100_000)
        }
        try #require(running == 3, "the pod runners wired the three pods")
        #expect(env.probe("y/b", "x/a", "80"), "a pod created with kubectl is reachable")
        #expect(env.probe("x/c", "x/a", "81/udp"))

        // A policy, then a label change on a live pod: verdicts follow within a second.
        #expect(try env.kubectl(["apply", "-f", "-"], stdin: Self.policy).status == 0)
        #expect(env.secondsUntil("y/b", "x/a", "80", is: false, limit: 5) != nil, "the policy isolates x/a")
        #expect(try env.kubectl(["-n", "y", "label", "pod", "b", "role=client"]).status == 0)
        let relabelled = env.secondsUntil("y/b", "x/a", "80", is: true, limit: 5)
        #expect(relabelled.map { $0 < 1 } == true, "allowed after the label change: \(String(describing: relabelled)) s")
        #expect(!env.probe("x/c", "x/a", "80"), "still denied to the unlabelled")

        // Every watch dropped and the history compacted past where the agents stood (a change
        // they did not see, then compaction, while they cannot reconnect): their watches get 410,
        // they relist, and rewrite nothing, since nothing they program changed.
        let writesBefore = try env.policyWrites()
        let listsBefore = try await standin.stats().count("list pods")
        try await standin.pause(seconds: 2)
        let annotate = try await standin.admin(.PATCH, "/api/v1/namespaces/y/pods/b",
                                               json: #"{"metadata": {"annotations": {"touched": "yes"}}}"#,
                                               contentType: "application/merge-patch+json")
        #expect(annotate.status == 200, "\(annotate)")
        try await standin.compact()
        try await standin.dropWatches()
        try await waitFor("the agents and runners relist pods", timeout: .seconds(40)) {
            try await standin.stats().count("list pods") >= listsBefore + 4
        }
        try await Task.sleep(for: .seconds(1))
        #expect(try env.policyWrites() == writesBefore, "a relist of unchanged objects writes no map entry")
        #expect(env.probe("y/b", "x/a", "80"))

        // The token rotated (server and client file): the agents carry on with the new one.
        standin.dir.write("tokens", "token-2\n")
        dir.write("token", "token-2\n")
        try await Task.sleep(for: .seconds(1))
        try await standin.dropWatches()
        #expect(try env.kubectl(["-n", "y", "label", "pod", "b", "role-"]).status == 0)
        #expect(env.secondsUntil("y/b", "x/a", "80", is: false, limit: 15) != nil, "a change after the rotation arrives")

        // The API server away for 30 s: traffic keeps flowing, policy stays enforced; a change
        // made meanwhile arrives once it is back.
        try await standin.pause(seconds: 30)
        try await Task.sleep(for: .seconds(1))
        let patch = #"{"metadata": {"labels": {"role": "client"}}}"#
        let admin = try await standin.admin(.PATCH, "/api/v1/namespaces/y/pods/b", json: patch,
                                            contentType: "application/merge-patch+json")
        #expect(admin.status == 200, "\(admin)")
        for _ in 0..<5 {
            #expect(env.probe("x/a", "y/b", "80") && env.probe("x/c", "y/b", "80"), "traffic flows while the API server is away")
            #expect(!env.probe("y/b", "x/a", "80"), "the policy stays enforced while the API server is away")
            try await Task.sleep(for: .seconds(4))
        }
        let caughtUp = env.secondsUntil("y/b", "x/a", "80", is: true, limit: 45)
        #expect(caughtUp != nil, "the agents caught up with the change made during the outage")

        // down removes the Node objects it registered.
        let down = LabE2E.ctl(["lab", "down", "--state", env.state], timeout: 60)
        #expect(down.code == 0, "\(down)")
        #expect(try env.kubectl(["get", "nodes", "-o", "name"]).stdout.isEmpty)
    }
}
