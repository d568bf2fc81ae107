import Foundation
import Testing
@testable import TrellisAgent
@testable import TrellisLab
import TrellisJSON
import TrellisManifests
import TrellisPolicy

/// The one manifest reader (`ManifestFile`), as the agent and `trellisctl lab apply` use it:
/// what `kubectl apply -f` takes, and errors that name the document and the field.
@Suite("Manifest reader")
struct ManifestReaderTests {
    /// JSON documents separated by `---`: a YAML stream, as kubectl reads it (this failed with
    /// "not valid JSON" because the file starts with `{`).
    static let jsonStream = """
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}}
    ---
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}},
     "spec": {"nodeName": "node-1", "containers": [{"name": "db", "ports": [{"name": "pg", "containerPort": 5432}]}]}}
    ---
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db", "namespace": "shop"},
     "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"ports": [{"port": "pg"}]}]}}
    ---
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
     "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432, "targetPort": "pg"}]}}
    """

    @Test("JSON documents separated by --- are a YAML stream, in a .yaml or a .json file")
    func jsonStreamIsRead() throws {
        for path in ["all.yaml", "all.json", "-"] {
            let file = try ManifestFile(parsing: Self.jsonStream, path: path)
            #expect(file.problems.isEmpty, "\(path): \(file.problems)")
            #expect(file.objects.map(\.kind) == ["Namespace", "Pod", "NetworkPolicy", "Service"], "\(path)")
            #expect(file.objects.map(\.location) == ["document 1", "document 2", "document 3", "document 4"])
            // Quoted stays a string, a number a number: as the JSON reader would have it.
            #expect(file.objects[3].value["spec"]?["ports"] == .array([.object([
                JSONMember(key: "port", value: .number(5432)), JSONMember(key: "targetPort", value: .string("pg"))])]))
        }
        let agent = try ManifestParser.parse(Self.jsonStream, path: "all.yaml")
        #expect(agent.problems.isEmpty, "\(agent.problems)")
        #expect(agent.objects.map(\.kindAndName) == ["Namespace shop", "Pod shop/db", "NetworkPolicy shop/db", "Service shop/db"])
    }

    @Test("one JSON object, a bare JSON array; broken JSON and YAML are named")
    func jsonDocuments() throws {
        let one = try ManifestFile(parsing: #"{"kind": "Namespace", "metadata": {"name": "a"}}"#, path: "a.json")
        #expect(one.objects == [ManifestObject(kind: "Namespace", value: .object([
            JSONMember(key: "kind", value: .string("Namespace")),
            JSONMember(key: "metadata", value: .object([JSONMember(key: "name", value: .string("a"))]))]), location: "")])
        let array = try ManifestFile(parsing: #"[{"kind": "Namespace", "metadata": {"name": "a"}}, {"kind": "Pod", "metadata": {"name": "p"}}]"#,
                                     path: "x.txt")
        #expect(array.objects.map(\.kind) == ["Namespace", "Pod"])
        #expect(array.objects.map(\.location) == ["document 1", "document 2"])
        #expect(throws: ManifestError.self) { try ManifestFile(parsing: #"{"kind": "Node","#, path: "b.json") }
        do {
            _ = try ManifestFile(parsing: #"{"kind": "Node","#, path: "/m/b.json")
        } catch {
            #expect(error.description.hasPrefix("/m/b.json: not valid JSON"), "\(error)")
        }
        do {
            _ = try ManifestFile(parsing: "kind: Pod\nmetadata: [unclosed\n", path: "g.yaml")
            Issue.record("broken YAML was read")
        } catch {
            #expect(error.description.hasPrefix("g.yaml: not valid YAML"), "\(error)")
        }
    }

    @Test("kind: List and typed lists (items without kind); empty lists; items that are not a list")
    func lists() throws {
        let text = """
        apiVersion: v1
        kind: List
        items:
        - {kind: Namespace, metadata: {name: a}}
        - {kind: PodList, items: [{metadata: {name: p}}]}
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicyList
        items:
        - metadata: {name: deny, namespace: a}
          spec: {podSelector: {}}
        - {kind: Pod, metadata: {name: q}}
        ---
        kind: ServiceList
        ---
        kind: List
        items: {a: b}
        ---
        - just
        - a list
        ---
        metadata: {name: kindless}
        """
        let file = try ManifestFile(parsing: text, path: "l.yaml")
        #expect(file.objects.map(\.kind) == ["Namespace", "Pod", "NetworkPolicy", "Pod"])
        #expect(file.objects.map(\.location) == ["document 1: items[0]", "document 1: items[1]: items[0]",
                                                 "document 2: items[0]", "document 2: items[1]"])
        #expect(file.problems == ["document 4: List: items is not a list, got a mapping",
                                  "document 5: expected an object, got a list",
                                  "document 6: no kind"])
        let agent = try ManifestParser.parse(text, path: "l.yaml")
        #expect(agent.objects.map(\.kindAndName) == ["Namespace a", "Pod default/p", "NetworkPolicy a/deny", "Pod default/q"])
    }

    @Test("multi-document YAML: comments and empty documents are skipped, documents numbered as read")
    func multiDocumentYAML() throws {
        let text = """
        # shop
        ---
        apiVersion: v1
        kind: Namespace   # the namespace
        metadata: {name: shop}
        ---
        ---
        # nothing here
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: web, namespace: shop, labels: {tier: 1}}
        ---
        """
        let file = try ManifestFile(parsing: text, path: "m.yaml")
        #expect(file.problems.isEmpty)
        #expect(file.objects.map(\.kind) == ["Namespace", "Pod"])
        #expect(file.objects.map(\.location) == ["document 1", "document 2"])
        let single = try ManifestFile(parsing: "# one\nkind: Namespace\nmetadata: {name: a}\n---\n", path: "s.yaml")
        #expect(single.objects.map(\.location) == [""])
    }

    @Test("errors name the document and the field's path")
    func fieldPaths() throws {
        let text = """
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
          - name: c
            ports: [{containerPort: 80}, {containerPort: 70000}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: x}
        spec:
          podSelector: {}
          ingress:
          - from:
            - podSelector: {}
            - podSelector: {matchExpressions: [{key: app, operator: Like}]}
        ---
        kind: List
        items:
        - kind: Node
          metadata: {name: n}
          spec: {podCIDRs: [10.244.0.0/24, nonsense]}
        """
        let content = try ManifestParser.parse(text, path: "e.yaml")
        #expect(content.objects.isEmpty)
        #expect(content.problems == [
            "document 1: Pod p skipped: spec.containers[0].ports[1].containerPort: 70000 is not a port (1 to 65535)",
            "document 2: policy default/x: spec.ingress[0].from[1].podSelector.matchExpressions[0].operator \"Like\" is not In, NotIn, Exists or DoesNotExist, skipped",
            "document 3: items[0]: Node n skipped: spec.podCIDRs[1]: \"nonsense\" is not a CIDR (e.g. 10.244.1.0/24)",
        ])
        #expect(content.policyProblems == [
            "document 2: policy default/x: spec.ingress[0].from[1].podSelector.matchExpressions[0].operator \"Like\" is not In, NotIn, Exists or DoesNotExist",
        ])
    }

    // MARK: - The lab

    @Test("lab apply's manifest loading takes the JSON stream, and names what it refuses by document")
    func labReadsJSONStream() throws {
        let set = try ManifestReader.parse(Self.jsonStream, source: "all.yaml")
        #expect(set.namespaces.map(\.name) == ["shop"])
        #expect(set.namespaces.first?.labels == ["team": "a"])
        #expect(set.pods.map(\.id) == ["shop/db"])
        #expect(set.pods.first?.nodeName == "node-1")
        #expect(set.pods.first?.containers.first?.ports == [PortSpec(name: "pg", port: 5432, proto: .tcp)])
        #expect(set.policies.map(\.key) == [PolicyKey("shop", "db")])
        #expect(set.policies.first?.ingress.first?.ports == [PolicyPort(.tcp, .named("pg"))])
        #expect(set.services.map(\.id) == ["shop/db"])
        #expect(set.services.first?.ports == [ServicePortSpec(name: nil, port: 5432, targetPort: "pg", proto: .tcp)])

        let bad = """
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"nodeName": "node-1"}}
        ---
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
        ---
        {"kind": "NetworkPolicy", "metadata": {"name": "x"}, "spec": {"ingress": [{"ports": [{"port": 80, "endPort": 79}]}]}}
        """
        do {
            _ = try ManifestReader.parse(bad, source: "bad.json")
            Issue.record("the lab took a Deployment")
        } catch {
            #expect(error.messages == [
                "bad.json: document 2 (Deployment web): kind Deployment is not supported by the lab (Namespace, Pod, NetworkPolicy, Service, List)",
                "bad.json: document 3: policy default/x: spec.ingress[0].ports[0].endPort 79 < port 80",
            ])
        }
    }
}
