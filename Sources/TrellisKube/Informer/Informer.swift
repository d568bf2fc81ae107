import Logging

/// List-then-watch for one kind of object, kept going until its task is cancelled: the
/// reflector of client-go, reduced to what a node agent needs.
///
/// - Lists in pages of `pageSize` (an expired continue token restarts the list), hands the
///   complete state to the consumer as `.synced`, then watches from the list's
///   resourceVersion with bookmarks, handing over `.upserted` / `.deleted`.
/// - Keeps the last resourceVersion seen (events and bookmarks); when a watch ends (server
///   timeout, dropped connection) it watches again from there, so nothing is missed.
/// - When that version is gone (410, as HTTP status or as an ERROR event) it lists again
///   and hands over the complete state again (`InformerCache` turns that into changes).
/// - Connection errors, 5xx and other failures: waits with exponential backoff and full
///   jitter (`InformerOptions.backoff`), reset after a success. 429: waits Retry-After when
///   the server gives it. Problems are logged once per kind per `warningInterval`.
/// - Cancelling the task ends `run` promptly and closes its connections.
///
/// ```swift
/// let pods = Informer<Pod>(client: client, options: InformerOptions(fieldSelector: "spec.nodeName=\(node)"),
///                          logger: logger)
/// var cache = InformerCache<Pod>()
/// try await pods.run { event in
///     for change in cache.apply(event) { reconcile(change) }
/// }
/// ```
public final class Informer<Object: KubeResource>: Sendable {
    public let options: InformerOptions
    private let client: KubeClient
    private let logger: Logger

    public init(client: KubeClient, options: InformerOptions = InformerOptions(), logger: Logger) {
        self.client = client
        self.options = options
        var l = logger
        l[metadataKey: "kube.resource"] = .string(Object.resourceKind.description)
        if let ns = options.namespace { l[metadataKey: "kube.namespace"] = .string(ns) }
        if let s = options.labelSelector { l[metadataKey: "kube.labelSelector"] = .string(s) }
        if let s = options.fieldSelector { l[metadataKey: "kube.fieldSelector"] = .string(s) }
        self.logger = l
    }

    /// Runs until the calling task is cancelled (then returns), handing every event to
    /// `handle` in order; the next event waits for `handle` to return. Throws only what
    /// `handle` throws.
    public func run(_ handle: (InformerEvent<Object>) async throws -> Void) async throws {
        var loop = Loop(options: options)
        while !Task.isCancelled {
            do {
                if loop.needsList {
                    try await list(&loop, handle)
                }
                try await watch(&loop, handle)
            } catch let failure as HandlerFailure {
                throw failure.error
            } catch {
                if Task.isCancelled || error is CancellationError { return }
                do {
                    try await recover(from: error, &loop)
                } catch {
                    return  // cancelled while waiting
                }
            }
        }
    }

    /// The same events as an AsyncStream (unbounded buffer); ending the iteration stops the
    /// informer.
    public func events() -> AsyncStream<InformerEvent<Object>> {
        let (stream, continuation) = AsyncStream.makeStream(of: InformerEvent<Object>.self)
        let task = Task {
            try? await self.run { continuation.yield($0) }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: - The loop

    /// Where the reflector stands between attempts.
    private struct Loop {
        /// The version to watch from: the last event's or bookmark's.
        var resourceVersion: String?
        var needsList = true
        /// A list in progress: pages already read, the next page's token, the list's version.
        var partialItems: [Object] = []
        var continueToken: String?
        var listVersion: String?
        var listPages = 0
        /// Consecutive failures: the backoff exponent.
        var failures = 0
        var problems: RateLimitedLog

        init(options: InformerOptions) {
            problems = RateLimitedLog(interval: options.warningInterval)
        }

        mutating func restartList() {
            needsList = true
            resourceVersion = nil
            partialItems = []
            continueToken = nil
            listVersion = nil
            listPages = 0
        }
    }

    /// Wraps what the consumer throws, so that it is not taken for an API failure.
    private struct HandlerFailure: Error { let error: any Error }

    private func deliver(_ event: InformerEvent<Object>, _ handle: (InformerEvent<Object>) async throws -> Void) async throws {
        do {
            try await handle(event)
        } catch {
            throw HandlerFailure(error: error)
        }
    }

    private func list(_ loop: inout Loop, _ handle: (InformerEvent<Object>) async throws -> Void) async throws {
        var expiredRestarts = 0
        while true {
            let page: KubeList<Object>
            do {
                page = try await client.list(Object.self, namespace: options.namespace, options: ListOptions(
                    labelSelector: options.labelSelector, fieldSelector: options.fieldSelector,
                    limit: options.pageSize, continueToken: loop.continueToken))
            } catch let error as KubeAPIError where error.isGone && loop.continueToken != nil && expiredRestarts < 3 {
                // The list's version left the server's history between two pages.
                expiredRestarts += 1
                logger.info("the list's continue token expired (410); listing from the start",
                            metadata: ["kube.pages": .stringConvertible(loop.listPages)])
                loop.restartList()
                continue
            }
            loop.partialItems += page.items
            loop.listPages += 1
            if loop.listVersion == nil { loop.listVersion = page.metadata.resourceVersion }
            if let next = page.metadata.continueToken, !next.isEmpty {
                loop.continueToken = next
                continue
            }
            break
        }
        let items = loop.partialItems
        let version = loop.listVersion ?? ""
        let pages = loop.listPages
        loop.partialItems = []
        loop.continueToken = nil
        loop.listVersion = nil
        loop.listPages = 0
        loop.needsList = false
        loop.resourceVersion = version
        succeeded(&loop)
        logger.debug("listed", metadata: [
            "kube.items": .stringConvertible(items.count), "kube.pages": .stringConvertible(pages),
            "kube.resourceVersion": .string(version),
        ])
        try await deliver(.synced(items, resourceVersion: version), handle)
    }

    private func watch(_ loop: inout Loop, _ handle: (InformerEvent<Object>) async throws -> Void) async throws {
        let base = options.watchTimeout.seconds
        let timeout = max(1, Int(base + base * options.random()))
        let stream = try await client.watch(Object.self, namespace: options.namespace, options: WatchOptions(
            labelSelector: options.labelSelector, fieldSelector: options.fieldSelector,
            resourceVersion: loop.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeout,
            stallTimeout: options.watchStallTimeout))
        let started = ContinuousClock.now
        var received = 0
        for try await event in stream {
            switch event {
            case .added(let object), .modified(let object):
                if let rv = object.metadata.resourceVersion { loop.resourceVersion = rv }
                try await deliver(.upserted(object), handle)
            case .deleted(let object):
                if let rv = object.metadata.resourceVersion { loop.resourceVersion = rv }
                try await deliver(.deleted(object), handle)
            case .bookmark(let rv):
                if !rv.isEmpty { loop.resourceVersion = rv }
            case .error(let status):
                throw KubeAPIError(watchError: status, request: "WATCH \(Object.resourceKind.collectionPath(namespace: options.namespace))")
            }
            received += 1
            if received == 1 { succeeded(&loop) }
        }
        // The stream also ends when our task is cancelled: nothing to report then.
        if Task.isCancelled { return }
        // A clean end (the server's timeout, or a server going away politely). A watch that
        // ends at once with nothing in it is treated as a failure, or it would spin.
        if received == 0, ContinuousClock.now - started < .seconds(1) {
            throw KubeTransportError(kind: .streamBroken, request: "WATCH \(Object.resourceKind)",
                                     message: "the server ended the watch at once")
        }
        logger.debug("watch ended; watching again", metadata: ["kube.resourceVersion": .string(loop.resourceVersion ?? "")])
    }

    private func succeeded(_ loop: inout Loop) {
        loop.failures = 0
        loop.problems.recovered("the API server answers again", metadata: [:], logger: logger)
    }

    /// Decides what a failure means and waits accordingly.
    private func recover(from error: any Error, _ loop: inout Loop) async throws {
        let phase = loop.needsList ? "list" : "watch"
        if let api = error as? KubeAPIError, api.isGone {
            // The version we stand at is older than the server's history: list again. Not a
            // failure of the server, so no wait, unless it keeps happening.
            loop.restartList()
            loop.failures += 1
            logger.info("resourceVersion expired (410 \(api.reason ?? "Gone")); listing again")
            if loop.failures > 1 {
                try await options.sleep(options.backoff.delay(afterFailures: loop.failures - 2, random: options.random()))
            }
            return
        }
        let wait: Duration
        let key: String
        if let api = error as? KubeAPIError, api.isTooManyRequests {
            key = "\(phase):http 429"
            wait = api.retryAfter ?? options.backoff.delay(afterFailures: loop.failures, random: options.random())
        } else {
            switch error {
            case let api as KubeAPIError: key = "\(phase):http \(api.statusCode)"
            case let transport as KubeTransportError: key = "\(phase):\(transport.kind.rawValue)"
            case is KubeDecodingError: key = "\(phase):decoding"
            default: key = "\(phase):other"
            }
            let backoff = options.backoff.delay(afterFailures: loop.failures, random: options.random())
            // A 503 may say when to come back too; never earlier than asked.
            if let api = error as? KubeAPIError, api.isServerError, let asked = api.retryAfter {
                wait = max(asked, backoff)
            } else {
                wait = backoff
            }
        }
        loop.failures += 1
        loop.problems.warning(key, "\(phase) failed; retrying", metadata: [
            "error": .string(String(describing: error)), "kube.retryIn": .string("\(wait)"),
            "kube.failures": .stringConvertible(loop.failures),
        ], logger: logger)
        try await options.sleep(wait)
    }
}
