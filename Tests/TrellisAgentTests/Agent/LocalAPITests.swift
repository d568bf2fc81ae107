import Foundation
import Testing
import TrellisCore
@testable import TrellisAgent
import TrellisJSON
import TrellisNet
import TrellisPolicy
import TrellisTestSupport

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }

extension AgentSuite {
    /// The operator's side of the socket: agent status, explain, monitor, through the client
    /// trellisctl uses, against a controller that knows a small cluster.
    @Suite("Agent local API")
    struct LocalAPITests {
        static let snapshot = ClusterSnapshot(
            nodes: [ClusterNode(name: "a", podCIDRs: [net("10.244.1.0/24")], internalIPs: [ip("192.168.50.1")]),
                    ClusterNode(name: "b", podCIDRs: [net("10.244.2.0/24")], internalIPs: [ip("192.168.50.2")])],
            namespaces: [ClusterNamespace(name: "x", labels: ["ns": "x"]), ClusterNamespace(name: "y", labels: ["ns": "y"])],
            pods: [ClusterPod(namespace: "x", name: "web", labels: ["app": "web"], nodeName: "a",
                              ports: [ContainerPort(name: "http", containerPort: 8080)], podIPs: [ip("10.244.1.5")], phase: "Running"),
                   ClusterPod(namespace: "y", name: "client", labels: ["app": "client"], nodeName: "b",
                              podIPs: [ip("10.244.2.7")], phase: "Running")],
            policies: [NetworkPolicy(namespace: "x", name: "web-from-y", podSelector: LabelSelector(matchLabels: ["app": "web"]),
                                     ingress: [PolicyRule(peers: [.namespaces(LabelSelector(matchLabels: ["ns": "y"]))], ports: [.named("http")])])],
            revision: "42")

        @Test("agent, explain and monitor over the socket")
        func localAPI() async throws {
            let dir = TempDir("localapi")
            defer { dir.remove() }
            let log = TestLog()
            let programmer = RecordingProgrammer()
            let board = StatusBoard()
            let controller = DatapathController(programmer: programmer, links: FakeLinks([HandshakeRig.veth7]), nodeName: "a",
                                                vni: 1, mode: .ebpf, board: board, logger: log.logger)
            let monitor = DropMonitor(programmer: programmer, node: "a", names: controller.names, logger: log.logger)
            monitor.start()
            let server = try HandshakeServer(path: dir.path + "/agent.sock", logger: log.logger, handler: { request in
                await controller.handle(request)
            }, streamer: { request, fd in
                if case .monitor(let filter) = request { monitor.stream(to: fd, filter: filter) }
            })
            server.start()
            defer { Thread { monitor.stop() }.start() }
            _ = await controller.reconcile(Self.snapshot)
            let client = AgentSocketClient(socketPath: dir.path + "/agent.sock", timeoutSeconds: 5)
            // x/web is wired here (its CNI ADD), so this node compiles its policy.
            let add = try JSONValue.parse(Array(HandshakeRig.add("cweb", index: 7, name: "trl0000000007", ips: ["10.244.1.5/32"]).utf8))
            guard case .object(var members) = add else { return }
            members = members.map { m in
                m.key == "podNamespace" ? JSONMember(key: m.key, value: .string("x"))
                    : m.key == "podName" ? JSONMember(key: m.key, value: .string("web")) : m
            }
            _ = try client.call(.object(members))

            // Status: revision programmed, counts, the pod compiled here.
            let status = try client.call(.object([("op", .string("agent"))]))
            #expect(status["node"] == .string("a"))
            #expect(status["revision"] == .string("42"))
            #expect(status["counts"]?["networkPolicies"] == .number(1))
            #expect(status["counts"]?["pods"] == .number(2))

            // Explain: the verdict, the rule, and this node's datapath view.
            let ok = try client.call(ExplainRequest(from: "y/client", to: "x/web", port: 8080, proto: .tcp).json)
            #expect(ok["allowed"] == .bool(true))
            #expect(ok["ingress"]?["allowedBy"] == .strings(["x/web-from-y ingress[0]"]))
            guard case .array(let checks)? = ok["datapath"], let check = checks.first else { Issue.record("\(ok)"); return }
            #expect(check["direction"] == .string("ingress") && check["allowed"] == .bool(true))
            #expect(ok["datapathAgrees"] == .bool(true))
            let no = try client.call(ExplainRequest(from: "y/client", to: "x/web", port: 8081, proto: .tcp).json)
            #expect(no["allowed"] == .bool(false))
            if case .string(let text)? = no["text"] { #expect(text.contains("isolated for ingress by policy x/web-from-y")) }
            #expect(throws: AgentSocketClient.Failure.self) {
                try client.call(.object([("op", .string("explain")), ("from", .string("y/")), ("to", .string("x/web")), ("port", .int(1))]))
            }

            // Monitor: only the reasons asked for, addresses named by pod and node.
            let received = Locked<[JSONValue]>([])
            let streaming = Task.detached {
                try? client.stream(MonitorFilter(reasons: ["policy_ingress"]).json) { event in
                    received.withLock { $0.append(event) }
                    return received.current.count < 1
                }
            }
            try await Task.sleep(for: .milliseconds(300))   // the stream is subscribed
            programmer.pendingEvents.withLock {
                $0 = [DatapathDropEvent(timestampNs: DropMonitor.monotonicNanoseconds(), reason: .spoofedIP,
                                        direction: .fromPod, ifindex: 3, proto: 6, source: ip("10.9.9.9"), destination: ip("10.244.1.5"),
                                        sourcePort: 1, destinationPort: 2, length: 60),
                      DatapathDropEvent(timestampNs: DropMonitor.monotonicNanoseconds(), reason: .policyIngress,
                                        direction: .fromUnderlay, ifindex: 2, proto: 6, source: ip("10.244.2.7"),
                                        destination: ip("10.244.1.5"), sourcePort: 40000, destinationPort: 8081, length: 74)]
            }
            #expect(await eventually(timeout: .seconds(5)) { !received.current.isEmpty })
            _ = await streaming.result
            let e = try #require(received.current.first)
            #expect(e["reason"] == .string("policy_ingress") && e["node"] == .string("a"))
            #expect(e["source"]?["name"] == .string("y/client") && e["destination"]?["name"] == .string("x/web"))
            #expect(e["destination"]?["port"] == .number(8081) && e["protocol"] == .string("TCP"))
            await server.stop()
        }

        @Test("NetworkPolicy manifests: read with the other objects, a wrong one skipped and named")
        func policyManifests() throws {
            let text = """
                apiVersion: networking.k8s.io/v1
                kind: NetworkPolicy
                metadata: {name: web, namespace: x, resourceVersion: "7"}
                spec:
                  podSelector: {matchLabels: {app: web}}
                  ingress: [{ports: [{port: 80}, {port: http, protocol: UDP}]}]
                ---
                apiVersion: networking.k8s.io/v1
                kind: NetworkPolicy
                metadata: {name: broken, namespace: x}
                spec: {podSelector: {}, ingress: [{ports: [{port: 70000}]}]}
                ---
                kind: Namespace
                metadata: {name: x, resourceVersion: "9"}
                """
            let content = try ManifestParser.parse(text, path: "p.yaml")
            let policies = content.objects.compactMap { if case .networkPolicy(let p) = $0 { p } else { nil } }
            #expect(policies.map(\.key) == [PolicyKey("x", "web")])
            #expect(policies.first?.ingress.first?.ports == [.tcp(80), .named("http", .udp)])
            #expect(content.policyProblems.count == 1)
            #expect(content.policyProblems.first?.contains("policy x/broken: spec.ingress[0].ports[0].port 70000") == true, "\(content.policyProblems)")
            #expect(content.highestResourceVersion == 9)
        }
    }
}

/// What `trellisctl monitor -o json` prints for a drop: a user contract, so the exact bytes.
@Suite("Monitor event JSON")
struct MonitorEventJSONTests {
    static let time = Date(timeIntervalSince1970: 1_700_000_000.25)

    @Test("a known reason: its label, words and direction; pod names; no port for 0")
    func knownReason() {
        let e = DatapathDropEvent(timestampNs: 0, reason: .policyIngress, direction: .fromUnderlay, ifindex: 2, proto: 6,
                                  source: ip("10.244.2.7"), destination: ip("10.244.1.5"), sourcePort: 0,
                                  destinationPort: 8081, length: 74)
        let m = MonitorEvent(time: Self.time, node: "a", event: e, sourceName: "y/client", destinationName: "x/web")
        #expect(m.json.serialized == #"{"time":"2023-11-14T22:13:20.250Z","node":"a","reason":"policy_ingress","#
            + #""reasonText":"denied by the destination pod's ingress policy","direction":"from_underlay","protocol":"TCP","#
            + #""source":{"ip":"10.244.2.7","name":"y/client"},"destination":{"ip":"10.244.1.5","port":8081,"name":"x/web"},"#
            + #""ifindex":2,"length":74}"#)
        #expect(MonitorFilter(reasons: ["policy_ingress"]).matches(m))
        #expect(!MonitorFilter(reasons: ["policy_egress"]).matches(m))
    }

    @Test("a code of a newer datapath: code_N, and filterable by it")
    func unknownReason() {
        let e = DatapathDropEvent(timestampNs: 0, code: -200, directionCode: 9, ifindex: 1, proto: 0, source: nil,
                                  destination: nil, sourcePort: 0, destinationPort: 0, length: 42)
        let m = MonitorEvent(time: Self.time, node: "b", event: e, sourceName: nil, destinationName: nil)
        #expect(m.json.serialized == #"{"time":"2023-11-14T22:13:20.250Z","node":"b","reason":"code_-200","#
            + #""reasonText":"drop code -200","direction":"unknown","protocol":"-","source":{},"destination":{},"#
            + #""ifindex":1,"length":42}"#)
        #expect(MonitorFilter(reasons: ["code_-200"]).matches(m))
    }
}
