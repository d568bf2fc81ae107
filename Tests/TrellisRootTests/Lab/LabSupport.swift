import Foundation
import Testing
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

// The `trellisctl lab` suites drive the real `trellisctl` binary (beside the test bundle, like
// `trellis` for the Integration suites) against a lab whose state lives in a temporary folder.
// `LabRun.with` brings the lab down and checks that nothing is left on every exit path; as a
// safety net for a broken `down`, it then removes by itself whatever the lab's id names.

enum LabTest {
    /// `$TRELLISCTL_BIN`, else `trellisctl` beside the test bundle executable.
    static let trellisctl: String = binary("trellisctl", env: "TRELLISCTL_BIN")
    static let trellis: String = binary("trellis", env: "TRELLIS_BIN")

    private static func binary(_ name: String, env: String) -> String {
        if let p = ProcessInfo.processInfo.environment[env], !p.isEmpty { return p }
        var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        for dir in dirs {
            for candidate in [dir, dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()] {
                let p = candidate.appendingPathComponent(name).path
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return dirs[0].appendingPathComponent(name).path
    }

    static func netnsList() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: NetworkNamespace.defaultDirectory)) ?? []
    }

    /// Read to the end with read(2): Foundation's readers stop after the first page of a procfs file.
    static func mountInfo() -> String { readAll("/proc/self/mountinfo") }

    static func readAll(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { out += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// A PID is gone when it does not exist or is a zombie (its parent, not us, reaps it).
    static func processGone(_ pid: Int) -> Bool {
        let stat = readAll("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state == "Z" || state == "X"
    }
}

/// One lab in a temporary folder, and the commands run against it.
final class LabRun: @unchecked Sendable {
    let folder: String
    let state: String
    private var outputCounter = 0
    /// Namespaces, PIDs and the lab id seen while the lab ran, for the final checks.
    private(set) var labID: String?
    private var pids = Set<Int>()

    static func with(_ body: (LabRun) throws -> Void) throws {
        let lab = try LabRun()
        defer { lab.tearDownAndCheck() }
        try body(lab)
    }

    private init() throws {
        var template = Array("/tmp/trlab-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LabError("mkdtemp: \(String(cString: strerror(errno)))")
        }
        folder = String(cString: made)
        state = folder + "/state"
    }

    struct LabError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// `trellisctl ARGS --state STATE`, stdout and stderr through files (no pipe that a process
    /// started by the lab could inherit and hold open).
    @discardableResult
    func ctl(_ args: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) -> CommandRun {
        run(args + ["--state", state], environment: environment, timeout: timeout)
    }

    /// `trellisctl lab exec --netns /var/run/netns/NETNS -- ARGS`
    func exec(_ netns: String, _ args: [String]) -> CommandRun {
        run(["lab", "exec", "--netns", NetworkNamespace.defaultDirectory + "/" + netns, "--"] + args, environment: [:], timeout: 15)
    }

    private func run(_ args: [String], environment: [String: String], timeout: TimeInterval) -> CommandRun {
        outputCounter += 1
        var env = ["PATH": IT.searchPath]
        for (k, v) in environment { env[k] = v }
        do {
            let p = try ITProcess(executable: LabTest.trellisctl, arguments: args, environment: env,
                                  stdin: nil, outputPrefix: folder + "/ctl-\(outputCounter)")
            let code = p.wait(timeout: timeout)
            let run = CommandRun(exitCode: code, stdout: String(decoding: p.stdout, as: UTF8.self), stderr: p.stderr)
            learn(from: run.stdout)
            return run
        } catch {
            return CommandRun(exitCode: -1, stdout: "", stderr: "could not start trellisctl: \(error)")
        }
    }

    @discardableResult
    func ctl(_ args: String..., environment: [String: String] = [:]) -> CommandRun { ctl(args, environment: environment) }

    /// `status -o json`, remembered for the final checks.
    func status() -> [String: Any]? {
        let r = ctl("lab", "status", "-o", "json")
        guard r.exitCode == 0, let object = IT.object(Data(r.stdout.utf8)) else { return nil }
        remember(object)
        return object
    }

    /// The lab id (`lab trlab-1a2b3c4d: ...`) and PIDs (`... pid 1234 ...`) that `up` prints.
    private func learn(from output: String) {
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count > 1, words[0] == "lab", words[1].hasPrefix("trlab-") { labID = String(words[1].dropLast()) }
            for (i, w) in words.enumerated() where w == "pid" && i + 1 < words.count {
                if let pid = Int(words[i + 1].prefix { $0.isNumber }) { pids.insert(pid) }
            }
        }
    }

    func remember(_ status: [String: Any]) {
        if let id = status["labID"] as? String { labID = id }
        for n in status["nodes"] as? [[String: Any]] ?? [] { if let pid = n["agentPID"] as? Int { pids.insert(pid) } }
        for p in status["pods"] as? [[String: Any]] ?? [] { if let pid = p["serverPID"] as? Int { pids.insert(pid) } }
    }

    /// The lab's namespaces present now (by its id, so also unrecorded ones).
    func labNamespaces() -> [String] {
        guard let labID else { return [] }
        return LabTest.netnsList().filter { $0.hasPrefix(labID + "-") }.sorted()
    }

    func writeManifest(_ name: String, _ text: String) throws -> String {
        let path = folder + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// What must hold after `down`: none of the lab's namespaces, mounts, processes, nor its state.
    func expectNothingLeft(_ context: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(labNamespaces().isEmpty, "namespaces left \(context): \(labNamespaces())", sourceLocation: sourceLocation)
        #expect(!LabTest.mountInfo().contains(state), "mounts left under \(state) \(context)", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: state), "state dir \(state) left \(context)", sourceLocation: sourceLocation)
        let alive = pids.filter { !LabTest.processGone($0) }
        #expect(alive.isEmpty, "processes left \(context): \(alive.sorted())", sourceLocation: sourceLocation)
    }

    /// `down`, the checks, then the safety net (which only acts when `down` failed).
    private func tearDownAndCheck() {
        let down = ctl("lab", "down")
        #expect(down.exitCode == 0, "lab down at the end: \(down)")
        expectNothingLeft("after the final down")
        for pid in pids where !LabTest.processGone(pid) { kill(Int32(pid), SIGKILL) }
        for name in labNamespaces() { try? NetworkNamespace.delete(named: name) }
        for line in LabTest.mountInfo().split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 4, fields[4].hasPrefix(folder) { umount2(String(fields[4]), Int32(MNT_DETACH)) }
        }
        try? FileManager.default.removeItem(atPath: folder)
    }
}
