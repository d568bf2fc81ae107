import Foundation
import Logging
import Testing
@testable import TrellisKube
import TrellisTestSupport

/// The informer's waits, recorded, and held while `closed` (to freeze it between a failure
/// and its retry).
final class SleepRecorder: @unchecked Sendable {
    let waits = Guarded<[Duration]>([])
    let closed = Guarded(false)

    func sleep(_ duration: Duration) async throws {
        waits.withLock { $0.append(duration) }
        while closed.current { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: duration)
    }
}

// The informer against the stand-in: pages, reconnection, relists, backoff, Retry-After,
// an unreachable server, cancellation.
struct KubeInformerTests {
    static func options(_ sleeper: SleepRecorder? = nil, backoff: Backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(200)),
                        pageSize: Int = 500, watchTimeout: Duration = .seconds(300), fieldSelector: String? = nil) -> InformerOptions {
        var o = InformerOptions(fieldSelector: fieldSelector, pageSize: pageSize, watchTimeout: watchTimeout, backoff: backoff)
        if let sleeper { o.sleep = { try await sleeper.sleep($0) } }
        return o
    }

    func synced<Object>(_ record: InformerRecord<Object>, count: Int = 1) async throws {
        try await waitFor("\(count) complete state(s)") { record.syncCount >= count }
    }

    @Test func listsInPagesThenWatchesOneNodesPods() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 1200)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let all = InformerRecord<Pod>()
                let mine = InformerRecord<Pod>()
                let informer = Informer<Pod>(client: client, options: Self.options(), logger: TestLog().logger)
                let nodeOne = Informer<Pod>(client: client, options: Self.options(pageSize: 100, fieldSelector: "spec.nodeName=node-1"),
                                            logger: TestLog().logger)
                try await withInformer(informer, all) {
                    try await withInformer(nodeOne, mine) {
                        try await synced(all)
                        try await synced(mine)
                        #expect(all.objects.count == 1200)
                        #expect(mine.objects.count == 400 && mine.objects.values.allSatisfy { $0.spec?.nodeName == "node-1" })
                        let stats = try await standin.stats()
                        #expect(stats.count("list pods") == 3 + 4)  // 1200 / 500 and 400 / 100, rounded up
                        try await waitFor("both watches open") { try await standin.stats().openWatches["pods"] == 2 }

                        try await withKubeClient(standin.adminConfig()) { admin in
                            _ = try await admin.create(Fixtures.pod("new-on-1", node: "node-1"))
                            _ = try await admin.create(Fixtures.pod("new-on-2", node: "node-2"))
                        }
                        try await waitFor("the new pods") { all.objects.count == 1202 && mine.objects.count == 401 }
                        #expect(mine.objects["default/new-on-2"] == nil)
                    }
                }
            }
        }
    }

    @Test func droppedWatchesReconnectAndMissNothing() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 5, namespace: "shop")])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let record = InformerRecord<Pod>()
                // Short server-side timeouts too: a watch that ends cleanly is followed by another.
                let informer = Informer<Pod>(client: client, options: Self.options(watchTimeout: .seconds(1)), logger: TestLog().logger)
                try await withInformer(informer, record) {
                    try await synced(record)
                    try await waitFor("the watch") { try await standin.stats().openWatches["pods"] == 1 }
                    try await standin.dropWatches()
                    try await withKubeClient(standin.adminConfig()) { admin in
                        _ = try await admin.create(Fixtures.pod("while-away", namespace: "shop"))
                        _ = try await admin.patch(Pod.self, name: "pod-0001", namespace: "shop", try .merge(["metadata": ["labels": ["v": "2"]]]))
                        try await admin.delete(Pod.self, name: "pod-0002", namespace: "shop")
                    }
                    try await waitFor("the changes made while the watch was down") {
                        record.objects["shop/while-away"] != nil && record.objects["shop/pod-0001"]?.metadata.labels?["v"] == "2"
                            && record.objects["shop/pod-0002"] == nil
                    }
                    let after = record.events.dropFirst().map { event -> String in
                        switch event {
                        case .synced: "synced"
                        case .upserted(let p): "upsert \(p.metadata.name!)"
                        case .deleted(let p): "delete \(p.metadata.name!)"
                        }
                    }
                    #expect(after == ["upsert while-away", "upsert pod-0001", "delete pod-0002"])
                    try await waitFor("watches renewed after the server's timeout", timeout: .seconds(8)) {
                        try await standin.stats().count("watch pods") >= 4
                    }
                    #expect(record.syncCount == 1)
                    #expect(try await standin.stats().count("list pods") == 1)
                }
            }
        }
    }

    @Test(arguments: ["event", "http"])
    func aCompactedHistoryMeansARelistWithoutSpuriousDeletes(_ expiry: String) async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 50)], watchExpired: expiry)) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let sleeper = SleepRecorder()
                let record = InformerRecord<Pod>()
                let informer = Informer<Pod>(client: client, options: Self.options(sleeper, pageSize: 20), logger: TestLog().logger)
                try await withInformer(informer, record) {
                    try await synced(record)
                    try await waitFor("the watch") { try await standin.stats().openWatches["pods"] == 1 }
                    // Cut the watch and hold the informer in its retry wait while the cluster
                    // changes and the server forgets the history.
                    sleeper.closed.withLock { $0 = true }
                    try await standin.dropWatches()
                    try await waitFor("the informer waiting to retry") { !sleeper.waits.current.isEmpty }
                    try await withKubeClient(standin.adminConfig()) { admin in
                        _ = try await admin.patch(Pod.self, name: "pod-0001", namespace: "default", try .merge(["metadata": ["labels": ["v": "2"]]]))
                        try await admin.delete(Pod.self, name: "pod-0002", namespace: "default")
                        _ = try await admin.create(Fixtures.pod("pod-new"))
                    }
                    try await standin.compact()
                    sleeper.closed.withLock { $0 = false }

                    try await synced(record, count: 2)
                    let stats = try await standin.stats()
                    #expect(stats.count("list pods") == 2 * 3)  // two lists of three pages each
                    guard case .synced(let items, _) = record.events.last else {
                        Issue.record("the last event is not the relist: \(String(describing: record.events.last))")
                        return
                    }
                    #expect(items.count == 50)
                    let changes = record.state.current.changes.last ?? []
                    var summary: [String] = []
                    for change in changes {
                        switch change {
                        case .added(let p): summary.append("+\(p.metadata.name!)")
                        case .updated(_, let p): summary.append("~\(p.metadata.name!)")
                        case .removed(let p): summary.append("-\(p.metadata.name!)")
                        }
                    }
                    #expect(summary.sorted() == ["+pod-new", "-pod-0002", "~pod-0001"])
                    // And it keeps watching from the new list.
                    try await withKubeClient(standin.adminConfig()) { admin in
                        _ = try await admin.create(Fixtures.pod("after-relist"))
                    }
                    try await waitFor("an event after the relist") { record.objects["default/after-relist"] != nil }
                }
            }
        }
    }

    @Test func bookmarksKeepTheInformerCurrentSoACompactionNeedsNoRelist() async throws {
        try await withStandIn(StandInOptions(bookmarkInterval: 0.1, load: [Fixtures.podList(count: 3)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let record = InformerRecord<Pod>()
                let informer = Informer<Pod>(client: client, options: Self.options(), logger: TestLog().logger)
                try await withInformer(informer, record) {
                    try await synced(record)
                    try await waitFor("the watch") { try await standin.stats().openWatches["pods"] == 1 }
                    // Changes to other kinds move the resourceVersion; only bookmarks tell the pod
                    // informer about it.
                    try await withKubeClient(standin.adminConfig()) { admin in
                        for i in 0..<5 { _ = try await admin.create(Node(metadata: ObjectMeta(name: "node-\(i)"))) }
                    }
                    try await Task.sleep(for: .milliseconds(400))  // a few bookmark periods
                    try await standin.compact()
                    try await standin.dropWatches()
                    try await waitFor("a new watch") { try await standin.stats().count("watch pods") >= 2 }
                    try await Task.sleep(for: .milliseconds(200))
                    #expect(record.syncCount == 1)
                    #expect(try await standin.stats().count("list pods") == 1)
                    let watches = try await standin.requests().filter { $0.verb == "watch" }
                    let versions = watches.compactMap { w in
                        w.query.split(separator: "&").first { $0.hasPrefix("resourceVersion=") }.map { String($0.dropFirst(16)) }
                    }
                    #expect(versions.count == 2 && versions[0] != versions[1], "re-watched from \(versions)")
                }
            }
        }
    }

    @Test func tooManyRequestsWaitsForRetryAfter() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 3)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                try await standin.fault(status: 429, count: 1, retryAfter: 1, verb: "list")
                let sleeper = SleepRecorder()
                let record = InformerRecord<Pod>()
                let informer = Informer<Pod>(client: client, options: Self.options(sleeper), logger: TestLog().logger)
                try await withInformer(informer, record) {
                    try await synced(record)
                }
                #expect(sleeper.waits.current == [.seconds(1)])
                let lists = try await standin.requests().filter { $0.verb == "list" }
                #expect(lists.map(\.code) == [429, 200])
                let gap = lists[1].time - lists[0].time
                #expect(gap >= 1.0, "the retry came \(gap) s after the 429 that asked for 1 s")
            }
        }
    }

    @Test func serverErrorsAreRetriedWithBackoffAndOneWarning() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 3)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                try await standin.fault(status: 500, count: 4, verb: "list")
                let sleeper = SleepRecorder()
                let log = TestLog(level: .debug)
                let record = InformerRecord<Pod>()
                let backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(150), jitter: false)
                let informer = Informer<Pod>(client: client, options: Self.options(sleeper, backoff: backoff), logger: log.logger)
                try await withInformer(informer, record) {
                    try await synced(record)
                }
                #expect(sleeper.waits.current == [.milliseconds(50), .milliseconds(100), .milliseconds(150), .milliseconds(150)])
                #expect(try await standin.stats().count("list pods") == 5)
                let warnings = log.entries.filter { $0.level == .warning }
                #expect(warnings.count == 1, "one warning for four failures: \(warnings.map(\.message))")
                #expect(warnings.first?.metadata["error"]?.description.contains("500 InternalError") == true)
                #expect(log.entries.filter { $0.level == .debug && $0.message.description == "list failed; retrying" }.count == 3)
                #expect(log.contains(.info, "the API server answers again"))
            }
        }
    }

    @Test func aPausedServerIsRetriedWithBackoffAndCaughtUpAfter() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 4)])) { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let log = TestLog(level: .debug)
                let sleeper = SleepRecorder()
                let record = InformerRecord<Pod>()
                let backoff = Backoff(initial: .milliseconds(100), maximum: .milliseconds(400))
                let informer = Informer<Pod>(client: client, options: Self.options(sleeper, backoff: backoff), logger: log.logger)
                try await withInformer(informer, record) {
                    try await synced(record)
                    try await waitFor("the watch") { try await standin.stats().openWatches["pods"] == 1 }
                    try await standin.pause(seconds: 2)
                    let pausedAt = ContinuousClock.now
                    // Changes while the API is unreachable (through the admin listener).
                    try await withKubeClient(standin.adminConfig()) { admin in
                        _ = try await admin.create(Fixtures.pod("made-while-paused"))
                        try await admin.delete(Pod.self, name: "pod-0000", namespace: "default")
                    }
                    try await waitFor("the changes made during the pause", timeout: .seconds(10)) {
                        record.objects["default/made-while-paused"] != nil && record.objects["default/pod-0000"] == nil
                    }
                    // The pause began just before `pausedAt`; nothing could arrive before it ended.
                    #expect(ContinuousClock.now - pausedAt >= .milliseconds(1500))
                }
                let waits = sleeper.waits.current
                #expect(waits.count >= 3, "retried only \(waits.count) times in 2 s")
                #expect(waits.allSatisfy { $0 <= .milliseconds(400) })
                let warnings = log.entries.filter { $0.level == .warning }
                #expect(!warnings.isEmpty && warnings.count < waits.count, "\(warnings.count) warnings for \(waits.count) failures")
                #expect(Set(warnings.map { $0.metadata["error"]?.description ?? "" }).count == warnings.count)
                #expect(log.contains(.info, "the API server answers again"))
                #expect(record.syncCount == 1)  // the history covered the pause: no relist
            }
        }
    }

    @Test func cancellingTheTaskStopsPromptlyAndClosesTheWatch() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                let record = InformerRecord<Node>()
                let informer = Informer<Node>(client: client, options: Self.options(), logger: TestLog().logger)
                let task = Task { try await informer.run { record.record($0) } }
                try await synced(record)
                try await waitFor("the watch") { try await standin.stats().openWatches["nodes"] == 1 }
                let started = ContinuousClock.now
                task.cancel()
                try await task.value
                #expect(ContinuousClock.now - started < .milliseconds(500))
                try await waitFor("the server to see the watch closed", timeout: .seconds(3)) {
                    try await standin.stats().openWatches["nodes"] == nil
                }
            }
        }
    }

    @Test func theEventStreamFormEndsWithItsIteration() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                _ = try await client.create(Fixtures.namespace("a"))
                let informer = Informer<Namespace>(client: client, options: Self.options(), logger: TestLog().logger)
                var seen: [String] = []
                for await event in informer.events() {
                    if case .synced(let items, _) = event {
                        seen = items.compactMap(\.metadata.name)
                        break
                    }
                }
                #expect(seen == ["a"])
                try await waitFor("the watch closed", timeout: .seconds(3)) {
                    try await standin.stats().openWatches["namespaces"] == nil
                }
            }
        }
    }
}

// The two examples of TrellisKube's overview (Overview.swift), as written there.
struct KubeDocumentedUsageTests {
    @Test func theOverviewExamplesWork() async throws {
        try await withStandIn(StandInOptions(load: [Fixtures.podList(count: 6)])) { standin in
            let logger = TestLog().logger
            let nodeName = "node-1"
            try await withKubeClient(KubeClientConfig(server: standin.url), logger: logger) { client in
                let upserted = Guarded<Set<String>>([])
                let task = Task {
                    let pods = Informer<Pod>(client: client, options: InformerOptions(fieldSelector: "spec.nodeName=\(nodeName)"),
                                             logger: logger)
                    var cache = InformerCache<Pod>()
                    try await pods.run { event in
                        for change in cache.apply(event) {
                            switch change {
                            case .added(let pod), .updated(_, let pod): upserted.withLock { _ = $0.insert(pod.key) }
                            case .removed(let pod): upserted.withLock { _ = $0.remove(pod.key) }
                            }
                        }
                    }
                }
                defer { task.cancel() }
                try await waitFor("node-1's pods") { upserted.current == ["default/pod-0000", "default/pod-0003"] }
                task.cancel()
                _ = await task.result

                _ = try await client.create(Node(metadata: ObjectMeta(name: nodeName), status: NodeStatus(conditions: [
                    NodeCondition(type: "Ready", status: "True"),
                ])))
                let condition = NodeCondition(type: "NetworkUnavailable", status: "False", reason: "TrellisIsUp",
                                              message: "overlay programmed", lastTransitionTime: .now)
                _ = try await client.patch(Node.self, name: nodeName,
                                           try .strategicMerge(Node(metadata: ObjectMeta(), status: NodeStatus(conditions: [condition]))),
                                           subresource: "status")
                let node = try await client.get(Node.self, name: nodeName)
                #expect(node.status?.conditions?.map(\.type) == ["Ready", "NetworkUnavailable"])
            }
        }
    }
}
