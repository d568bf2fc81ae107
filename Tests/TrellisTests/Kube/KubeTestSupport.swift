import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing
@testable import TrellisKube
#if canImport(Glibc)
import Glibc
#endif

// Helpers of the Kube suites: the API server stand-in (hack/kube-standin/standin.py) as a
// process per test, TLS material made with the openssl command line, and an informer event
// recorder. Everything listens on 127.0.0.1 with ephemeral ports.

enum KubeTestPaths {
    static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let standin = repo.appendingPathComponent("hack/kube-standin/standin.py").path

    /// An executable on PATH (python3, kubectl, openssl), or nil.
    static func onPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a command to completion, output through files (no pipe can fill up).
func runCommand(_ argv: [String], environment: [String: String]? = nil, stdin: String? = nil) throws -> CommandResult {
    let dir = TempDir("cmd")
    defer { dir.remove() }
    dir.write("in", stdin ?? "")
    dir.write("out", "")
    dir.write("err", "")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: argv[0])
    process.arguments = Array(argv.dropFirst())
    if let environment { process.environment = environment }
    let input = FileHandle(forReadingAtPath: dir.file("in"))!
    let output = FileHandle(forWritingAtPath: dir.file("out"))!
    let errors = FileHandle(forWritingAtPath: dir.file("err"))!
    defer { try? input.close(); try? output.close(); try? errors.close() }
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: dir.read("out") ?? "", stderr: dir.read("err") ?? "")
}

struct StandInFailure: Error, CustomStringConvertible {
    let description: String
}

/// Private CAs and certificates for the TLS tests, made once per test run with `openssl`.
/// The folder of `TLSMaterial.shared()`, for the exit handler that removes it.
private let tlsMaterialDirectory = Guarded<String?>(nil)

struct TLSMaterial: Sendable {
    let dir: String
    var caCert: String { dir + "/ca.crt" }
    var serverCert: String { dir + "/server.crt" }
    var serverKey: String { dir + "/server.key" }
    var clientCACert: String { dir + "/client-ca.crt" }
    var clientCert: String { dir + "/client.crt" }
    var clientKey: String { dir + "/client.key" }
    /// A CA that signed nothing here: trusting only it must fail the handshake.
    var otherCACert: String { dir + "/other-ca.crt" }

    private static let made = Guarded<TLSMaterial?>(nil)

    static func shared() throws -> TLSMaterial {
        try made.withLock { cached in
            if let cached { return cached }
            let material = try make()
            cached = material
            return material
        }
    }

    private static func make() throws(StandInFailure) -> TLSMaterial {
        guard let openssl = KubeTestPaths.onPath("openssl") else { throw StandInFailure(description: "openssl is not on PATH") }
        let dir = TempDir("kube-tls").path
        // Shared by every test of this process: removed when the process exits.
        tlsMaterialDirectory.withLock { $0 = dir }
        atexit { if let d = tlsMaterialDirectory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: d) } }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        func run(_ args: [String]) throws(StandInFailure) {
            do {
                let r = try runCommand([openssl] + args)
                if r.status != 0 { throw StandInFailure(description: "openssl \(args.joined(separator: " ")): \(r.stderr)") }
            } catch let e as StandInFailure {
                throw e
            } catch {
                throw StandInFailure(description: "openssl: \(error)")
            }
        }
        func ca(_ name: String, _ cn: String) throws(StandInFailure) {
            try run(["req", "-x509"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).crt",
                                              "-days", "2", "-subj", "/CN=\(cn)"])
        }
        func leaf(_ name: String, subject: String, signer: String, extensions: String) throws(StandInFailure) {
            _ = FileManager.default.createFile(atPath: "\(dir)/\(name).ext", contents: Data(extensions.utf8))
            try run(["req"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", subject])
            try run(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(signer).crt", "-CAkey", "\(dir)/\(signer).key",
                     "-CAcreateserial", "-out", "\(dir)/\(name).crt", "-days", "2", "-extfile", "\(dir)/\(name).ext"])
        }
        try ca("ca", "trellis-test-ca")
        try ca("client-ca", "trellis-test-client-ca")
        try ca("other-ca", "somebody-else")
        try leaf("server", subject: "/CN=kube-standin", signer: "ca",
                 extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try leaf("client", subject: "/O=system:nodes/CN=system:node:test", signer: "client-ca",
                 extensions: "extendedKeyUsage=clientAuth\n")
        return TLSMaterial(dir: dir)
    }
}

struct StandInOptions {
    var tls: TLSMaterial? = nil
    /// Trust client certificates signed by the test client CA (needs `tls`).
    var clientCertificates = false
    /// Content of the tokens file; nil: no tokens file (and no authentication unless client certificates).
    var tokens: [String]? = nil
    var bookmarkInterval = 0.2
    var history: Int? = nil
    /// JSON documents (Lists or arrays of objects) to start with.
    var load: [String] = []
    /// `event` (default) or `http`: how a watch from an expired version fails.
    var watchExpired: String? = nil
}

/// One stand-in process: started in a temporary folder, killed by PID by `stop()`.
final class StandIn: @unchecked Sendable {
    let dir: TempDir
    let process: Process
    let port: Int
    let adminPort: Int
    let scheme: String

    var url: String { "\(scheme)://127.0.0.1:\(port)" }
    var adminURL: String { "http://127.0.0.1:\(adminPort)" }
    var tokensFile: String { dir.file("tokens") }

    private init(dir: TempDir, process: Process, port: Int, adminPort: Int, scheme: String) {
        self.dir = dir
        self.process = process
        self.port = port
        self.adminPort = adminPort
        self.scheme = scheme
    }

    static func start(_ options: StandInOptions = StandInOptions()) throws -> StandIn {
        guard let python = KubeTestPaths.onPath("python3") else {
            throw StandInFailure(description: "python3 is not on PATH")
        }
        let dir = TempDir("kube-standin")
        var args = [KubeTestPaths.standin, "--listen", "127.0.0.1:0", "--port-file", dir.file("port"),
                    "--admin-listen", "127.0.0.1:0", "--admin-port-file", dir.file("admin-port"),
                    "--bookmark-interval", String(options.bookmarkInterval)]
        if let tls = options.tls {
            args += ["--tls-cert", tls.serverCert, "--tls-key", tls.serverKey]
            if options.clientCertificates { args += ["--client-ca", tls.clientCACert] }
        }
        if let tokens = options.tokens {
            dir.write("tokens", tokens.joined(separator: "\n") + "\n")
            args += ["--tokens-file", dir.file("tokens")]
        }
        if let history = options.history { args += ["--history", String(history)] }
        if let mode = options.watchExpired { args += ["--watch-expired", mode] }
        for (i, doc) in options.load.enumerated() {
            dir.write("load-\(i).json", doc)
            args += ["--load", dir.file("load-\(i).json")]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = args
        dir.write("log", "")
        let log = FileHandle(forWritingAtPath: dir.file("log"))!
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if let p = dir.read("port").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
               let a = dir.read("admin-port").flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
                return StandIn(dir: dir, process: process, port: p, adminPort: a, scheme: options.tls == nil ? "http" : "https")
            }
            if !process.isRunning { break }
            usleep(20_000)
        }
        let output = dir.read("log") ?? ""
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        dir.remove()
        throw StandInFailure(description: "the stand-in did not start: \(output)")
    }

    /// Kills the process (by its PID) and removes its folder.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        dir.remove()
    }

    var log: String { dir.read("log") ?? "" }

    // MARK: - /_standin/ and the admin listener

    /// A request to the admin listener (plain HTTP, no authentication, never paused).
    @discardableResult
    func admin(_ method: HTTPMethod, _ path: String, json: String? = nil,
               contentType: String = "application/json") async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: adminURL + path)
        request.method = method
        if let json {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    struct Stats: Decodable {
        var requests: [String: Int]
        var openWatches: [String: Int]
        var resourceVersion: String
        var compactedResourceVersion: String

        func count(_ key: String) -> Int { requests[key] ?? 0 }
    }

    func stats() async throws -> Stats {
        let (_, body) = try await admin(.GET, "/_standin/stats")
        return try JSONDecoder().decode(Stats.self, from: Data(body.utf8))
    }

    struct LoggedRequest: Decodable {
        /// When the request arrived (seconds since 1970), and how long the stand-in took to
        /// answer it (for a watch: until the stream started).
        var time: Double
        var seconds: Double
        var verb: String
        var resource: String
        var method: String
        var path: String
        var query: String
        var code: Int
        var userAgent: String
    }

    func requests() async throws -> [LoggedRequest] {
        struct Answer: Decodable { var requests: [LoggedRequest] }
        let (_, body) = try await admin(.GET, "/_standin/requests")
        return try JSONDecoder().decode(Answer.self, from: Data(body.utf8)).requests
    }

    func dropWatches() async throws { try await admin(.POST, "/_standin/drop-watches") }
    func compact() async throws { try await admin(.POST, "/_standin/compact") }
    func pause(seconds: Double) async throws { try await admin(.POST, "/_standin/pause", json: "{\"seconds\": \(seconds)}") }

    /// The next `count` matching requests answer `status` (with Retry-After when given).
    func fault(status: Int, count: Int, retryAfter: Int? = nil, verb: String? = nil, pathPrefix: String? = nil) async throws {
        var fields = ["\"status\": \(status)", "\"count\": \(count)"]
        if let retryAfter { fields.append("\"retryAfter\": \(retryAfter)") }
        if let verb { fields.append("\"verb\": \"\(verb)\"") }
        if let pathPrefix { fields.append("\"pathPrefix\": \"\(pathPrefix)\"") }
        try await admin(.POST, "/_standin/faults", json: "{\(fields.joined(separator: ", "))}")
    }

    /// A client of the admin listener: for setting up and changing objects in tests.
    func adminConfig() -> KubeClientConfig {
        KubeClientConfig(server: adminURL, origin: "stand-in admin listener")
    }
}

func withStandIn<T>(_ options: StandInOptions = StandInOptions(), _ body: (StandIn) async throws -> T) async throws -> T {
    let standin = try StandIn.start(options)
    defer { standin.stop() }
    return try await body(standin)
}

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

/// A lock-protected value for the Kube suites (they do not import the agent's `Locked`).
final class Guarded<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    @discardableResult
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    var current: Value { withLock { $0 } }
}

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

/// Polls `condition` until it holds or `timeout` passes.
func waitFor(_ what: String, timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out after \(timeout) waiting for \(what)")
    throw StandInFailure(description: "timed out waiting for \(what)")
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
