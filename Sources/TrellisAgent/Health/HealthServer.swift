#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
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

/// The metric names, their help text and type, for the Prometheus text format.
public enum AgentMetrics {
    public static let ready = "trellis_agent_ready"
    public static let endpoints = "trellis_agent_endpoints"
    public static let tunnels = "trellis_agent_tunnels"
    public static let peers = "trellis_agent_peers"
    public static let ipcacheEntries = "trellis_agent_ipcache_entries"
    public static let snapshots = "trellis_agent_snapshots_total"
    public static let reconcileFailures = "trellis_agent_reconcile_failures_total"
    public static let handshakes = "trellis_agent_handshake_requests_total"
    public static let policyEntries = "trellis_agent_policy_entries"
    public static let policies = "trellis_agent_network_policies"
    public static let identities = "trellis_agent_identities"

    static let help: [String: (String, String)] = [
        ready: ("1 when the datapath is loaded, the state synced and the conflist written.", "gauge"),
        endpoints: ("Local endpoints (pod interfaces) programmed.", "gauge"),
        tunnels: ("Remote pod CIDRs programmed as Geneve tunnels.", "gauge"),
        peers: ("Peer nodes whose Geneve traffic is accepted.", "gauge"),
        ipcacheEntries: ("ipcache entries (address or prefix -> identity) programmed.", "gauge"),
        policyEntries: ("Allow entries of the local pods' NetworkPolicy programmed.", "gauge"),
        policies: ("NetworkPolicies known.", "gauge"),
        identities: ("Security identities in use (label sets and ipBlock memberships).", "gauge"),
        snapshots: ("Cluster state snapshots received from the source.", "counter"),
        reconcileFailures: ("Programming actions that failed (retried).", "counter"),
        handshakes: ("CNI handshake requests answered.", "counter"),
    ]

    /// Prometheus text exposition (version 0.0.4), families sorted, each with one TYPE line
    /// and its samples sorted by label set. A sample key is a metric name, optionally followed
    /// by its labels as written in the exposition (`drops_total{direction="from_pod",...}`,
    /// the caller's, kept as they are); invalid characters in a name become '_'.
    public static func render(_ samples: [String: Double]) -> String {
        var families: [String: [String: Double]] = [:]
        for (key, value) in samples {
            let (name, labels) = splitLabels(key)
            families[sanitize(name), default: [:]][labels] = value
        }
        var out = ""
        for name in families.keys.sorted() {
            if let (help, type) = help[name] {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            } else {
                out += "# TYPE \(name) \(name.hasSuffix("_total") ? "counter" : "gauge")\n"
            }
            for (labels, value) in families[name]!.sorted(by: { $0.key < $1.key }) {
                out += "\(name)\(labels) \(format(value))\n"
            }
        }
        return out
    }

    /// `name{labels}` -> ("name", "{labels}"); a key without a closing brace has no labels.
    static func splitLabels(_ key: String) -> (name: String, labels: String) {
        guard key.hasSuffix("}"), let brace = key.firstIndex(of: "{") else { return (key, "") }
        return (String(key[..<brace]), String(key[brace...]))
    }

    static func sanitize(_ name: String) -> String {
        var out = ""
        for (i, s) in name.unicodeScalars.enumerated() {
            let ok = ("a"..."z").contains(s) || ("A"..."Z").contains(s) || s == "_" || s == ":" || (i > 0 && ("0"..."9").contains(s))
            out.unicodeScalars.append(ok ? s : "_")
        }
        return out.isEmpty ? "_" : out
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v.rounded() == v, abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}

/// The health endpoint: a minimal HTTP/1.1 server (GET and HEAD, one request per connection,
/// `Connection: close`, a `Content-Length` on every answer).
///
/// * `GET /healthz`: 200 `ok` while the process runs.
/// * `GET /readyz`: 200 `ready` when ready, else 503 with the reason.
/// * `GET /metrics`: Prometheus text: the agent's metrics plus the datapath's.
public final class HealthServer: Sendable {
    public typealias ReportProvider = @Sendable () -> HealthReport
    public typealias MetricsProvider = @Sendable () -> [String: Double]

    private let server: SocketServer
    /// The port actually bound (differs from the configured one when that was 0).
    public let port: UInt16

    public init(address: AgentConfig.ListenAddress, logger: Logger, report: @escaping ReportProvider,
                extraMetrics: @escaping MetricsProvider = { [:] }) throws(SystemError) {
        let (fd, port) = try Self.listen(address)
        self.port = port
        do {
            server = try SocketServer(listening: fd, name: "trellis health") { conn in
                Self.serve(conn, report: report, extraMetrics: extraMetrics)
            }
        } catch {
            close(fd)
            throw error
        }
        logger.info("health server listening", metadata: ["health.address": "\(AgentConfig.ListenAddress(host: address.host, port: port))"])
    }

    public func start() { server.start() }
    public func stop() async { await server.stop(grace: 2) }

    struct Response {
        var status: Int
        var reason: String
        var contentType = "text/plain; charset=utf-8"
        var body: String
        var extraHeaders: [(String, String)] = []
    }

    static func serve(_ fd: Int32, report: ReportProvider, extraMetrics: MetricsProvider) {
        Posix.setTimeouts(fd, seconds: 5)
        let (head, problem) = readUntil(fd, delimiter: Array("\r\n\r\n".utf8), limit: 8192)
        let response: Response
        var isHead = false
        if problem != nil {
            response = Response(status: 400, reason: "Bad Request", body: "bad request: \(problem!)\n")
        } else {
            let requestLine = String(decoding: head.prefix { $0 != 0x0D && $0 != 0x0A }, as: UTF8.self)
            let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
            if parts.count != 3 || !parts[2].hasPrefix("HTTP/1.") {
                response = Response(status: 400, reason: "Bad Request", body: "bad request line\n")
            } else {
                isHead = parts[0] == "HEAD"
                response = route(method: String(parts[0]), target: String(parts[1]), report: report, extraMetrics: extraMetrics)
            }
        }
        var text = "HTTP/1.1 \(response.status) \(response.reason)\r\n"
        let body = Array(response.body.utf8)
        text += "Content-Type: \(response.contentType)\r\n"
        text += "Content-Length: \(body.count)\r\n"
        for (k, v) in response.extraHeaders { text += "\(k): \(v)\r\n" }
        text += "Connection: close\r\n\r\n"
        try? Posix.sendAll(fd, Array(text.utf8) + (isHead ? [] : body))
        shutdown(fd, Int32(SHUT_WR))
    }

    static func route(method: String, target: String, report: ReportProvider, extraMetrics: MetricsProvider) -> Response {
        let path = String(target.prefix { $0 != "?" })
        guard ["/healthz", "/readyz", "/metrics"].contains(path) else {
            return Response(status: 404, reason: "Not Found", body: "not found: \(path) (try /healthz, /readyz, /metrics)\n")
        }
        guard method == "GET" || method == "HEAD" else {
            return Response(status: 405, reason: "Method Not Allowed", body: "method not allowed\n",
                            extraHeaders: [("Allow", "GET, HEAD")])
        }
        switch path {
        case "/healthz":
            return Response(status: 200, reason: "OK", body: "ok\n")
        case "/readyz":
            let r = report()
            return r.ready ? Response(status: 200, reason: "OK", body: "ready\n")
                : Response(status: 503, reason: "Service Unavailable", body: "not ready: \(r.reason)\n")
        default:
            let r = report()
            var samples = extraMetrics()
            for (k, v) in r.metrics { samples[k] = v }
            samples[AgentMetrics.ready] = r.ready ? 1 : 0
            return Response(status: 200, reason: "OK", contentType: "text/plain; version=0.0.4; charset=utf-8",
                            body: AgentMetrics.render(samples))
        }
    }

    static func listen(_ address: AgentConfig.ListenAddress) throws(SystemError) -> (Int32, UInt16) {
        let v6 = address.host.family == .v6
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket for the health server") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc: Int32
        if v6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: address.host.bytes) }
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: address.host.bytes) }
            rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0 else {
            let e = SystemError("bind the health server to \(address)")
            close(fd)
            throw e
        }
        guard Glibc.listen(fd, 64) == 0 else {
            let e = SystemError("listen on \(address)")
            close(fd)
            throw e
        }
        // The bound port, for port 0.
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &ss) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port: UInt16 = withUnsafeBytes(of: &ss) { raw in
            // sin_port and sin6_port sit at the same offset, right after the family.
            UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
        }
        return (fd, port)
    }
}
