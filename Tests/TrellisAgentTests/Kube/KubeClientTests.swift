import Foundation
import Testing
@testable import TrellisKube
import TrellisTestSupport

// The client against the stand-in: every verb, typed errors, pagination, watches, patches of
// status subresources.
struct KubeClientTests {
    @Test func createGetReplacePatchDeleteWithTypedErrors() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let ns = try await client.create(Fixtures.namespace("shop", labels: ["team": "a"]))
                #expect(ns.metadata.uid != nil && ns.metadata.resourceVersion != nil && ns.metadata.creationTimestamp != nil)
                #expect(ns.metadata.labels == ["team": "a", "kubernetes.io/metadata.name": "shop"])

                let orphan = await #expect(throws: KubeAPIError.self) {
                    try await client.create(Fixtures.pod("web", namespace: "nowhere"))
                }
                #expect(orphan?.isNotFound == true)
                #expect(orphan?.description == #"POST /api/v1/namespaces/nowhere/pods: 404 NotFound: namespaces "nowhere" not found"#)

                let pod = try await client.create(Fixtures.pod("web", namespace: "shop", labels: ["app": "web"]))
                #expect(pod.metadata.generation == 1)
                let again = await #expect(throws: KubeAPIError.self) { try await client.create(Fixtures.pod("web", namespace: "shop")) }
                #expect(again?.isAlreadyExists == true && again?.isConflict == true)

                var fetched = try await client.get(Pod.self, name: "web", namespace: "shop")
                #expect(fetched == pod)
                fetched.metadata.labels?["tier"] = "front"
                let replaced = try await client.replace(fetched)
                #expect(replaced.metadata.labels?["tier"] == "front")
                #expect(replaced.metadata.resourceVersion != pod.metadata.resourceVersion)
                // Writing from the stale copy again: the server refuses.
                let stale = await #expect(throws: KubeAPIError.self) { try await client.replace(fetched) }
                #expect(stale?.isConflict == true && stale?.reason == "Conflict")

                let merged = try await client.patch(Pod.self, name: "web", namespace: "shop",
                                                    try .merge(["metadata": ["labels": ["tier": "back"]]]))
                #expect(merged.metadata.labels == ["app": "web", "tier": "back"])
                let failedTest = await #expect(throws: KubeAPIError.self) {
                    try await client.patch(Pod.self, name: "web", namespace: "shop",
                                           .json([try .test("/metadata/labels/tier", "front"), .remove("/metadata/labels/app")]))
                }
                #expect(failedTest?.statusCode == 422)
                let removed = try await client.patch(Pod.self, name: "web", namespace: "shop",
                                                     .json([try .test("/metadata/labels/tier", "back"), .remove("/metadata/labels/app")]))
                #expect(removed.metadata.labels == ["tier": "back"])

                try await client.delete(Pod.self, name: "web", namespace: "shop")
                let gone = await #expect(throws: KubeAPIError.self) { try await client.get(Pod.self, name: "web", namespace: "shop") }
                #expect(gone?.isNotFound == true && gone?.status?.details?.name == "web")
                let missingNamespace = await #expect(throws: KubeRequestError.self) { try await client.get(Pod.self, name: "web") }
                #expect(missingNamespace?.description == "pods are namespaced: give a namespace")

                // Cluster-scoped objects and the other API group.
                let policy = NetworkPolicy(metadata: ObjectMeta(name: "deny", namespace: "shop"))
                let created = try await client.create(policy)
                #expect(created.spec.policyTypes == ["Ingress"])  // defaulted by the server
                try await client.delete(NetworkPolicy.self, name: "deny", namespace: "shop",
                                        options: DeleteOptions(preconditions: .init(uid: created.metadata.uid)))
                try await client.delete(Namespace.self, name: "shop")
                #expect(try await client.list(Namespace.self).items.isEmpty)
            }
            let agents = Set(try await standin.requests().map(\.userAgent))
            #expect(agents == [KubeClient.defaultUserAgent])
        }
    }

    @Test func paginatedListOf1200PodsReturnsEveryOne() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 1200)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                var names: [String] = []
                var pages: [Int] = []
                var remaining: [Int64?] = []
                var token: String?
                var listVersion: String?
                repeat {
                    let page = try await client.list(Pod.self, namespace: "default", options: ListOptions(limit: 500, continueToken: token))
                    names += page.items.map { $0.metadata.name ?? "" }
                    pages.append(page.items.count)
                    remaining.append(page.metadata.remainingItemCount)
                    listVersion = listVersion ?? page.metadata.resourceVersion
                    #expect(page.metadata.resourceVersion == listVersion)  // every page is the same snapshot
                    token = page.metadata.continueToken
                } while token != nil
                #expect(pages == [500, 500, 200])
                #expect(remaining == [700, 200, nil])
                #expect(Set(names).count == 1200)

                // Selectors, also through every namespace.
                let onNode = try await client.list(Pod.self, options: ListOptions(fieldSelector: "spec.nodeName=node-1"))
                #expect(onNode.items.count == 400)
                #expect(onNode.items.allSatisfy { $0.spec?.nodeName == "node-1" })
                let labelled = try await client.list(Pod.self, namespace: "default",
                                                     options: ListOptions(labelSelector: "app in (a1,a2),app!=a2"))
                #expect(labelled.items.count == 1200 / 7 + (1200 % 7 > 1 ? 1 : 0))
                let unsupported = await #expect(throws: KubeAPIError.self) {
                    try await client.list(Pod.self, options: ListOptions(fieldSelector: "spec.image=x"))
                }
                #expect(unsupported?.statusCode == 400)
            }
        }
    }

    @Test func aContinueTokenOlderThanTheHistoryIsGone() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 30)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let first = try await client.list(Pod.self, namespace: "default", options: ListOptions(limit: 10))
                // A change, then a compaction: the list's version is no longer readable.
                _ = try await client.create(Fixtures.pod("late"))
                try await standin.compact()
                let expired = await #expect(throws: KubeAPIError.self) {
                    try await client.list(Pod.self, namespace: "default", options: ListOptions(limit: 10, continueToken: first.metadata.continueToken))
                }
                #expect(expired?.isGone == true && expired?.reason == "Expired")
            }
        }
    }

    @Test func watchDeliversChangesInOrderAndBookmarksAdvance() async throws {
        try await withStandIn(StandInOptions(bookmarkInterval: 0.1)) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                _ = try await client.create(Fixtures.namespace("shop"))
                let start = try await client.list(Pod.self, namespace: "shop").metadata.resourceVersion
                let stream = try await client.watch(Pod.self, namespace: "shop",
                                                    options: WatchOptions(resourceVersion: start, allowWatchBookmarks: true))
                _ = try await client.create(Fixtures.pod("web", namespace: "shop"))
                _ = try await client.patch(Pod.self, name: "web", namespace: "shop", try .merge(["metadata": ["labels": ["v": "2"]]]))
                try await client.delete(Pod.self, name: "web", namespace: "shop")
                // A change elsewhere moves the global resourceVersion past the pods'.
                let node = try await client.create(Node(metadata: ObjectMeta(name: "node-9")))
                let nodeVersion = try #require(Int(node.metadata.resourceVersion ?? ""))
                let events = try await collect(stream) { events in
                    events.contains { if case .bookmark(let rv) = $0 { (Int(rv) ?? 0) >= nodeVersion } else { false } }
                }
                let changes = events.filter { $0.object != nil }
                #expect(changes.map(\.type) == ["ADDED", "MODIFIED", "DELETED"])
                #expect(changes[1].object?.metadata.labels?["v"] == "2")
                let versions = changes.compactMap { $0.resourceVersion.flatMap { Int($0) } }
                #expect(versions == versions.sorted() && Set(versions).count == 3)
                let bookmarks = events.compactMap { if case .bookmark(let rv) = $0 { Int(rv) } else { nil } }
                #expect(bookmarks.last! >= nodeVersion && bookmarks.last! > versions.last!)
            }
        }
    }

    @Test(arguments: ["event", "http"])
    func watchingFromAnExpiredVersionFailsWith410(_ mode: String) async throws {
        try await withStandIn(StandInOptions(watchExpired: mode)) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                _ = try await client.create(Fixtures.namespace("shop"))
                let old = try await client.list(Pod.self).metadata.resourceVersion
                _ = try await client.create(Fixtures.namespace("other"))
                try await standin.compact()
                if mode == "http" {
                    let gone = await #expect(throws: KubeAPIError.self) {
                        _ = try await client.watch(Pod.self, options: WatchOptions(resourceVersion: old))
                    }
                    #expect(gone?.isGone == true)
                } else {
                    let stream = try await client.watch(Pod.self, options: WatchOptions(resourceVersion: old))
                    let events = try await collect(stream) { $0.count == 1 }
                    guard case .error(let status) = events.first else { Issue.record("expected an ERROR event: \(events)"); return }
                    #expect(status.code == 410)
                }
            }
        }
    }

    @Test func nodeStatusConditionsPatchedWithStrategicMergeKeepTheOthers() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let heartbeat = KubeTime(rfc3339: "2025-01-01T00:00:00Z")
                _ = try await client.create(Node(metadata: ObjectMeta(name: "node-1"), spec: NodeSpec(podCIDR: "10.244.1.0/24"), status: NodeStatus(
                    addresses: [NodeAddress(type: "InternalIP", address: "192.168.1.11")],
                    conditions: [NodeCondition(type: "Ready", status: "True", reason: "KubeletReady", lastHeartbeatTime: heartbeat),
                                 NodeCondition(type: "MemoryPressure", status: "False")])))
                let ours = NodeCondition(type: "NetworkUnavailable", status: "False", reason: "TrellisIsUp",
                                         message: "Trellis agent programmed the overlay", lastTransitionTime: .now)
                let patched = try await client.patch(Node.self, name: "node-1", try .strategicMerge(
                    Node(metadata: ObjectMeta(), status: NodeStatus(conditions: [ours]))), subresource: "status")
                #expect(patched.status?.conditions?.map(\.type) == ["Ready", "MemoryPressure", "NetworkUnavailable"])
                #expect(patched.condition("Ready")?.lastHeartbeatTime == heartbeat)
                #expect(patched.condition("NetworkUnavailable")?.reason == "TrellisIsUp")
                #expect(patched.spec?.podCIDR == "10.244.1.0/24")

                // The same condition again replaces only its own fields.
                let flipped = try await client.patch(Node.self, name: "node-1", try .strategicMerge(
                    ["status": ["conditions": [["type": "NetworkUnavailable", "status": "True", "reason": "TrellisIsDown"]]]]),
                    subresource: "status")
                #expect(flipped.status?.conditions?.count == 3)
                #expect(flipped.condition("NetworkUnavailable")?.message == "Trellis agent programmed the overlay")
                #expect(flipped.condition("NetworkUnavailable")?.status == "True")

                // A merge patch replaces the list, which is why conditions take strategic merge.
                let replaced = try await client.patch(Node.self, name: "node-1", try .merge(
                    ["status": ["conditions": [["type": "Ready", "status": "False"]]]]), subresource: "status")
                #expect(replaced.status?.conditions?.map(\.type) == ["Ready"])

                // Status written through the main resource is ignored, as the API server does.
                let ignored = try await client.patch(Node.self, name: "node-1",
                                                     KubePatch(.merge, json: #"{"status":{"addresses":[]},"metadata":{"labels":{"x":"y"}}}"#))
                #expect(ignored.status?.addresses?.count == 1 && ignored.metadata.labels == ["x": "y"])

                // Pod IPs merge by ip.
                _ = try await client.create(Fixtures.namespace("shop"))
                _ = try await client.create(Fixtures.pod("web", namespace: "shop", ip: "10.244.1.5"))
                let dual = try await client.patch(Pod.self, name: "web", namespace: "shop", try .strategicMerge(
                    ["status": ["podIPs": [["ip": "fd00:10:244:1::5"]]]]), subresource: "status")
                #expect(dual.ipList == ["10.244.1.5", "fd00:10:244:1::5"])
            }
        }
    }

    @Test func replacingTheStatusSubresourceChangesOnlyTheStatus() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                _ = try await client.create(Fixtures.namespace("shop"))
                var pod = try await client.create(Fixtures.pod("web", namespace: "shop", node: "node-1"))
                pod.spec?.nodeName = "node-2"
                pod.status = PodStatus(phase: "Running", podIP: "10.244.1.9", podIPs: [PodIP(ip: "10.244.1.9")],
                                       conditions: [PodCondition(type: "Ready", status: "True")])
                let stored = try await client.replace(pod, subresource: "status")
                #expect(stored.status?.phase == "Running" && stored.ipList == ["10.244.1.9"])
                #expect(stored.spec?.nodeName == "node-1")  // a status write never moves the pod
                #expect(stored.metadata.generation == 1)
            }
        }
    }

    @Test func aBoundedHistoryForgetsOldVersions() async throws {
        try await withStandIn(StandInOptions(history: 5)) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                _ = try await client.create(Fixtures.namespace("shop"))
                let old = try await client.list(Pod.self).metadata.resourceVersion
                for i in 0..<10 { _ = try await client.create(Fixtures.pod("p\(i)", namespace: "shop")) }
                let recent = try await client.list(Pod.self).metadata.resourceVersion
                let stream = try await client.watch(Pod.self, options: WatchOptions(resourceVersion: old))
                let events = try await collect(stream) { $0.count == 1 }
                guard case .error(let status) = events.first else { Issue.record("expected 410: \(events)"); return }
                #expect(status.code == 410 && status.message?.hasPrefix("too old resource version") == true)
                // Five events back is still there.
                _ = try await client.create(Fixtures.pod("p10", namespace: "shop"))
                let fresh = try await client.watch(Pod.self, options: WatchOptions(resourceVersion: recent))
                let replayed = try await collect(fresh) { $0.contains { $0.object != nil } }
                #expect(replayed.compactMap(\.object?.metadata.name) == ["p10"])
            }
        }
    }

    @Test func dozensOfConcurrentWatchesAllSeeAChange() async throws {
        try await withStandIn { standin in
            let client = try KubeClient(config: KubeClientConfig(server: standin.url), maxConnectionsPerServer: 64)
            do {
                _ = try await client.create(Fixtures.namespace("shop"))
                let start = try await client.list(Pod.self).metadata.resourceVersion
                var streams: [AsyncThrowingStream<WatchEvent<Pod>, any Error>] = []
                for _ in 0..<40 {
                    streams.append(try await client.watch(Pod.self, namespace: "shop", options: WatchOptions(resourceVersion: start)))
                }
                try await waitFor("40 open watches") { try await standin.stats().openWatches["pods"] == 40 }
                _ = try await client.create(Fixtures.pod("web", namespace: "shop"))
                let seen = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for stream in streams {
                        group.addTask {
                            let events = try await collect(stream) { $0.contains { $0.object != nil } }
                            return events.contains { $0.type == "ADDED" && $0.object?.metadata.name == "web" }
                        }
                    }
                    return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
                #expect(seen == 40)
                try await client.shutdown()
            } catch {
                try? await client.shutdown()
                throw error
            }
        }
    }

    @Test func errorStatusesAndTransportFailuresAreTyped() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                try await standin.fault(status: 429, count: 1, retryAfter: 2, verb: "list")
                let throttled = await #expect(throws: KubeAPIError.self) { try await client.list(Node.self) }
                #expect(throttled?.isTooManyRequests == true && throttled?.retryAfter == .seconds(2))
                try await standin.fault(status: 500, count: 1, pathPrefix: "/api/v1/nodes")
                let broken = await #expect(throws: KubeAPIError.self) { try await client.list(Node.self) }
                #expect(broken?.isServerError == true && broken?.reason == "InternalError")
                #expect(try await client.list(Node.self).items.isEmpty)
            }
            // Nothing listens on the port any more.
            let port = standin.port
            standin.stop()
            try await withKubeClient(KubeClientConfig(server: "http://127.0.0.1:\(port)")) { client in
                let refused = await #expect(throws: KubeTransportError.self) { try await client.list(Node.self) }
                #expect(refused?.kind == .connection)
                #expect(refused?.description == "GET http://127.0.0.1:\(port)/api/v1/nodes: cannot reach the API server: connection refused")
            }
        }
    }

    @Test func theStandInServesLargeClustersPageByPage() async throws {
        var nodes: [String] = []
        for i in 1...100 {
            nodes.append(#"{"kind":"Node","apiVersion":"v1","metadata":{"name":"node-\#(i)"},"spec":{"podCIDR":"10.244.\#(i).0/24"}}"#)
        }
        var policies: [String] = []
        for i in 0..<1000 {
            policies.append(#"{"kind":"NetworkPolicy","apiVersion":"networking.k8s.io/v1","metadata":{"name":"p-\#(i)","namespace":"ns-\#(i % 20)"},"spec":{"podSelector":{"matchLabels":{"app":"a\#(i % 7)"}},"ingress":[{"from":[{"podSelector":{}}],"ports":[{"port":80}]}]}}"#)
        }
        let load = [Fixtures.podList(count: 5000, nodes: 100), "[\(nodes.joined(separator: ","))]", "[\(policies.joined(separator: ","))]"]
        try await withStandIn(StandInOptions(load: load)) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                var count = 0
                var token: String?
                repeat {
                    let page = try await client.list(Pod.self, options: ListOptions(limit: 500, continueToken: token))
                    count += page.items.count
                    token = page.metadata.continueToken
                } while token != nil
                #expect(count == 5000)
                // The stand-in's own time per page (the client's decoding, in a debug build on a
                // busy machine, is not what this is about).
                let pages = try await standin.requests().filter { $0.verb == "list" && $0.resource == "pods" }
                #expect(pages.count == 10)
                let slowest = pages.map(\.seconds).max() ?? 0
                #expect(slowest < 0.5, "slowest page of 500 pods took \(slowest) s in the stand-in")
                let onOneNode = try await client.list(Pod.self, options: ListOptions(fieldSelector: "spec.nodeName=node-7"))
                #expect(onOneNode.items.count == 50)
                #expect(try await client.list(NetworkPolicy.self).items.count == 1000)
                #expect(try await client.list(Node.self).items.count == 100)
            }
        }
    }
}
