import Foundation
import Logging
import Testing
@testable import TrellisKube
import TrellisTestSupport

// Helpers of the Kube suites: clients, objects and an informer event recorder. The API server
// stand-in they talk to is in TrellisTestSupport (the lab's Kubernetes suite drives it too).

/// A client that is shut down on every path (AsyncHTTPClient requires it).
func withKubeClient<T>(_ config: KubeClientConfig, requestTimeout: Duration = .seconds(10),
                       tokenRecheckInterval: Duration = .seconds(3), logger: Logger? = nil,
                       _ body: (KubeClient) async throws -> T) async throws -> T {
    let client = try KubeClient(config: config, requestTimeout: requestTimeout, tokenRecheckInterval: tokenRecheckInterval,
                                logger: logger ?? Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

// MARK: - Objects

enum Fixtures {
    static func namespace(_ name: String, labels: [String: String]? = nil) -> Namespace {
        Namespace(metadata: ObjectMeta(name: name, labels: labels))
    }

    static func pod(_ name: String, namespace: String = "default", node: String? = "node-1",
                    labels: [String: String]? = nil, ip: String? = nil) -> Pod {
        Pod(metadata: ObjectMeta(name: name, namespace: namespace, labels: labels),
            spec: PodSpec(nodeName: node, containers: [Container(name: "app", image: "nginx",
                                                                  ports: [ContainerPort(name: "http", containerPort: 80)])]),
            status: ip.map { PodStatus(phase: "Running", podIP: $0, podIPs: [PodIP(ip: $0)]) })
    }

    /// A JSON List of `count` pods named pod-0000..., spread over `nodes` nodes.
    static func podList(count: Int, namespace: String = "default", nodes: Int = 3, prefix: String = "pod") -> String {
        var items: [String] = []
        items.reserveCapacity(count)
        for i in 0..<count {
            let name = "\(prefix)-" + String(i).leftPadded(to: 4)
            let node = "node-\(i % max(nodes, 1) + 1)"
            items.append("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"\(name)","namespace":"\(namespace)","labels":{"app":"a\(i % 7)"}},\
            "spec":{"nodeName":"\(node)","containers":[{"name":"c","image":"busybox","ports":[{"containerPort":8080,"protocol":"TCP"}]}]},\
            "status":{"phase":"Running","podIP":"10.244.\(i / 250).\(i % 250 + 1)","podIPs":[{"ip":"10.244.\(i / 250).\(i % 250 + 1)"}]}}
            """)
        }
        return "{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":[\(items.joined(separator: ","))]}"
    }
}

// MARK: - Informer recording

/// Everything an informer handed over, and the consumer's cache with each event's changes.
final class InformerRecord<Object: KubeResource>: @unchecked Sendable {
    struct State {
        var events: [InformerEvent<Object>] = []
        var cache = InformerCache<Object>()
        var changes: [[InformerCache<Object>.Change]] = []
    }

    let state = Guarded(State())

    func record(_ event: InformerEvent<Object>) {
        state.withLock { s in
            s.events.append(event)
            s.changes.append(s.cache.apply(event))
        }
    }

    var events: [InformerEvent<Object>] { state.current.events }
    var objects: [String: Object] { state.current.cache.objects }
    var syncCount: Int { events.filter { if case .synced = $0 { true } else { false } }.count }
}

/// Runs the informer in a task for the duration of `body`; cancels it and waits for its end
/// on every path.
func withInformer<Object: KubeResource, T>(_ informer: Informer<Object>, _ record: InformerRecord<Object>,
                                           _ body: () async throws -> T) async throws -> T {
    let task = Task { try await informer.run { record.record($0) } }
    do {
        let result = try await body()
        task.cancel()
        _ = await task.result
        return result
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
}

/// Reads a watch stream until `done` says so (given everything so far), or fails after `timeout`.
func collect<Object: KubeResource>(_ stream: AsyncThrowingStream<WatchEvent<Object>, any Error>,
                                   timeout: Duration = .seconds(10),
                                   until done: @escaping @Sendable ([WatchEvent<Object>]) -> Bool) async throws -> [WatchEvent<Object>] {
    try await withThrowingTaskGroup(of: [WatchEvent<Object>]?.self) { group in
        group.addTask {
            var events: [WatchEvent<Object>] = []
            for try await event in stream {
                events.append(event)
                if done(events) { return events }
            }
            return events
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let events = first else {
            throw StandInFailure(description: "the watch did not deliver what was expected within \(timeout)")
        }
        return events
    }
}
