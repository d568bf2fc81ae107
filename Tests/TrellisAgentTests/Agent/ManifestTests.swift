import Foundation
import Testing
@testable import TrellisAgent
import TrellisNet
import TrellisTestSupport

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }


extension AgentSuite {
    @Suite("Agent manifests")
    struct ManifestTests {
        static let nodeYAML = """
            apiVersion: v1
            kind: Node
            metadata:
              name: node-b
              labels: {zone: a}
            spec:
              podCIDR: 10.244.2.0/24
              podCIDRs: [10.244.2.0/24, "fd00:244:2::/64"]
            status:
              addresses:
              - {type: Hostname, address: node-b}
              - {type: InternalIP, address: 192.168.50.2}
              - {type: InternalIP, address: "fd00:50::2"}
              - {type: ExternalIP, address: 203.0.113.9}
            """

        @Test("multi-document YAML: Node, Namespace, Pod; unknown kinds ignored")
        func multiDocument() throws {
            let text = Self.nodeYAML + """

                ---
                apiVersion: v1
                kind: Namespace
                metadata: {name: shop, labels: {team: web}}
                ---
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web}
                spec: {replicas: 3}
                ---
                # an empty document is fine
                ---
                apiVersion: v1
                kind: Pod
                metadata:
                  name: web-1
                  namespace: shop
                  labels: {app: web, tier: "1"}
                spec:
                  nodeName: node-b
                  containers:
                  - name: web
                    ports:
                    - {name: http, containerPort: 8080}
                    - {containerPort: 53, protocol: UDP}
                  - name: sidecar
                    ports: [{containerPort: 9090, protocol: SCTP}]
                status:
                  phase: Running
                  hostIP: 192.168.50.2
                  podIP: 10.244.2.7
                  podIPs: [{ip: 10.244.2.7}, {ip: "fd00:244:2::7"}]
                """
            let content = try ManifestParser.parse(text, path: "m.yaml")
            #expect(content.problems.isEmpty, "\(content.problems)")
            #expect(content.objects.count == 3)
            guard case .node(let node) = content.objects[0], case .namespace(let ns) = content.objects[1],
                  case .pod(let pod) = content.objects[2] else {
                Issue.record("unexpected objects \(content.objects)")
                return
            }
            #expect(node == ClusterNode(name: "node-b", podCIDRs: [net("10.244.2.0/24"), net("fd00:244:2::/64")],
                                        internalIPs: [ip("192.168.50.2"), ip("fd00:50::2")], labels: ["zone": "a"]))
            #expect(node.tunnelIP == ip("192.168.50.2"))
            #expect(ns == ClusterNamespace(name: "shop", labels: ["team": "web"]))
            #expect(pod.key == ClusterPod.Key(namespace: "shop", name: "web-1"))
            #expect(pod.labels == ["app": "web", "tier": "1"])
            #expect(pod.nodeName == "node-b")
            #expect(pod.hostNetwork == false)
            #expect(pod.ports == [ContainerPort(name: "http", containerPort: 8080, protocol: .tcp),
                                  ContainerPort(containerPort: 53, protocol: .udp),
                                  ContainerPort(containerPort: 9090, protocol: .sctp)])
            #expect(pod.podIPs == [ip("10.244.2.7"), ip("fd00:244:2::7")])
            #expect(pod.hostIP == ip("192.168.50.2"))
            #expect(pod.phase == "Running")
            #expect(pod.ownsPodIPs)
        }

        @Test("kind: List and typed lists whose items carry no kind")
        func lists() throws {
            let list = """
                apiVersion: v1
                kind: List
                items:
                - {kind: Node, metadata: {name: a}, spec: {podCIDR: 10.244.1.0/24}}
                - {kind: Pod, metadata: {name: p}, status: {podIP: 10.244.1.9}}
                - {kind: ConfigMap, metadata: {name: c}}
                """
            let content = try ManifestParser.parse(list, path: "l.yaml")
            #expect(content.objects.map(\.kindAndName) == ["Node a", "Pod default/p"])
            let typed = """
                apiVersion: v1
                kind: PodList
                items:
                - metadata: {name: q, namespace: x}
                """
            #expect(try ManifestParser.parse(typed, path: "t.yaml").objects.map(\.kindAndName) == ["Pod x/q"])
        }

        @Test("JSON: an object, a List, a bare array; old podCIDR and podIP fields")
        func json() throws {
            let object = #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"c"},"spec":{"podCIDR":"10.244.3.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.50.3"}]}}"#
            let c = try ManifestParser.parse(object, path: "c.json")
            #expect(c.objects == [.node(ClusterNode(name: "c", podCIDRs: [net("10.244.3.0/24")], internalIPs: [ip("192.168.50.3")]))])
            let list = #"{"kind":"List","items":[{"kind":"Namespace","metadata":{"name":"n"}},{"kind":"Pod","metadata":{"name":"p","namespace":"n"},"spec":{"hostNetwork":true},"status":{"podIP":"192.168.50.3"}}]}"#
            let l = try ManifestParser.parse(list, path: "list.txt.json")
            #expect(l.objects.count == 2)
            if case .pod(let p) = l.objects[1] {
                #expect(p.hostNetwork && !p.ownsPodIPs)
                #expect(p.podIPs == [ip("192.168.50.3")])
            }
            let array = #"[{"kind":"Namespace","metadata":{"name":"a"}},{"kind":"Namespace","metadata":{"name":"b"}}]"#
            #expect(try ManifestParser.parse(array, path: "x.yaml").objects.count == 2)  // looks like JSON
        }

        @Test("a node's podCIDR with host bits is read as its network")
        func maskedCIDR() throws {
            let c = try ManifestParser.parse("kind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.244.1.1/24}\n", path: "a.yaml")
            #expect(c.objects == [.node(ClusterNode(name: "a", podCIDRs: [net("10.244.1.0/24")]))])
        }

        @Test("an object with a wrong field is skipped and named; the rest of the file counts")
        func badObjectSkipped() throws {
            let text = """
                kind: Node
                metadata: {name: good}
                ---
                kind: Node
                metadata: {name: bad}
                spec: {podCIDRs: [10.244.9.0/24, nonsense]}
                ---
                kind: Pod
                metadata: {name: p}
                spec: {containers: [{ports: [{containerPort: 70000}]}]}
                ---
                kind: Pod
                metadata: {labels: {a: b}}
                ---
                kind: Namespace
                metadata: {name: n, labels: {enabled: [x]}}
                """
            let c = try ManifestParser.parse(text, path: "m.yaml")
            #expect(c.objects.map(\.kindAndName) == ["Node good"])
            #expect(c.problems.count == 4)
            #expect(c.problems[0] == "document 2: Node bad skipped: spec.podCIDRs[1]: \"nonsense\" is not a CIDR (e.g. 10.244.1.0/24)")
            #expect(c.problems[1].contains("Pod p skipped: spec.containers[0].ports[0].containerPort: 70000 is not a port"))
            #expect(c.problems[2].contains("Pod skipped: metadata.name: missing"))
            #expect(c.problems[3].contains("Namespace n skipped: metadata.labels.enabled: expected a string"))
        }

        @Test("broken files: YAML and JSON syntax errors name the file")
        func brokenFile() {
            do {
                _ = try ManifestParser.parse("kind: Node\nmetadata: {name: [a\n", path: "/m/broken.yaml")
                Issue.record("accepted broken YAML")
            } catch {
                #expect(error.path == "/m/broken.yaml")
                #expect(error.description.hasPrefix("/m/broken.yaml: not valid YAML"), "\(error)")
            }
            do {
                _ = try ManifestParser.parse("{\"kind\": \"Node\",", path: "/m/broken.json")
                Issue.record("accepted broken JSON")
            } catch {
                #expect(error.description.hasPrefix("/m/broken.json: not valid JSON"), "\(error)")
            }
        }
    }
}

extension AgentSuite {
    @Suite("Agent manifests folder")
    struct ManifestsFolderTests {
        @Test("a broken file is logged with its path and skipped; the rest still applies")
        func brokenFileSkipped() async throws {
            try await withTempDir("manifests") { dir in
                let log = TestLog()
                dir.write("10-nodes.yaml", ManifestTests.nodeYAML)
                dir.write("20-broken.yaml", "kind: Node\nmetadata: {name: [oops\n")
                dir.write("30-ns.json", #"{"kind":"Namespace","metadata":{"name":"shop"}}"#)
                dir.write(".hidden.yaml", "kind: Namespace\nmetadata: {name: hidden}\n")
                dir.write("notes.txt", "kind: Namespace\nmetadata: {name: txt}\n")
                var scanner = ManifestScanner(directory: dir.path, logger: log.logger)
                let first = scanner.scan()
                let s = try #require(first)
                #expect(Set(s.nodes.keys) == ["node-b"])
                #expect(Set(s.namespaces.keys) == ["shop"])
                let errors = log.entries.filter { $0.level == .error }
                #expect(errors.count == 1)
                #expect(errors.first?.metadata["file.path"]?.description == dir.file("20-broken.yaml"))
                #expect(errors.first?.message.description.contains("broken and skipped") == true)
                // Polling again without changes re-reads nothing and logs nothing new.
                let before = log.entries.count
                let again = scanner.scan()
                #expect(again == s)
                #expect(log.entries.count == before)
            }
        }

        @Test("changes, removals; a file that breaks keeps its last good content")
        func changes() async {
            await withTempDir("manifests") { dir in
                let log = TestLog()
                var scanner = ManifestScanner(directory: dir.path + "/sub", logger: log.logger)
                #expect(scanner.scan() == nil)  // no folder yet
                #expect(log.contains(.warning, "does not exist"))
                mkdir(dir.path + "/sub", 0o755)
                #expect(scanner.scan() == ClusterSnapshot.empty)

                let sub = TempDirView(path: dir.path + "/sub")
                sub.write("a.yaml", "kind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.244.1.0/24}\n")
                #expect(scanner.scan()?.nodes["a"]?.podCIDRs == [net("10.244.1.0/24")])

                sub.write("a.yaml", "kind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.244.7.0/24}\n")
                #expect(scanner.scan()?.nodes["a"]?.podCIDRs == [net("10.244.7.0/24")])

                sub.write("a.yaml", "kind: Node\nmetadata: {name: a\n")  // half-written
                #expect(scanner.scan()?.nodes["a"]?.podCIDRs == [net("10.244.7.0/24")])
                #expect(log.contains(.error, "keeping its previous content"))

                // The same object in a later file wins.
                sub.write("a.yaml", "kind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.244.1.0/24}\n")
                sub.write("b.yaml", "kind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.244.2.0/24}\n")
                #expect(scanner.scan()?.nodes["a"]?.podCIDRs == [net("10.244.2.0/24")])
                #expect(log.contains(.warning, "defined in two files"))

                unlink(sub.path + "/b.yaml")
                unlink(sub.path + "/a.yaml")
                #expect(scanner.scan() == ClusterSnapshot.empty)
            }
        }

        @Test("the source yields a snapshot per change, and only on change")
        func sourceYields() async {
            await withTempDir("manifests") { dir in
                let log = TestLog()
                dir.write("n.yaml", "kind: Node\nmetadata: {name: a}\n")
                let source = ManifestsSource(directory: dir.path, interval: .milliseconds(20), logger: log.logger)
                var it = source.snapshots().makeAsyncIterator()
                let first = await it.next()
                #expect(first?.nodes.keys.sorted() == ["a"])
                dir.write("m.yaml", "kind: Node\nmetadata: {name: b}\n")
                let second = await it.next()
                #expect(second?.nodes.keys.sorted() == ["a", "b"])
            }
        }
    }
}

/// Writes into a folder that is not a `TempDir` of its own (removed with its parent).
struct TempDirView {
    let path: String
    func write(_ name: String, _ text: String) {
        // Through a rename, as writers should, so the scanner never reads half a file... and so
        // a rewrite within one mtime tick still changes the inode.
        let tmp = path + "/." + name + ".tmp"
        _ = FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8))
        rename(tmp, path + "/" + name)
    }
}
