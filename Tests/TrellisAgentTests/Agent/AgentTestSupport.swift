import Foundation
import InMemoryLogging
import Logging
import Testing
import TrellisCore
@testable import TrellisAgent
import TrellisCore
import TrellisNet
import TrellisPolicy
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Fakes and helpers of the agent suites. Nothing here needs root or touches the network
// configuration of the machine: sockets live in temporary folders, TCP on 127.0.0.1.

/// A logger that keeps its entries in memory (never `LoggingSystem.bootstrap` in tests).
struct TestLog {
    let handler: InMemoryLogHandler
    let logger: Logger

    init(level: Logger.Level = .trace) {
        var h = InMemoryLogHandler()
        h.logLevel = level
        handler = h
        logger = Logger(label: "test") { _ in h }
    }

    var entries: [InMemoryLogHandler.Entry] { handler.entries }

    func contains(_ level: Logger.Level, _ text: String) -> Bool {
        entries.contains { $0.level == level && $0.message.description.contains(text) }
    }

    func entries(with key: String, _ value: String) -> [InMemoryLogHandler.Entry] {
        entries.filter { $0.metadata[key]?.description == value }
    }
}

struct InjectedFailure: Error, CustomStringConvertible {
    let description: String
}

/// A `DatapathProgrammer` that records every call and keeps the resulting state, with
/// failures injectable per call.
final class RecordingProgrammer: DatapathProgrammer, @unchecked Sendable {
    enum Call: Equatable, CustomStringConvertible {
        case setNodeConfig(IPAddress, Int32, UInt32, DatapathMode, [IPAddress])
        case attachUnderlay(Int32)
        case upsertTunnel(IPNetwork, IPAddress), deleteTunnel(IPNetwork)
        case upsertPeer(IPAddress), deletePeer(IPAddress)
        case upsertIPCache(IPNetwork, IPCacheEntry), deleteIPCache(IPNetwork)
        case upsertPolicy(PolicyMapKey), deletePolicy(PolicyMapKey), bumpPolicyGeneration
        case upsertIdentity(Identity), deleteIdentity(Identity)
        case attachEndpoint(Int32), detachEndpoint(Int32)
        case upsertEndpoint(IPAddress, Int32, UInt32), deleteEndpoint(IPAddress)
        case ensureOverlayDevice(String, Int, [IPAddress]), attachOverlay(Int32)
        case upsertOverlayRoute(IPNetwork, IPAddress), deleteOverlayRoute(IPNetwork)
        case upsertService(IPAddress), deleteService(IPAddress)

        var description: String {
            switch self {
            case .setNodeConfig(let a, let b, let c, let d, let r): "setNodeConfig(\(a), \(b), \(c), \(d), \(r))"
            case .attachUnderlay(let i): "attachUnderlay(\(i))"
            case .upsertTunnel(let c, let i): "upsertTunnel(\(c), \(i))"
            case .deleteTunnel(let c): "deleteTunnel(\(c))"
            case .upsertPeer(let i): "upsertPeer(\(i))"
            case .deletePeer(let i): "deletePeer(\(i))"
            case .upsertIPCache(let p, let e): "upsertIPCache(\(p), \(e))"
            case .deleteIPCache(let p): "deleteIPCache(\(p))"
            case .upsertPolicy(let k): "upsertPolicy(\(k))"
            case .deletePolicy(let k): "deletePolicy(\(k))"
            case .bumpPolicyGeneration: "bumpPolicyGeneration"
            case .upsertIdentity(let i): "upsertIdentity(\(i))"
            case .deleteIdentity(let i): "deleteIdentity(\(i))"
            case .attachEndpoint(let i): "attachEndpoint(\(i))"
            case .detachEndpoint(let i): "detachEndpoint(\(i))"
            case .upsertEndpoint(let a, let i, let id): "upsertEndpoint(\(a), \(i), policy \(id))"
            case .deleteEndpoint(let a): "deleteEndpoint(\(a))"
            case .ensureOverlayDevice(let n, let m, let a): "ensureOverlayDevice(\(n), mtu \(m), \(a))"
            case .attachOverlay(let i): "attachOverlay(\(i))"
            case .upsertOverlayRoute(let d, let s): "upsertOverlayRoute(\(d) src \(s))"
            case .deleteOverlayRoute(let d): "deleteOverlayRoute(\(d))"
            case .upsertService(let i): "upsertService(\(i))"
            case .deleteService(let i): "deleteService(\(i))"
            }
        }

        /// Whether this is a write of the policy or ipcache maps (or the generation).
        var isPolicyWrite: Bool {
            switch self {
            case .upsertIPCache, .deleteIPCache, .upsertPolicy, .deletePolicy, .bumpPolicyGeneration, .upsertIdentity,
                 .deleteIdentity: true
            default: false
            }
        }
    }

    struct State: Equatable {
        var tunnels: [IPNetwork: IPAddress] = [:]
        var peers: Set<IPAddress> = []
        var ipcache: [IPNetwork: IPCacheEntry] = [:]
        var policy: Set<PolicyMapKey> = []
        var identities: [Identity: UInt64] = [:]
        var generation: UInt32 = 0
        var attached: Set<Int32> = []
        var endpoints: [IPAddress: EndpointEntry] = [:]
        var overlayRoutes: [IPNetwork: IPAddress] = [:]
        var services: Set<IPAddress> = []
    }

    /// The overlay device `ensureOverlayDevice` hands out.
    static let overlayDevice = OverlayDevice(ifindex: 900, name: "trellis_ovl", mac: MACAddress(bytes: [2, 0, 0, 0, 9, 0])!)
    /// The devices of the agent under test: `ensureOverlayDevice` creates its device there, as
    /// the real one does in the node's namespace.
    let devices = Locked<FakeLinks?>(nil)

    private let lock = NSLock()
    private var _calls: [Call] = []
    private var _state = State()
    /// Returns an error to throw for a call, or nil to let it succeed.
    private var _failure: (@Sendable (Call) -> (any Error)?)?
    var readFailure: (any Error)?

    init(state: State = State()) { _state = state }

    var calls: [Call] { lock.withLock { _calls } }
    var state: State { lock.withLock { _state } }
    func clearCalls() { lock.withLock { _calls = [] } }
    func failWhen(_ f: (@Sendable (Call) -> (any Error)?)?) { lock.withLock { _failure = f } }

    private func record(_ call: Call, _ apply: (inout State) -> Void) throws {
        try lock.withLock {
            _calls.append(call)
            if let e = _failure?(call) { throw e }
            apply(&_state)
        }
    }

    func setNodeConfig(nodeIP: IPAddress, underlayIfindex: Int32, vni: UInt32, mode: DatapathMode, routers: [IPAddress]) throws {
        try record(.setNodeConfig(nodeIP, underlayIfindex, vni, mode, routers)) { _ in }
    }
    func attachUnderlay(ifindex: Int32) throws { try record(.attachUnderlay(ifindex)) { _ in } }
    func upsertTunnel(podCIDR: IPNetwork, nodeIP: IPAddress) throws {
        try record(.upsertTunnel(podCIDR, nodeIP)) { $0.tunnels[podCIDR] = nodeIP }
    }
    func deleteTunnel(podCIDR: IPNetwork) throws { try record(.deleteTunnel(podCIDR)) { $0.tunnels[podCIDR] = nil } }
    func upsertPeer(nodeIP: IPAddress) throws { try record(.upsertPeer(nodeIP)) { $0.peers.insert(nodeIP) } }
    func deletePeer(nodeIP: IPAddress) throws { try record(.deletePeer(nodeIP)) { $0.peers.remove(nodeIP) } }
    func upsertIPCache(prefix: IPNetwork, entry: IPCacheEntry) throws {
        try record(.upsertIPCache(prefix, entry)) { $0.ipcache[prefix] = entry }
    }
    func deleteIPCache(prefix: IPNetwork) throws { try record(.deleteIPCache(prefix)) { $0.ipcache[prefix] = nil } }
    func upsertPolicy(_ key: PolicyMapKey) throws { try record(.upsertPolicy(key)) { $0.policy.insert(key) } }
    func deletePolicy(_ key: PolicyMapKey) throws { try record(.deletePolicy(key)) { $0.policy.remove(key) } }
    func bumpPolicyGeneration() throws { try record(.bumpPolicyGeneration) { $0.generation &+= 1 } }
    func upsertIdentity(_ id: Identity, fingerprint: UInt64) throws { try record(.upsertIdentity(id)) { $0.identities[id] = fingerprint } }
    func deleteIdentity(_ id: Identity) throws { try record(.deleteIdentity(id)) { $0.identities[id] = nil } }
    func attachEndpoint(hostIfindex: Int32) throws { try record(.attachEndpoint(hostIfindex)) { $0.attached.insert(hostIfindex) } }
    func detachEndpoint(hostIfindex: Int32) throws { try record(.detachEndpoint(hostIfindex)) { $0.attached.remove(hostIfindex) } }
    func upsertEndpoint(ip: IPAddress, _ entry: EndpointEntry) throws {
        try record(.upsertEndpoint(ip, entry.hostIfindex, entry.policyID)) { $0.endpoints[ip] = entry }
    }
    func deleteEndpoint(ip: IPAddress) throws { try record(.deleteEndpoint(ip)) { $0.endpoints[ip] = nil } }
    func ensureOverlayDevice(name: String, mtu: Int, addresses: [IPAddress]) throws -> OverlayDevice {
        try record(.ensureOverlayDevice(name, mtu, addresses)) { _ in }
        devices.current?.add(LinkFacts(index: Self.overlayDevice.ifindex, name: Self.overlayDevice.name, mtu: mtu))
        return Self.overlayDevice
    }
    func attachOverlay(_ device: OverlayDevice) throws { try record(.attachOverlay(device.ifindex)) { _ in } }
    func programmedOverlayRoutes(_ device: OverlayDevice) throws -> [IPNetwork: IPAddress] {
        if let readFailure { throw readFailure }
        return state.overlayRoutes
    }
    func upsertOverlayRoute(_ destination: IPNetwork, source: IPAddress, device: OverlayDevice) throws {
        try record(.upsertOverlayRoute(destination, source)) { $0.overlayRoutes[destination] = source }
    }
    func deleteOverlayRoute(_ destination: IPNetwork, device: OverlayDevice) throws {
        try record(.deleteOverlayRoute(destination)) { $0.overlayRoutes[destination] = nil }
    }
    func upsertService(ip: IPAddress) throws { try record(.upsertService(ip)) { $0.services.insert(ip) } }
    func deleteService(ip: IPAddress) throws { try record(.deleteService(ip)) { $0.services.remove(ip) } }
    func programmedServices() throws -> Set<IPAddress> {
        if let readFailure { throw readFailure }
        return state.services
    }

    func programmedEndpoints() throws -> [IPAddress: EndpointEntry] {
        if let readFailure { throw readFailure }
        return state.endpoints
    }
    func programmedTunnels() throws -> [IPNetwork: IPAddress] {
        if let readFailure { throw readFailure }
        return state.tunnels
    }
    func programmedPeers() throws -> Set<IPAddress> {
        if let readFailure { throw readFailure }
        return state.peers
    }
    func programmedIPCache() throws -> [IPNetwork: IPCacheEntry] {
        if let readFailure { throw readFailure }
        return state.ipcache
    }
    func programmedPolicy() throws -> Set<PolicyMapKey> {
        if let readFailure { throw readFailure }
        return state.policy
    }
    func programmedIdentities() throws -> [Identity: UInt64] {
        if let readFailure { throw readFailure }
        return state.identities
    }
    /// Events `readDropEvents` hands out (each once); without any it waits its timeout.
    let pendingEvents = Locked<[DatapathDropEvent]>([])
    func readDropEvents(timeoutMs: Int32) throws -> [DatapathDropEvent] {
        let events = pendingEvents.withLock { e -> [DatapathDropEvent] in defer { e = [] }; return e }
        if events.isEmpty { usleep(UInt32(timeoutMs) * 1000) }
        return events
    }
    func metrics() -> [String: Double] { ["trellis_datapath_test_drops_total": 7] }
}

/// Devices by index, changeable while a test runs.
final class FakeLinks: LinkInspector, @unchecked Sendable {
    private let links = Locked<[Int32: LinkFacts]>([:])

    init(_ initial: [LinkFacts] = []) {
        for l in initial { add(l) }
    }

    func add(_ l: LinkFacts) { links.withLock { $0[l.index] = l } }
    func remove(index: Int32) { links.withLock { $0[index] = nil } }

    func link(named name: String) throws -> LinkFacts? { links.current.values.first { $0.name == name } }
    func link(index: Int32) throws -> LinkFacts? { links.current[index] }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

// MARK: - Clients

/// Sends `text` (a newline is added unless `raw`) to the unix socket at `path`, returns the
/// answer line. Blocking; tests call it from a detached task.
func unixRequest(_ path: String, _ text: String, raw: Bool = false) throws -> String {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SystemError("socket") }
    defer { close(fd) }
    var tv = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = try HandshakeServer.unixAddress(path).withSockaddr { connect(fd, $0, $1) }
    guard rc == 0 else { throw SystemError("connect \(path)") }
    try Posix.sendAll(fd, Array((raw ? text : text + "\n").utf8))
    if raw { shutdown(fd, Int32(SHUT_WR)) }
    let (data, problem) = readUntil(fd, delimiter: [0x0A], limit: 1 << 20)
    if let problem { throw InjectedFailure(description: problem) }
    return String(decoding: data, as: UTF8.self)
}

func unixRequestAsync(_ path: String, _ text: String, raw: Bool = false) async throws -> String {
    try await onOwnThread { try unixRequest(path, text, raw: raw) }
}

/// Runs blocking client code on a thread of its own: blocking the cooperative pool (two
/// threads on a two-core machine) would starve the very server the client waits for.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
        Thread { cont.resume(with: Result { try body() }) }.start()
    }
}

struct HTTPResponse {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// A plain HTTP/1.1 GET to 127.0.0.1:`port`.
func httpGet(port: UInt16, _ path: String, method: String = "GET") async throws -> HTTPResponse {
    try await onOwnThread {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw SystemError("connect 127.0.0.1:\(port)") }
        try Posix.sendAll(fd, Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        // Connection: close: read to the end.
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw InjectedFailure(description: "no header end in \(text)") }
        let headLines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(headLines[0].split(separator: " ")[1])!
        var headers: [String: String] = [:]
        for line in headLines.dropFirst() {
            let kv = line.split(separator: ":", maxSplits: 1)
            headers[kv[0].lowercased()] = kv[1].trimmingCharacters(in: .whitespaces)
        }
        return HTTPResponse(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}

/// The parent of every agent suite, so `swift test --filter AgentSuite` selects them all.
@Suite("Agent")
enum AgentSuite {}
