import Foundation
import Testing
import TrellisCore
import TrellisNet
import TrellisNetlink
import TrellisPlugin
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

// Shared machinery of the root-only integration suites.
//
// Every test works in its own network namespaces (a "node" namespace in which the plugin runs
// as kubelet would run it, and pod namespaces), named `trlt-<test process PID>-<random>-<role>`,
// with its IPAM state in a temporary folder. `ITLab.with` removes all of it, and stops every
// process the test started, on every exit path. Should a test process die before it could
// clean up, the next run removes what is left of it (namespaces and folders whose PID is dead).
// Nothing here touches the root network namespace.

/// The parent of every integration suite, so `--filter Integration` selects them all.
@Suite("Integration", .needsRoot)
enum Integration {}

enum IT {
    /// The plugin binary: `$TRELLIS_BIN`, else `trellis` next to the test bundle executable
    /// (under swift-testing on Linux argv[0] is `<scratch>/debug/trellisPackageTests.xctest`,
    /// in the same folder as the products).
    static let trellisBinary: String = {
        if let p = ProcessInfo.processInfo.environment["TRELLIS_BIN"], !p.isEmpty { return p }
        var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        for dir in dirs {
            // Inside a `.xctest` bundle (Darwin layout) the products are three levels up.
            for candidate in [dir, dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()] {
                let p = candidate.appendingPathComponent("trellis").path
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return dirs[0].appendingPathComponent("trellis").path
    }()

    static let referencePlugins = "/usr/lib/cni"
    static let searchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// `sysctl` of the test process's own (root) namespace, to prove the plugin never changed it.
    static func rootSysctl(_ key: String) -> String? { Sysctl.get(key) }

    static func json(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    static func object(_ data: Data) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// Dual-stack ranges `10.<n>.0.0/24` and `fd00:<n>::/64`.
    static func dualStack(_ n: Int) -> [[String: Any]] {
        [["subnet": "10.\(n).0.0/24"], ["subnet": "fd00:\(n)::/64"]]
    }
}

enum KernelSupport {
    /// Whether the kernel can create dummy links (CONFIG_DUMMY), probed in a throw-away
    /// namespace. Only used to pick the "someone else's device" of some tests.
    static let dummyLinks: Bool = {
        guard getuid() == 0 else { return false }
        let name = "trlt-\(getpid())-probe-" + String(UInt32.random(in: 0..<UInt32.max), radix: 16)
        defer { try? NetworkNamespace.delete(named: name) }
        do {
            let ns = try NetworkNamespace.create(named: name)
            try ns.run { () throws -> Void in
                _ = try Netlink().ensureLink(name: "probe0", kind: "dummy")
            }
            return true
        } catch {
            return false
        }
    }()
}

/// The plugin's modes, as the integration suites name them.
typealias Mode = DatapathMode

// MARK: - Processes

/// One process we started, with stdout/stderr captured in files of the lab's folder.
final class ITProcess: @unchecked Sendable {
    let process = Process()
    private let outPath: String
    private let errPath: String
    private(set) var exitCode: Int32?

    init(executable: String, arguments: [String], environment: [String: String], stdin: Data?,
         outputPrefix: String) throws {
        outPath = outputPrefix + ".out"
        errPath = outputPrefix + ".err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        // stdin from a file, not a pipe: a pipe's write end could leak into a process started
        // concurrently by another test and keep this one from ever seeing EOF.
        if let stdin {
            let inPath = outputPrefix + ".in"
            _ = FileManager.default.createFile(atPath: inPath, contents: stdin)
            process.standardInput = FileHandle(forReadingAtPath: inPath)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Waits, then reads the outcome as a plugin's.
    func pluginRun(timeout: TimeInterval = 30) -> PluginRun {
        let code = wait(timeout: timeout)
        return PluginRun(exitCode: code, stdout: stdout, stderr: stderr)
    }

    /// Waits for the exit; past the deadline the process is killed (by its PID) and the exit
    /// code is the signal's.
    @discardableResult
    func wait(timeout: TimeInterval = 30) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(2_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        exitCode = process.terminationStatus
        return process.terminationStatus
    }

    /// Stops it (SIGKILL to its own PID) if still running.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var stdout: Data { FileManager.default.contents(atPath: outPath) ?? Data() }
    var stderr: String { String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self) }
}

/// The outcome of one plugin invocation.
struct PluginRun: CustomStringConvertible {
    let exitCode: Int32
    let stdout: Data
    let stderr: String

    var object: [String: Any]? { IT.object(stdout) }
    /// The CNI error code, when stdout is an error object.
    var errorCode: Int? { object?["code"] as? Int }
    var message: String { object?["msg"] as? String ?? "" }
    var ok: Bool { exitCode == 0 }

    var description: String {
        "exit \(exitCode); stdout: \(String(decoding: stdout, as: UTF8.self)); stderr: \(stderr)"
    }
}

/// The result of a shell-level command (`ip`, `ping`, `tc`, ...).
struct CommandRun: CustomStringConvertible {
    let exitCode: Int32
    let stdout: String
    let stderr: String
    var description: String { "exit \(exitCode); stdout: \(stdout); stderr: \(stderr)" }
}

// MARK: - The lab: namespaces, state folder, processes; cleaned up on every path

final class ITLab: @unchecked Sendable {
    /// `trlt-<PID>-<6 hex>`; also the CNI network name.
    let id: String
    /// Temporary folder: IPAM dataDir and process output.
    let folder: String
    private let lock = NSLock()
    private var namespaces: [String] = []
    private var started: [ITProcess] = []
    private var counter = 0
    private var cleaned = false

    var network: String { id }
    var node: String { "\(id)-node" }
    var dataDir: String { folder + "/ipam" }

    /// Runs `body` with a fresh lab (node namespace created) and removes everything afterwards,
    /// whether `body` returns, throws (`#require`) or records failures (`#expect`).
    static func with(_ body: (ITLab) throws -> Void) throws {
        let lab = try ITLab()
        defer { lab.cleanup() }
        try body(lab)
    }

    private init() throws {
        ITLab.removeLeftoversOfDeadRuns
        id = "trlt-\(getpid())-" + String(format: "%06x", UInt32.random(in: 0..<0x100_0000))
        var template = Array("/tmp/\(id)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw NetlinkError("mkdtemp", kind: .other, reason: String(cString: strerror(errno)))
        }
        folder = String(cString: made)
        do {
            try makeNamespace(node)
        } catch {
            cleanup()
            throw error
        }
    }

    deinit { cleanup() }

    /// Once per test process: namespaces and folders named `trlt-<PID>-...` whose process no
    /// longer exists (a crashed earlier run). Those of live processes, including concurrent
    /// runs, are left alone.
    private static let removeLeftoversOfDeadRuns: Void = {
        func deadOwner(_ name: String) -> Bool {
            let parts = name.split(separator: "-")
            guard parts.count >= 3, parts[0] == "trlt", let pid = Int32(parts[1]), pid > 0 else { return false }
            return pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH
        }
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: NetworkNamespace.defaultDirectory)) ?? [] where deadOwner(name) {
            try? NetworkNamespace.delete(named: name)
        }
        for name in (try? fm.contentsOfDirectory(atPath: "/tmp")) ?? [] where deadOwner(name) {
            try? fm.removeItem(atPath: "/tmp/" + name)
        }
    }()

    /// Idempotent: stops our processes by PID, deletes our namespaces, removes our folder.
    func cleanup() {
        lock.lock()
        if cleaned { lock.unlock(); return }
        cleaned = true
        let processes = started
        let names = namespaces
        lock.unlock()
        for p in processes { p.stop() }
        // Pods first, so their veths go before the node's bridge; either order is safe.
        for name in names.reversed() { try? NetworkNamespace.delete(named: name) }
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func makeNamespace(_ name: String) throws {
        lock.lock()
        namespaces.append(name)   // before creating: a half-created one is removed too
        lock.unlock()
        _ = try NetworkNamespace.create(named: name)   // lo up; the fd is closed right away
    }

    /// Creates the pod namespace `<id>-<suffix>` and returns its name.
    @discardableResult
    func makePod(_ suffix: String) throws -> String {
        let name = "\(id)-\(suffix)"
        try makeNamespace(name)
        return name
    }

    func netnsPath(_ ns: String) -> String { NetworkNamespace.defaultDirectory + "/" + ns }

    private func nextOutputPrefix() -> String {
        lock.lock()
        defer { lock.unlock() }
        counter += 1
        return folder + "/proc-\(counter)"
    }

    // MARK: configs

    /// A trellis config; `extra` members are added at the top level.
    func conf(_ mode: Mode = .bridge, version: String = "1.1.0", ranges: [[String: Any]],
              mtu: Int = 1400, extra: [String: Any] = [:]) -> [String: Any] {
        var c: [String: Any] = [
            "cniVersion": version, "name": network, "type": "trellis", "mode": mode.rawValue,
            "bridge": "trt0", "mtu": mtu,
            "ipam": ["ranges": ranges, "dataDir": dataDir] as [String: Any],
        ]
        for (k, v) in extra { c[k] = v }
        return c
    }

    // MARK: running plugins like kubelet does

    /// Only the CNI variables given (plus PATH unless `withPath` is false).
    func cniEnv(_ command: String, containerID: String? = nil, netns: String? = nil, ifName: String? = nil,
                withPath: Bool = true) -> [String: String] {
        var env = ["CNI_COMMAND": command, "CNI_PATH": IT.referencePlugins]
        if withPath { env["PATH"] = IT.searchPath }
        if let containerID { env["CNI_CONTAINERID"] = containerID }
        if let netns { env["CNI_NETNS"] = netns }
        if let ifName { env["CNI_IFNAME"] = ifName }
        return env
    }

    /// Starts a plugin as a subprocess inside the node namespace, the config on its stdin.
    func startPlugin(_ env: [String: String], stdin: Data, plugin: String = IT.trellisBinary) throws -> ITProcess {
        try ITProcess(executable: HostTools.ip, arguments: ["netns", "exec", node, plugin], environment: env,
                      stdin: stdin, outputPrefix: nextOutputPrefix())
    }

    func runPlugin(_ env: [String: String], stdin: Data, plugin: String = IT.trellisBinary) -> PluginRun {
        do {
            let p = try startPlugin(env, stdin: stdin, plugin: plugin)
            let code = p.wait()
            return PluginRun(exitCode: code, stdout: p.stdout, stderr: p.stderr)
        } catch {
            return PluginRun(exitCode: -1, stdout: Data(), stderr: "could not start \(plugin): \(error)")
        }
    }

    func runPlugin(_ env: [String: String], conf: [String: Any], plugin: String = IT.trellisBinary) -> PluginRun {
        runPlugin(env, stdin: IT.json(conf), plugin: plugin)
    }

    func add(_ containerID: String, pod: String, conf: [String: Any], ifName: String = "eth0",
             plugin: String = IT.trellisBinary) -> PluginRun {
        runPlugin(cniEnv("ADD", containerID: containerID, netns: netnsPath(pod), ifName: ifName), conf: conf, plugin: plugin)
    }

    /// DEL; `pod` nil leaves CNI_NETNS unset.
    func del(_ containerID: String, pod: String?, conf: [String: Any], ifName: String = "eth0",
             plugin: String = IT.trellisBinary) -> PluginRun {
        runPlugin(cniEnv("DEL", containerID: containerID, netns: pod.map(netnsPath), ifName: ifName), conf: conf, plugin: plugin)
    }

    func check(_ containerID: String, pod: String, conf: [String: Any], prevResult: [String: Any],
               ifName: String = "eth0") -> PluginRun {
        var c = conf
        c["prevResult"] = prevResult
        return runPlugin(cniEnv("CHECK", containerID: containerID, netns: netnsPath(pod), ifName: ifName), conf: c)
    }

    // MARK: commands inside namespaces

    /// `ip netns exec <ns> args...`
    @discardableResult
    func exec(_ ns: String, _ args: [String], timeout: TimeInterval = 15) -> CommandRun {
        do {
            let p = try ITProcess(executable: HostTools.ip, arguments: ["netns", "exec", ns] + args,
                                  environment: ["PATH": IT.searchPath], stdin: nil, outputPrefix: nextOutputPrefix())
            let code = p.wait(timeout: timeout)
            return CommandRun(exitCode: code, stdout: String(decoding: p.stdout, as: UTF8.self), stderr: p.stderr)
        } catch {
            return CommandRun(exitCode: -1, stdout: "", stderr: "could not start: \(error)")
        }
    }

    @discardableResult
    func exec(_ ns: String, _ args: String...) -> CommandRun { exec(ns, args) }

    /// A long-running process inside `ns`; stopped by PID at cleanup (or earlier by the caller).
    func startBackground(_ ns: String, _ args: [String], stdin: Data?) throws -> ITProcess {
        let p = try ITProcess(executable: HostTools.ip, arguments: ["netns", "exec", ns] + args,
                              environment: ["PATH": IT.searchPath], stdin: stdin, outputPrefix: nextOutputPrefix())
        lock.lock()
        started.append(p)
        lock.unlock()
        return p
    }

    /// One echo request, 2 s to answer.
    func ping(from ns: String, _ address: String) -> CommandRun {
        exec(ns, ["ping", "-c", "1", "-W", "2", address])
    }

    /// A Netlink socket inside `ns`. Drop it before deleting the namespace: a socket pins it.
    func netlink(_ ns: String) throws -> Netlink {
        try Netlink(namespace: NetworkNamespace(path: netnsPath(ns)))
    }

    /// Names of every link in `ns` (`ip -j link`).
    func linkNames(_ ns: String) -> [String] {
        let r = exec(ns, "ip", "-j", "link", "show")
        let list = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [[String: Any]] ?? []
        return list.compactMap { $0["ifname"] as? String }
    }

    /// Host veths of trellis (`trl` + 12 hex) in the node namespace.
    func hostVeths() -> [String] {
        linkNames(node).filter { $0.hasPrefix(HostVethName.prefix) && $0.count == 15 }
    }

    enum ForeignKind { case dummyOrVeth, bridge }

    /// A link that is not ours. `.dummyOrVeth`: a dummy where the kernel has them, else one end
    /// of a veth pair whose other end is `<name>p` (so: never a bridge). `.bridge`: a bridge (so:
    /// never a veth). Brought up (both ends) when `up`. Returns the outcome of the creation.
    @discardableResult
    func addForeignDevice(_ name: String, in ns: String, kind: ForeignKind = .dummyOrVeth, up: Bool = false) -> CommandRun {
        let peer = String((name + "p").prefix(15))
        let r: CommandRun
        var peerToRaise: String?
        switch kind {
        case .bridge:
            r = exec(ns, "ip", "link", "add", name, "type", "bridge")
        case .dummyOrVeth where KernelSupport.dummyLinks:
            r = exec(ns, "ip", "link", "add", name, "type", "dummy")
        case .dummyOrVeth:
            r = exec(ns, "ip", "link", "add", name, "type", "veth", "peer", "name", peer)
            peerToRaise = peer
        }
        if up {
            exec(ns, "ip", "link", "set", name, "up")
            if let peerToRaise { exec(ns, "ip", "link", "set", peerToRaise, "up") }
        }
        return r
    }

    /// Removes a device made by `addForeignDevice` (a veth's peer goes with it).
    func removeDevice(_ name: String, in ns: String) {
        exec(ns, "ip", "link", "del", name)
    }

    // MARK: IPAM state

    /// `containerID/ifname` -> addresses of every record in `<dataDir>/<network>/allocations.json`
    /// (empty when the file does not exist).
    func ipamRecords(network: String? = nil) -> [String: [String]] {
        let path = dataDir + "/" + (network ?? self.network) + "/allocations.json"
        guard let data = FileManager.default.contents(atPath: path), let top = IT.object(data),
              let list = top["allocations"] as? [[String: Any]] else { return [:] }
        var out: [String: [String]] = [:]
        for a in list {
            let key = a["key"] as? [String: Any] ?? [:]
            let id = "\(key["containerID"] as? String ?? "?")/\(key["ifname"] as? String ?? "?")"
            out[id] = a["addresses"] as? [String] ?? []
        }
        return out
    }
}

// MARK: - Reading results

extension PluginRun {
    var interfaces: [[String: Any]] { object?["interfaces"] as? [[String: Any]] ?? [] }
    var ips: [[String: Any]] { object?["ips"] as? [[String: Any]] ?? [] }
    var routes: [[String: Any]] { object?["routes"] as? [[String: Any]] ?? [] }

    /// The address (with prefix) of the given family from `ips`.
    func address(v6: Bool) -> String? {
        ips.compactMap { $0["address"] as? String }.first { $0.contains(":") == v6 }
    }

    /// The address without prefix.
    func host(v6: Bool) -> String? {
        address(v6: v6).map { String($0.split(separator: "/")[0]) }
    }
}
