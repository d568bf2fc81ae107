import Foundation
import Testing
@testable import TrellisKube

// Decoding of objects as the API server writes them (unknown fields and all), and encoding
// that the API server accepts (kind and apiVersion, no nulls).
struct KubeModelTests {
    // A Node as kind's API server returns it (trimmed of images only).
    static let nodeJSON = """
    {"kind":"Node","apiVersion":"v1","metadata":{"name":"kind-worker","uid":"0f6c1b1e-8c0a-4a56-9d1a-6b4c5a3e2f10",
    "resourceVersion":"48211","creationTimestamp":"2025-03-02T09:14:27Z","labels":{"beta.kubernetes.io/arch":"amd64",
    "kubernetes.io/hostname":"kind-worker","kubernetes.io/os":"linux"},"annotations":{"kubeadm.alpha.kubernetes.io/cri-socket":
    "unix:///run/containerd/containerd.sock","node.alpha.kubernetes.io/ttl":"0"},"managedFields":[{"manager":"kubelet",
    "operation":"Update","apiVersion":"v1","time":"2025-03-02T09:14:27Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{}}}]},
    "spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24","fd00:10:244:1::/64"],"providerID":"kind://docker/kind/kind-worker",
    "taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule","timeAdded":"2025-03-02T09:14:28Z"}]},
    "status":{"capacity":{"cpu":"2","ephemeral-storage":"61202244Ki","memory":"8129452Ki","pods":"110"},
    "allocatable":{"cpu":"2","memory":"8129452Ki","pods":"110"},"conditions":[{"type":"MemoryPressure","status":"False",
    "lastHeartbeatTime":"2025-03-02T10:02:11Z","lastTransitionTime":"2025-03-02T09:14:27Z","reason":"KubeletHasSufficientMemory",
    "message":"kubelet has sufficient memory available"},{"type":"Ready","status":"True","lastHeartbeatTime":"2025-03-02T10:02:11Z",
    "lastTransitionTime":"2025-03-02T09:14:49Z","reason":"KubeletReady","message":"kubelet is posting ready status"}],
    "addresses":[{"type":"InternalIP","address":"172.18.0.3"},{"type":"InternalIP","address":"fc00:f853:ccd:e793::3"},
    {"type":"Hostname","address":"kind-worker"}],"daemonEndpoints":{"kubeletEndpoint":{"Port":10250}},
    "nodeInfo":{"machineID":"7c1f","systemUUID":"7c1f","bootID":"b2e1","kernelVersion":"6.18.0","osImage":"Debian GNU/Linux 12 (bookworm)",
    "containerRuntimeVersion":"containerd://1.7.24","kubeletVersion":"v1.32.2","kubeProxyVersion":"v1.32.2","operatingSystem":"linux",
    "architecture":"amd64"},"images":[{"names":["registry.k8s.io/pause:3.10"],"sizeBytes":320368}]}}
    """

    // A running Pod as the API returns it: many fields the type does not model.
    static let podJSON = """
    {"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-7d4b9c8f6d-x2k9q","generateName":"web-7d4b9c8f6d-","namespace":"shop",
    "uid":"a1b2c3d4-0000-4000-8000-000000000001","resourceVersion":"51234","creationTimestamp":"2025-03-02T10:00:00Z",
    "labels":{"app":"web","pod-template-hash":"7d4b9c8f6d"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet",
    "name":"web-7d4b9c8f6d","uid":"rs-uid","controller":true,"blockOwnerDeletion":true}]},"spec":{"volumes":[{"name":
    "kube-api-access-abcde","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}],
    "defaultMode":420}}],"containers":[{"name":"web","image":"nginx:1.27","ports":[{"name":"http","containerPort":80,
    "protocol":"TCP"},{"containerPort":9090,"protocol":"UDP"}],"resources":{},"volumeMounts":[{"name":"kube-api-access-abcde",
    "readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"terminationMessagePath":"/dev/termination-log",
    "imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst",
    "serviceAccountName":"default","nodeName":"kind-worker","securityContext":{},"schedulerName":"default-scheduler",
    "tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],
    "priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running",
    "conditions":[{"type":"PodReadyToStartContainers","status":"True","lastProbeTime":null,"lastTransitionTime":"2025-03-02T10:00:03Z"},
    {"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2025-03-02T10:00:05Z"}],"hostIP":"172.18.0.3",
    "hostIPs":[{"ip":"172.18.0.3"},{"ip":"fc00:f853:ccd:e793::3"}],"podIP":"10.244.1.7","podIPs":[{"ip":"10.244.1.7"},
    {"ip":"fd00:10:244:1::7"}],"startTime":"2025-03-02T10:00:00Z","containerStatuses":[{"name":"web","state":{"running":
    {"startedAt":"2025-03-02T10:00:04Z"}},"ready":true,"restartCount":0,"image":"docker.io/library/nginx:1.27",
    "imageID":"docker.io/library/nginx@sha256:00","containerID":"containerd://00","started":true}],"qosClass":"BestEffort"}}
    """

    // A NetworkPolicy with every kind of peer and both forms of port.
    static let policyJSON = """
    {"kind":"NetworkPolicy","apiVersion":"networking.k8s.io/v1","metadata":{"name":"db","namespace":"shop","uid":"np-1",
    "resourceVersion":"777","generation":2,"creationTimestamp":"2025-03-02T10:00:00Z","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},
    "spec":{"podSelector":{"matchLabels":{"app":"db"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"web"}}},
    {"namespaceSelector":{"matchExpressions":[{"key":"team","operator":"In","values":["a","b"]}]},"podSelector":{}},
    {"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}}],"ports":[{"protocol":"TCP","port":5432},
    {"protocol":"TCP","port":"metrics"},{"protocol":"UDP","port":30000,"endPort":32767}]}],
    "egress":[{"to":[{"namespaceSelector":{}}],"ports":[{"port":53,"protocol":"UDP"}]},{}],"policyTypes":["Ingress","Egress"]}}
    """

    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(json.utf8))
    }

    @Test func nodeDecodesAsTheAPIWritesIt() throws {
        let node = try decode(Node.self, Self.nodeJSON)
        #expect(node.metadata.name == "kind-worker")
        #expect(node.metadata.resourceVersion == "48211")
        #expect(node.metadata.creationTimestamp?.description == "2025-03-02T09:14:27Z")
        #expect(node.spec?.podCIDR == "10.244.1.0/24")
        #expect(node.podCIDRList == ["10.244.1.0/24", "fd00:10:244:1::/64"])
        #expect(node.spec?.taints?.first?.effect == "NoSchedule")
        #expect(node.addresses(ofType: "InternalIP") == ["172.18.0.3", "fc00:f853:ccd:e793::3"])
        #expect(node.condition("Ready")?.status == "True")
        #expect(node.condition("Ready")?.lastTransitionTime?.description == "2025-03-02T09:14:49Z")
        #expect(node.status?.capacity?["memory"] == "8129452Ki")
        #expect(node.status?.nodeInfo?.kubeletVersion == "v1.32.2")
    }

    @Test func podDecodesWithUnknownFieldsIgnored() throws {
        let pod = try decode(Pod.self, Self.podJSON)
        #expect(pod.key == "shop/web-7d4b9c8f6d-x2k9q")
        #expect(pod.metadata.ownerReferences?.first?.kind == "ReplicaSet")
        #expect(pod.spec?.nodeName == "kind-worker")
        #expect(pod.spec?.hostNetwork == nil)
        #expect(pod.spec?.containers.first?.ports == [
            ContainerPort(name: "http", containerPort: 80, protocol: "TCP"), ContainerPort(containerPort: 9090, protocol: "UDP"),
        ])
        #expect(pod.status?.phase == "Running")
        #expect(pod.ipList == ["10.244.1.7", "fd00:10:244:1::7"])
        #expect(pod.status?.hostIPs?.map(\.ip) == ["172.18.0.3", "fc00:f853:ccd:e793::3"])
        #expect(pod.status?.conditions?.map(\.type) == ["PodReadyToStartContainers", "Ready"])
        #expect(pod.status?.conditions?.first?.lastProbeTime == nil)
    }

    @Test func networkPolicyDecodesPeersAndIntOrStringPorts() throws {
        let policy = try decode(NetworkPolicy.self, Self.policyJSON)
        #expect(policy.spec.podSelector.matchLabels == ["app": "db"])
        #expect(policy.spec.policyTypes == ["Ingress", "Egress"])
        let from = try #require(policy.spec.ingress?.first?.from)
        #expect(from[0].podSelector?.matchLabels == ["app": "web"])
        #expect(from[1].namespaceSelector?.matchExpressions == [LabelSelectorRequirement(key: "team", operator: "In", values: ["a", "b"])])
        #expect(from[1].podSelector == LabelSelector())  // present and empty: every pod of those namespaces
        #expect(from[2].ipBlock == IPBlock(cidr: "10.0.0.0/8", except: ["10.1.0.0/16"]))
        let ports = try #require(policy.spec.ingress?.first?.ports)
        #expect(ports.map(\.port) == [.int(5432), .string("metrics"), .int(30000)])
        #expect(ports[2].endPort == 32767)
        #expect(policy.spec.egress?.count == 2)
        #expect(policy.spec.egress?[1] == NetworkPolicyEgressRule())  // {}: anywhere, any port
    }

    @Test func aPolicyWithoutPodSelectorSelectsEveryPod() throws {
        let policy = try decode(NetworkPolicy.self, #"{"metadata":{"name":"p","namespace":"n"},"spec":{"policyTypes":["Ingress"]}}"#)
        #expect(policy.spec.podSelector == LabelSelector())
        #expect(policy.spec.ingress == nil)
    }

    @Test func encodingWritesKindAndApiVersionAndOmitsNils() throws {
        let pod = Fixtures.pod("web", namespace: "shop", labels: ["app": "web"])
        let json = String(decoding: try JSONCoding.encode(TypedObject(object: pod)), as: UTF8.self)
        let tree = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(tree["kind"] as? String == "Pod")
        #expect(tree["apiVersion"] as? String == "v1")
        #expect(!json.contains("null"))
        #expect((tree["metadata"] as? [String: Any])?.keys.sorted() == ["labels", "name", "namespace"])
        #expect(tree["status"] == nil)

        let policy = try decode(NetworkPolicy.self, Self.policyJSON)
        let back = try decode(NetworkPolicy.self, String(decoding: try JSONCoding.encode(TypedObject(object: policy)), as: UTF8.self))
        #expect(back == policy)
        let text = String(decoding: try JSONCoding.encode(TypedObject(object: policy)), as: UTF8.self)
        #expect(text.contains("\"apiVersion\":\"networking.k8s.io/v1\""))
        #expect(text.contains("\"port\":\"metrics\"") && text.contains("\"port\":5432"))
    }

    @Test func listsAcceptItemsWithoutKindAndNullItems() throws {
        let list = try decode(KubeList<Pod>.self, """
        {"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"90","continue":"abc","remainingItemCount":7},
        "items":[{"metadata":{"name":"a","namespace":"n"},"spec":{"containers":[{"name":"c"}]}}]}
        """)
        #expect(list.metadata == ListMeta(resourceVersion: "90", continueToken: "abc", remainingItemCount: 7))
        #expect(list.items.map(\.key) == ["n/a"])
        let empty = try decode(KubeList<Node>.self, #"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"3"},"items":null}"#)
        #expect(empty.items.isEmpty)
    }

    @Test func watchLinesDecodeByType() throws {
        func event(_ line: String) throws -> WatchEvent<Pod> {
            try decode(WatchEventLine<Pod>.self, line).event
        }
        let added = try event(#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"n","resourceVersion":"5"},"spec":{"containers":[]}}}"#)
        #expect(added.type == "ADDED" && added.object?.metadata.name == "a" && added.resourceVersion == "5")
        let bookmark = try event(#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null}}}"#)
        #expect(bookmark.resourceVersion == "12" && bookmark.object == nil)
        let error = try event(#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (50)","reason":"Expired","code":410}}"#)
        guard case .error(let status) = error else { Issue.record("not an error: \(error)"); return }
        #expect(status.code == 410 && status.reason == "Expired")
        #expect(KubeAPIError(watchError: status, request: "WATCH pods").isGone)
        #expect(throws: DecodingError.self) { try event(#"{"type":"SURPRISE","object":{}}"#) }
    }

    @Test func timesParseEveryRFC3339Form() {
        #expect(KubeTime(rfc3339: "1970-01-01T00:00:00Z")?.date.timeIntervalSince1970 == 0)
        #expect(KubeTime(rfc3339: "2024-02-29T23:59:59Z")?.description == "2024-02-29T23:59:59Z")
        #expect(KubeTime(rfc3339: "2024-03-01T01:00:00+02:00")?.description == "2024-02-29T23:00:00Z")
        #expect(KubeTime(rfc3339: "2024-03-01T00:00:00.123456Z")?.date.timeIntervalSince1970 == 1_709_251_200.123456)
        #expect(KubeTime(rfc3339: "2024-13-01T00:00:00Z") == nil)
        #expect(KubeTime(rfc3339: "yesterday") == nil)
    }

    @Test func selectorsAndQueriesAreEncodedForTheWire() {
        let selector = LabelSelector(matchLabels: ["app": "web"], matchExpressions: [
            LabelSelectorRequirement(key: "tier", operator: "In", values: ["a", "b"]),
            LabelSelectorRequirement(key: "legacy", operator: "DoesNotExist"),
        ])
        #expect(selector.queryString == "app=web,tier in (a,b),!legacy")
        #expect(QueryString.encode([("labelSelector", "a=b,c in (x y)"), ("x", "1+1")])
            == "labelSelector=a%3Db%2Cc%20in%20%28x%20y%29&x=1%2B1")
        #expect(Pod.resourceKind.objectPath(name: "web", namespace: "shop", subresource: "status")
            == "/api/v1/namespaces/shop/pods/web/status")
        #expect(NetworkPolicy.resourceKind.collectionPath(namespace: nil) == "/apis/networking.k8s.io/v1/networkpolicies")
        #expect(Node.resourceKind.objectPath(name: "n1", namespace: "ignored") == "/api/v1/nodes/n1")
    }

    @Test func patchesCarryTheirContentType() throws {
        let patch = try KubePatch.strategicMerge(Node(metadata: ObjectMeta(), status: NodeStatus(conditions: [
            NodeCondition(type: "NetworkUnavailable", status: "False", reason: "TrellisReady"),
        ])))
        #expect(patch.kind.contentType == "application/strategic-merge-patch+json")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(patch.body)) as? [String: Any])
        let conditions = (body["status"] as? [String: Any])?["conditions"] as? [[String: Any]]
        #expect(conditions?.count == 1)
        #expect(conditions?.first?["type"] as? String == "NetworkUnavailable")
        #expect(conditions?.first?["lastHeartbeatTime"] == nil)  // nil fields are left out, so the server keeps them
        let json = KubePatch.json([try .test("/metadata/labels/app", "web"), .remove("/metadata/labels/\(JSONPatchOperation.escape("a/b"))")])
        #expect(String(decoding: json.body, as: UTF8.self)
            == #"[{"op":"test","path":"/metadata/labels/app","value":"web"},{"op":"remove","path":"/metadata/labels/a~1b"}]"#)
    }

    @Test func backoffGrowsToItsCeilingWithFullJitter() {
        let b = Backoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: false)
        #expect((0..<6).map { b.delay(afterFailures: $0, random: 0.5) }
            == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        let jittered = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
        #expect(jittered.delay(afterFailures: 3, random: 0.25) == .milliseconds(200))
        #expect(jittered.delay(afterFailures: 3, random: 0) == .zero)
    }

    @Test func theCacheTurnsARelistIntoRealChangesOnly() {
        func pod(_ name: String, _ rv: String) -> Pod {
            var p = Fixtures.pod(name)
            p.metadata.resourceVersion = rv
            return p
        }
        var cache = InformerCache<Pod>()
        #expect(cache.apply(.synced([pod("a", "1"), pod("b", "2"), pod("c", "3")], resourceVersion: "3")).count == 3)
        #expect(cache.apply(.upserted(pod("a", "4"))).count == 1)
        let changes = cache.apply(.synced([pod("a", "4"), pod("b", "5"), pod("d", "6")], resourceVersion: "6"))
        var summary: [String] = []
        for change in changes {
            switch change {
            case .added(let p): summary.append("+\(p.metadata.name!)")
            case .updated(_, let p): summary.append("~\(p.metadata.name!)")
            case .removed(let p): summary.append("-\(p.metadata.name!)")
            }
        }
        #expect(summary.sorted() == ["+d", "-c", "~b"])
        #expect(cache.objects.keys.sorted() == ["default/a", "default/b", "default/d"])
        #expect(cache.apply(.deleted(pod("zzz", "7"))).isEmpty)
    }
}
