#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import TrellisNet

/// What the health endpoints report, updated by the agent as it goes.
public struct HealthReport: Sendable, Equatable {
    public var ready: Bool
    /// Why the agent is not ready (or what it is doing), for /readyz.
    public var reason: String
    /// Gauges and counters of the agent itself: full metric name -> value.
    public var metrics: [String: Double]
    /// The cluster state revision whose policy is programmed (see `ClusterSnapshot.revision`).
    public var appliedRevision: String?

    public init(ready: Bool = false, reason: String = "starting", metrics: [String: Double] = [:],
                appliedRevision: String? = nil) {
        self.ready = ready
        self.reason = reason
        self.metrics = metrics
        self.appliedRevision = appliedRevision
    }
}

/// The health endpoint: HTTP/1.1 on SwiftNIO (GET and HEAD, `Connection: close` and a
/// `Content-Length` on every answer, 5 s to send the request).
///
/// * `GET /healthz`: 200 `ok` while the process runs.
/// * `GET /readyz`: 200 `ready` when ready, else 503 with the reason.
/// * `GET /metrics`: Prometheus text: the agent's metrics plus the datapath's.
///
/// NIOHTTP1 with the three routes below rather than Hummingbird: the agent already links
/// SwiftNIO (TrellisKube), while Hummingbird would add its own ~14k lines (Hummingbird,
/// HummingbirdCore) and swift-configuration to every clean CI build on two cores, more than the
/// two minutes such a server is worth for three fixed GET routes.
public final class HealthServer: Service, Sendable {
    public typealias ReportProvider = @Sendable () -> HealthReport
    public typealias MetricsProvider = @Sendable () -> [String: Double]

    private let channel: any Channel
    private let logger: Logger
    /// The port actually bound (differs from the configured one when that was 0).
    public let port: UInt16

    /// Binds `address` now (so that a port in use fails start-up), but accepts connections
    /// only from `start()` (or `run()`) on.
    public init(address: AgentConfig.ListenAddress, logger: Logger, report: @escaping ReportProvider,
                extraMetrics: @escaping MetricsProvider = { [:] },
                metrics: MetricsExposition = MetricsExposition()) throws(SystemError) {
        let routes = HealthRoutes(report: report, extraMetrics: extraMetrics, metrics: metrics)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(5)))
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(HealthRequestHandler(routes: routes))
                }
            }
        do {
            let socketAddress = try SocketAddress(ipAddress: address.host.description, port: Int(address.port))
            channel = try bootstrap.bind(to: socketAddress).wait()
        } catch let error as IOError {
            throw SystemError("bind the health server to \(address)", errno: error.errnoCode)
        } catch {
            throw SystemError("bind the health server to \(address) (\(error))", errno: EINVAL)
        }
        port = UInt16(channel.localAddress?.port ?? Int(address.port))
        self.logger = logger
        logger.info("health server listening", metadata: ["health.address": "\(AgentConfig.ListenAddress(host: address.host, port: port))"])
    }

    /// Starts accepting connections.
    public func start() {
        channel.setOption(.autoRead, value: true).whenFailure { [logger] error in
            logger.error("health server cannot accept connections: \(error)")
        }
    }

    /// Stops accepting connections; those in flight finish on their own (each is one request).
    public func stop() async {
        try? await channel.close()
    }

    /// Serves until graceful shutdown or cancellation.
    public func run() async {
        start()
        try? await gracefulShutdown()
        await stop()
    }
}

/// What the health server answers, request by request.
struct HealthRoutes: Sendable {
    let report: HealthServer.ReportProvider
    let extraMetrics: HealthServer.MetricsProvider
    let metrics: MetricsExposition

    struct Response {
        var status: HTTPResponseStatus
        var contentType = "text/plain; charset=utf-8"
        var body: String
        var extraHeaders: [(String, String)] = []
    }

    func respond(method: HTTPMethod, target: String) -> Response {
        let path = String(target.prefix { $0 != "?" })
        guard ["/healthz", "/readyz", "/metrics"].contains(path) else {
            return Response(status: .notFound, body: "not found: \(path) (try /healthz, /readyz, /metrics)\n")
        }
        guard method == .GET || method == .HEAD else {
            return Response(status: .methodNotAllowed, body: "method not allowed\n", extraHeaders: [("Allow", "GET, HEAD")])
        }
        switch path {
        case "/healthz":
            return Response(status: .ok, body: "ok\n")
        case "/readyz":
            let r = report()
            return r.ready ? Response(status: .ok, body: "ready\n")
                : Response(status: .serviceUnavailable, body: "not ready: \(r.reason)\n")
        default:
            let r = report()
            var samples = extraMetrics()
            for (k, v) in r.metrics { samples[k] = v }
            samples[AgentMetrics.ready] = r.ready ? 1 : 0
            return Response(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                            body: metrics.render(samples))
        }
    }
}

/// One connection: one request, its answer, then close.
final class HealthRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: HealthRoutes
    private var request: HTTPRequestHead?

    init(routes: HealthRoutes) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(context: context, to: head)
        }
    }

    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead) {
        let response = routes.respond(method: head.method, target: head.uri)
        let body = ByteBuffer(string: response.body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        for (name, value) in response.extraHeaders { headers.add(name: name, value: value) }
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))),
                      promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    /// The request did not arrive within the read timeout.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        else { context.fireUserInboundEventTriggered(event) }
    }
}
