import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TrellisKube
#if canImport(Glibc)
import Glibc
#endif

// The API server stand-in (hack/kube-standin/standin.py) as a process per test, listening on
// 127.0.0.1 with ephemeral ports: the Kube suites' server, and the lab's in Kubernetes mode.

enum KubeTestPaths {
    /// The repository (this file is Tests/TrellisTestSupport/KubeStandIn.swift).
    static let repo = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let standin = repo.appendingPathComponent("hack/kube-standin/standin.py").path
}

public struct StandInFailure: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

public struct StandInOptions {
    public var tls: TLSMaterial? = nil
    /// Trust client certificates signed by the test client CA (needs `tls`).
    public var clientCertificates = false
    /// Content of the tokens file; nil: no tokens file (and no authentication unless client certificates).
    public var tokens: [String]? = nil
    public var bookmarkInterval = 0.2
    public var history: Int? = nil
    /// JSON documents (Lists or arrays of objects) to start with.
    public var load: [String] = []
    /// `event` (default) or `http`: how a watch from an expired version fails.
    public var watchExpired: String? = nil

    public init(tls: TLSMaterial? = nil, clientCertificates: Bool = false, tokens: [String]? = nil,
                bookmarkInterval: Double = 0.2, history: Int? = nil, load: [String] = [], watchExpired: String? = nil) {
        self.tls = tls
        self.clientCertificates = clientCertificates
        self.tokens = tokens
        self.bookmarkInterval = bookmarkInterval
        self.history = history
        self.load = load
        self.watchExpired = watchExpired
    }
}

/// One stand-in process: started in a temporary folder, killed by PID by `stop()`.
public final class StandIn: @unchecked Sendable {
    public let dir: TempDir
    public let process: Process
    public let port: Int
    public let adminPort: Int
    public let scheme: String

    public var url: String { "\(scheme)://127.0.0.1:\(port)" }
    public var adminURL: String { "http://127.0.0.1:\(adminPort)" }
    public var tokensFile: String { dir.file("tokens") }

    private init(dir: TempDir, process: Process, port: Int, adminPort: Int, scheme: String) {
        self.dir = dir
        self.process = process
        self.port = port
        self.adminPort = adminPort
        self.scheme = scheme
    }

    public static func start(_ options: StandInOptions = StandInOptions()) throws -> StandIn {
        guard let python = HostTools.onPath("python3") else {
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
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        dir.remove()
    }

    public var log: String { dir.read("log") ?? "" }

    // MARK: - /_standin/ and the admin listener

    /// A request to the admin listener (plain HTTP, no authentication, never paused).
    @discardableResult
    public func admin(_ method: HTTPMethod, _ path: String, json: String? = nil,
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

    public struct Stats: Decodable {
        public var requests: [String: Int]
        public var openWatches: [String: Int]
        public var resourceVersion: String
        public var compactedResourceVersion: String

        public func count(_ key: String) -> Int { requests[key] ?? 0 }
    }

    public func stats() async throws -> Stats {
        let (_, body) = try await admin(.GET, "/_standin/stats")
        return try JSONDecoder().decode(Stats.self, from: Data(body.utf8))
    }

    public struct LoggedRequest: Decodable {
        /// When the request arrived (seconds since 1970), and how long the stand-in took to
        /// answer it (for a watch: until the stream started).
        public var time: Double
        public var seconds: Double
        public var verb: String
        public var resource: String
        public var method: String
        public var path: String
        public var query: String
        public var code: Int
        public var userAgent: String
    }

    public func requests() async throws -> [LoggedRequest] {
        struct Answer: Decodable { var requests: [LoggedRequest] }
        let (_, body) = try await admin(.GET, "/_standin/requests")
        return try JSONDecoder().decode(Answer.self, from: Data(body.utf8)).requests
    }

    public func dropWatches() async throws { try await admin(.POST, "/_standin/drop-watches") }
    public func compact() async throws { try await admin(.POST, "/_standin/compact") }
    public func pause(seconds: Double) async throws { try await admin(.POST, "/_standin/pause", json: "{\"seconds\": \(seconds)}") }

    /// The next `count` matching requests answer `status` (with Retry-After when given).
    public func fault(status: Int, count: Int, retryAfter: Int? = nil, verb: String? = nil, pathPrefix: String? = nil) async throws {
        var fields = ["\"status\": \(status)", "\"count\": \(count)"]
        if let retryAfter { fields.append("\"retryAfter\": \(retryAfter)") }
        if let verb { fields.append("\"verb\": \"\(verb)\"") }
        if let pathPrefix { fields.append("\"pathPrefix\": \"\(pathPrefix)\"") }
        try await admin(.POST, "/_standin/faults", json: "{\(fields.joined(separator: ", "))}")
    }

    /// A client of the admin listener: for setting up and changing objects in tests.
    public func adminConfig() -> KubeClientConfig {
        KubeClientConfig(server: adminURL, origin: "stand-in admin listener")
    }
}

public func withStandIn<T>(_ options: StandInOptions = StandInOptions(), _ body: (StandIn) async throws -> T) async throws -> T {
    let standin = try StandIn.start(options)
    defer { standin.stop() }
    return try await body(standin)
}
