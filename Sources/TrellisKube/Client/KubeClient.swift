import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOSSL

/// A client of the Kubernetes API: typed get, list, create, replace, patch, delete and watch,
/// over AsyncHTTPClient (HTTP/1.1 or HTTP/2, TLS through swift-nio-ssl).
///
/// One client per API server; share it between tasks (it is `Sendable`, and keeps a
/// connection pool). Call `shutdown()` when done: AsyncHTTPClient requires it, and debug
/// builds trap when a client is released without it.
///
/// Errors: `KubeAPIError` (the server answered with an error status), `KubeTransportError`
/// (no answer: refused, TLS, timeout, stream cut), `KubeDecodingError` (an unexpected body),
/// `KubeConfigError` (a token file that cannot be read), `KubeRequestError` (a wrong call),
/// and `CancellationError` when the calling task is cancelled.
///
/// Requests carry `User-Agent`, `Accept: application/json` and the bearer token if any. A
/// 401 re-reads a token file once and retries when the token changed.
///
/// `replace` sends the object as these types model it: fields they do not know (a Pod's
/// volumes, say) would be dropped on the server. Replace only objects you own in full;
/// change others with `patch`.
public final class KubeClient: Sendable {
    public static let defaultUserAgent = "trellis-kube/1.0 (linux)"

    public let config: KubeClientConfig
    private let http: HTTPClient
    private let tokens: BearerTokenSource?
    private let baseURL: String
    private let userAgent: String
    private let requestTimeout: Duration
    private let logger: Logger

    /// Largest body accepted for a non-watch answer (a page of 500 pods is about 1-2 MiB).
    private static let maxBodyBytes = 256 << 20

    /// - Parameters:
    ///   - requestTimeout: for every call but watches: the whole request, body included;
    ///     for watches: until the answer's head.
    ///   - maxConnectionsPerServer: each open watch holds one HTTP/1.1 connection; keep it
    ///     above the number of concurrent watches plus requests.
    ///   - tokenRecheckInterval: how often a token file's identity is checked.
    public init(config: KubeClientConfig, userAgent: String = KubeClient.defaultUserAgent,
                requestTimeout: Duration = .seconds(30), maxConnectionsPerServer: Int = 32,
                tokenRecheckInterval: Duration = .seconds(3),
                logger: Logger = Logger(label: "trellis.kube", factory: { _ in SwiftLogNoOpLogHandler() }))
        throws(KubeConfigError) {
        self.config = config
        var base = config.server
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.userAgent = userAgent
        self.requestTimeout = requestTimeout
        var l = logger
        l[metadataKey: "kube.server"] = .string(base)
        self.logger = l
        self.tokens = config.bearer.map { BearerTokenSource($0, recheckInterval: tokenRecheckInterval) }
        if let tokens { _ = try tokens.token() }

        var configuration = HTTPClient.Configuration()
        configuration.tlsConfiguration = try config.makeTLSConfiguration()
        configuration.redirectConfiguration = .disallow
        // No read timeout on the client: a watch is silent between events. Calls other than
        // watches are bounded by `requestTimeout` instead.
        configuration.timeout = .init(connect: .seconds(10), read: nil)
        configuration.decompression = .disabled
        var pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60),
                                                           concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnectionsPerServer)
        // Fail at once when the server refuses connections: the informer's backoff decides
        // when to try again, and a caller gets its answer instead of a 10 s wait.
        pool.retryConnectionEstablishment = false
        configuration.connectionPool = pool
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration,
                               backgroundActivityLogger: Logger(label: "trellis.kube.http", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Closes every connection; the client cannot be used afterwards.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: - Verbs

    /// One object. Namespaced kinds need `namespace`.
    public func get<Object: KubeResource>(_ type: Object.Type, name: String, namespace: String? = nil) async throws -> Object {
        let path = try objectPath(type, name: name, namespace: namespace, subresource: nil)
        return try await call(APIRequest(method: .GET, path: path), expecting: Object.self)
    }

    /// One page of objects. `namespace` nil lists every namespace (or a cluster-scoped kind).
    /// Pass `page.metadata.continueToken` as `options.continueToken` for the next page.
    public func list<Object: KubeResource>(_ type: Object.Type, namespace: String? = nil,
                                           options: ListOptions = ListOptions()) async throws -> KubeList<Object> {
        let path = Object.resourceKind.collectionPath(namespace: namespace)
        return try await call(APIRequest(method: .GET, path: path, query: options.query), expecting: KubeList<Object>.self)
    }

    /// Creates the object (its namespace from `metadata.namespace`); returns it as stored,
    /// with uid, resourceVersion and creationTimestamp. 409 AlreadyExists if it exists.
    public func create<Object: KubeResource>(_ object: Object) async throws -> Object {
        let namespace = try requireNamespace(Object.self, object.metadata.namespace)
        let path = Object.resourceKind.collectionPath(namespace: namespace)
        let body = try JSONCoding.encode(TypedObject(object: object))
        return try await call(APIRequest(method: .POST, path: path, body: body, contentType: "application/json"),
                              expecting: Object.self)
    }

    /// Replaces the object (PUT), or its `status` subresource. With `metadata.resourceVersion`
    /// set, the server refuses (409 Conflict) if the object changed since. See the type's
    /// note about fields these types do not model.
    public func replace<Object: KubeResource>(_ object: Object, subresource: String? = nil) async throws -> Object {
        guard let name = object.metadata.name, !name.isEmpty else {
            throw KubeRequestError(message: "replace \(Object.resourceKind): the object has no metadata.name")
        }
        let path = try objectPath(Object.self, name: name, namespace: object.metadata.namespace, subresource: subresource)
        let body = try JSONCoding.encode(TypedObject(object: object))
        return try await call(APIRequest(method: .PUT, path: path, body: body, contentType: "application/json"),
                              expecting: Object.self)
    }

    /// Patches the object or a subresource (`status`), and returns it as stored.
    public func patch<Object: KubeResource>(_ type: Object.Type, name: String, namespace: String? = nil,
                                            _ patch: KubePatch, subresource: String? = nil) async throws -> Object {
        let path = try objectPath(type, name: name, namespace: namespace, subresource: subresource)
        return try await call(APIRequest(method: .PATCH, path: path, body: patch.body, contentType: patch.kind.contentType),
                              expecting: Object.self)
    }

    /// Deletes the object. The server may answer with the object (still terminating) or a
    /// Status; either way this returns once the server accepted the deletion.
    public func delete<Object: KubeResource>(_ type: Object.Type, name: String, namespace: String? = nil,
                                             options: DeleteOptions? = nil) async throws {
        let path = try objectPath(type, name: name, namespace: namespace, subresource: nil)
        let body = try options.map { try JSONCoding.encode($0) }
        _ = try await call(APIRequest(method: .DELETE, path: path, body: body, contentType: body == nil ? nil : "application/json"),
                           expecting: IgnoredBody.self)
    }

    /// Watches a collection: throws when the server refuses the watch (HTTP status), then
    /// streams its events, decoded, as they arrive (the chunked body, one JSON line each).
    ///
    /// The stream finishes when the server ends the watch (`timeoutSeconds`, a restart), and
    /// throws `KubeTransportError(.streamBroken)` when the connection breaks. An expired
    /// resourceVersion arrives either as HTTP 410 (thrown here) or as an `.error` event with
    /// code 410, depending on the server. Stopping the iteration (or cancelling its task)
    /// closes the connection.
    public func watch<Object: KubeResource>(_ type: Object.Type, namespace: String? = nil,
                                            options: WatchOptions = WatchOptions()) async throws
        -> AsyncThrowingStream<WatchEvent<Object>, any Error> {
        let request = APIRequest(method: .GET, path: Object.resourceKind.collectionPath(namespace: namespace),
                                 query: options.query)
        let response = try await execute(request, headTimeout: requestTimeout)
        guard response.status == .ok else {
            let body = try? await response.body.collect(upTo: 1 << 20)
            throw apiError(request, response, body)
        }
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: WatchEvent<Object>.self)
        let label = request.description
        let lastActivity = NIOLockedValueBox(ContinuousClock.now)
        let stalled = NIOLockedValueBox(false)
        let watchdog = NIOLockedValueBox<Task<Void, Never>?>(nil)
        let reader = Task {
            defer { watchdog.withLockedValue { $0?.cancel() } }
            var splitter = LineSplitter()
            let decoder = JSONDecoder()
            func emit(_ line: [UInt8]) throws {
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return }
                do {
                    continuation.yield(try decoder.decode(WatchEventLine<Object>.self, from: Data(line)).event)
                } catch {
                    throw KubeDecodingError(request: label, expected: "watch event of \(Object.resourceKind.kind)",
                                            message: "\(error)", excerpt: Self.excerpt(line))
                }
            }
            do {
                for try await chunk in response.body {
                    lastActivity.withLockedValue { $0 = .now }
                    for line in try splitter.append(chunk) { try emit(line) }
                }
                if let rest = splitter.finish() { try emit(rest) }
                continuation.finish()
            } catch let error as KubeDecodingError {
                continuation.finish(throwing: error)
            } catch {
                if stalled.withLockedValue({ $0 }) {
                    continuation.finish(throwing: KubeTransportError(
                        kind: .timeout, request: label,
                        message: "nothing received for \(options.stallTimeout ?? .zero): the connection is presumed dead"))
                } else if Task.isCancelled {
                    continuation.finish()
                } else {
                    continuation.finish(throwing: KubeTransportError(kind: .streamBroken, request: label,
                                                                     message: Self.describe(error)))
                }
            }
        }
        if let stall = options.stallTimeout {
            // Cancelling the reader closes the connection; the flag tells it why.
            watchdog.withLockedValue {
                $0 = Task {
                    while !Task.isCancelled {
                        let last = lastActivity.withLockedValue { $0 }
                        do { try await Task.sleep(until: last + stall, clock: .continuous) } catch { return }
                        if lastActivity.withLockedValue({ $0 }) == last {
                            stalled.withLockedValue { $0 = true }
                            reader.cancel()
                            return
                        }
                    }
                }
            }
        }
        continuation.onTermination = { _ in
            reader.cancel()
            watchdog.withLockedValue { $0?.cancel() }
        }
        return stream
    }

    // MARK: - Requests

    struct APIRequest: CustomStringConvertible {
        var method: HTTPMethod
        var path: String
        var query: [(String, String)] = []
        var body: [UInt8]? = nil
        var contentType: String? = nil

        var target: String { query.isEmpty ? path : path + "?" + QueryString.encode(query) }
        /// `GET /api/v1/pods?labelSelector=...`: how requests are named in errors and logs.
        var description: String { "\(method.rawValue) \(target.removingPercentEncoding ?? target)" }
    }

    /// A body we do not read (DELETE answers are an object or a Status).
    private struct IgnoredBody: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    private func call<Result: Decodable>(_ request: APIRequest, expecting: Result.Type) async throws -> Result {
        let started = ContinuousClock.now
        let (response, body) = try await withTimeout(requestTimeout, request) {
            let response = try await self.execute(request, headTimeout: self.requestTimeout)
            let body = try await response.body.collect(upTo: Self.maxBodyBytes)
            return (response, body)
        }
        logger.trace("kube request", metadata: [
            "kube.request": "\(request)", "http.status": "\(response.status.code)",
            "duration": "\(ContinuousClock.now - started)",
        ])
        guard (200..<300).contains(Int(response.status.code)) else {
            throw apiError(request, response, body)
        }
        do {
            return try JSONDecoder().decode(Result.self, from: Data(body.readableBytesView))
        } catch {
            throw KubeDecodingError(request: request.description, expected: "\(Result.self)", message: "\(error)",
                                    excerpt: Self.excerpt(Array(body.readableBytesView)))
        }
    }

    /// Sends the request and returns the answer's head; the body is the caller's to read.
    /// A 401 with a token file re-reads the file, and retries once when the token changed.
    private func execute(_ request: APIRequest, headTimeout: Duration) async throws -> HTTPClientResponse {
        var retriedAfterUnauthorized = false
        while true {
            var http = HTTPClientRequest(url: baseURL + request.target)
            http.method = request.method
            http.headers.add(name: "User-Agent", value: userAgent)
            http.headers.add(name: "Accept", value: "application/json")
            if let tokens {
                http.headers.add(name: "Authorization", value: "Bearer \(try tokens.token())")
            }
            if let body = request.body {
                http.headers.add(name: "Content-Type", value: request.contentType ?? "application/json")
                http.body = .bytes(ByteBuffer(bytes: body))
            }
            let response: HTTPClientResponse
            do {
                response = try await self.http.execute(http, timeout: Self.timeAmount(headTimeout), logger: logger)
            } catch {
                if Task.isCancelled || error is CancellationError { throw CancellationError() }
                throw transportError(request, error)
            }
            if response.status == .unauthorized, !retriedAfterUnauthorized, let tokens,
               try tokens.reloadAfterUnauthorized() {
                retriedAfterUnauthorized = true
                _ = try? await response.body.collect(upTo: 1 << 20)
                logger.info("the API answered 401; retrying with the token read again from its file",
                            metadata: ["kube.request": "\(request)"])
                continue
            }
            return response
        }
    }

    private func apiError(_ request: APIRequest, _ response: HTTPClientResponse, _ body: ByteBuffer?) -> KubeAPIError {
        let bytes = body.map { Array($0.readableBytesView) } ?? []
        let status = try? JSONDecoder().decode(Status.self, from: Data(bytes))
        let usable = status.flatMap { $0.message != nil || $0.reason != nil ? $0 : nil }
        var retryAfter: Duration?
        if let header = response.headers.first(name: "Retry-After"),
           let seconds = Int(header.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
            retryAfter = .seconds(seconds)
        } else if let seconds = usable?.details?.retryAfterSeconds {
            retryAfter = .seconds(seconds)
        }
        return KubeAPIError(statusCode: Int(response.status.code), status: usable, retryAfter: retryAfter,
                            request: request.description, bodyExcerpt: usable == nil ? Self.excerpt(bytes) : nil)
    }

    private func transportError(_ request: APIRequest, _ error: any Error) -> KubeTransportError {
        let label = "\(request.method.rawValue) \(baseURL)\(request.path)"
        let text = Self.describe(error)
        if error is NIOSSLError || error is BoringSSLError || text.contains("SSL") || text.contains("CERTIFICATE") {
            // BoringSSL names the reason in capitals after "OPENSSL_internal:"; lead with what it means.
            let reason = Self.boringSSLReason(text)
            let message: String
            switch reason {
            case "CERTIFICATE_VERIFY_FAILED":
                message = config.certificateAuthorityPEM == nil
                    ? "the server's certificate is not trusted by the system's CAs, and \(config.origin) names no CA"
                    : "the server's certificate is not signed by the CA of \(config.origin)"
            case let r? where r.contains("ALERT"):
                message = "the server refused the connection (is the client certificate signed by a CA it trusts?)"
            default:
                message = text
            }
            return KubeTransportError(kind: .tls, request: label, message: reason.map { "\(message) (\($0))" } ?? message)
        }
        if let e = error as? HTTPClientError,
           e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout || e == .writeTimeout {
            return KubeTransportError(kind: .timeout, request: label, message: text)
        }
        if text.contains("Connection refused") {
            return KubeTransportError(kind: .connection, request: label, message: "connection refused")
        }
        return KubeTransportError(kind: .connection, request: label, message: text)
    }

    /// `CERTIFICATE_VERIFY_FAILED` out of BoringSSL's `error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED`.
    static func boringSSLReason(_ text: String) -> String? {
        guard let range = text.range(of: "OPENSSL_internal:") else { return nil }
        let reason = text[range.upperBound...].prefix { $0.isUppercase || $0 == "_" || $0.isNumber }
        return reason.isEmpty ? nil : String(reason)
    }

    /// Races `body` against `limit`; the loser is cancelled (which closes its connection).
    private func withTimeout<T: Sendable>(_ limit: Duration, _ request: APIRequest,
                                          _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let label = "\(request.method.rawValue) \(baseURL)\(request.path)"
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw KubeTransportError(kind: .timeout, request: label, message: "no complete answer within \(limit)")
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw CancellationError() }
            return first
        }
    }

    private func requireNamespace<Object: KubeResource>(_ type: Object.Type, _ namespace: String?) throws -> String? {
        guard Object.resourceKind.namespaced else { return nil }
        guard let namespace, !namespace.isEmpty else {
            throw KubeRequestError(message: "\(Object.resourceKind) are namespaced: give a namespace")
        }
        return namespace
    }

    private func objectPath<Object: KubeResource>(_ type: Object.Type, name: String, namespace: String?,
                                                  subresource: String?) throws -> String {
        guard !name.isEmpty else { throw KubeRequestError(message: "\(Object.resourceKind): empty object name") }
        let ns = try requireNamespace(type, namespace)
        return Object.resourceKind.objectPath(name: name, namespace: ns, subresource: subresource)
    }

    static func timeAmount(_ d: Duration) -> TimeAmount {
        let (seconds, attoseconds) = d.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    static func excerpt(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(200), as: UTF8.self)
        return bytes.count > 200 ? text + "..." : text
    }

    /// NIO's errors describe themselves tersely; `String(describing:)` keeps their detail.
    static func describe(_ error: any Error) -> String {
        String(describing: error)
    }
}
