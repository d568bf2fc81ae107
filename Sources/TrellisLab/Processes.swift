import CNetlink
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process the lab started, identified by its PID and its start time (field 22 of
/// `/proc/PID/stat`, in clock ticks since boot), so that a PID reused by another program after
/// ours exited is never signalled.
public struct ProcessRef: Codable, Sendable, Equatable {
    public var pid: Int32
    public var startTime: UInt64
}

/// The lab's processes, started with posix_spawn rather than swift-subprocess (1.0.2), which
/// does not fit them:
/// - agents, pod servers, pod runners outlive the command that starts them (`lab up` exits,
///   `lab down` in another process stops them by recorded PID and start time), while every
///   `Subprocess.run` is async and awaits its child's exit before it returns, and 1.0.2 has no
///   detached spawn;
/// - the short runs (the plugin for CNI ADD/DEL, nft) are waited for from synchronous code,
///   with a deadline and SIGKILL past it, stdin from a file and output to files kept beside
///   the pod; `run` would need an async bridge and a timeout built around it, for no gain.
/// Both need what the spawn below sets: default signal dispositions and an empty mask (the
/// lab ignores SIGINT while it cleans up), a new session, no inherited descriptors.
enum Processes {
    /// Start time and state letter of a PID, nil when there is no such process.
    static func procStat(_ pid: Int32) -> (startTime: UInt64, state: Character)? {
        guard let text = Sys.readText("/proc/\(pid)/stat"),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state is field 3, starttime field 22.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return (start, state)
    }

    static func ref(_ pid: Int32) -> ProcessRef? {
        procStat(pid).map { ProcessRef(pid: pid, startTime: $0.startTime) }
    }

    /// Running (a zombie or a reused PID counts as gone).
    static func isAlive(_ ref: ProcessRef) -> Bool {
        guard let s = procStat(ref.pid), s.startTime == ref.startTime else { return false }
        return s.state != "Z" && s.state != "X"
    }

    /// Collects the exit status if the process is our child (no-op otherwise).
    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// glibc's POSIX_SPAWN_SETSID (a GNU extension, so not visible to Swift's Glibc module).
    private static let spawnSetsid: Int32 = 0x80

    /// Starts `executable` with exactly `environment`, stdin from a file (or /dev/null),
    /// stdout and stderr appended to files. `newSession`: the child leads a session of its own,
    /// so a terminal's hang-up or Ctrl-C of the command that started it never reaches it.
    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String],
                      stdin: String? = nil, stdout: String, stderr: String? = nil,
                      newSession: Bool = false) throws(LabError) -> ProcessRef {
        Sys.closeOnExecAbove2()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let stderr, stderr != stdout {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Default dispositions and an empty mask: the lab's own signal handling stays its own.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        if newSession { flags |= spawnSetsid }
        posix_spawnattr_setflags(&attr, Int16(flags))

        let argv = ([executable] + arguments).map { strdup($0) }
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = (argv + [nil]).withUnsafeBufferPointer { a in
            (envp + [nil]).withUnsafeBufferPointer { e in
                posix_spawn(&pid, executable, &actions, &attr, a.baseAddress!, e.baseAddress!)
            }
        }
        guard rc == 0 else { throw LabError("start \(executable): \(Sys.errorText(rc))") }
        // The start time is readable as soon as the child exists; a child that already
        // exited and was reaped by nobody is still a zombie with its stat file.
        return ref(pid) ?? ProcessRef(pid: pid, startTime: 0)
    }

    /// Waits for a child of ours; past `timeout` it is killed. Returns its exit code (128+signal
    /// when killed by a signal).
    static func wait(_ pid: Int32, timeout: Double) -> Int32 {
        let deadline = Sys.now() + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return -1 }
            if Sys.now() > deadline {
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                break
            }
            Sys.sleep(milliseconds: 2)
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros that Swift does not import.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Stops every live process of `refs`: SIGTERM, up to `grace` seconds for them to exit,
    /// then SIGKILL. Only these PIDs are signalled, and only while they are the processes we
    /// started (same start time). Returns the ones that had to be killed.
    @discardableResult
    static func stop(_ refs: [ProcessRef], grace: Double = 5) -> [ProcessRef] {
        let live = refs.filter(isAlive)
        for r in live { kill(r.pid, SIGTERM) }
        let deadline = Sys.now() + grace
        var remaining = live
        while !remaining.isEmpty, Sys.now() < deadline {
            remaining.forEach { reap($0.pid) }
            remaining = remaining.filter(isAlive)
            if !remaining.isEmpty { Sys.sleep(milliseconds: 20) }
        }
        for r in remaining where isAlive(r) { kill(r.pid, SIGKILL) }
        let killDeadline = Sys.now() + 2
        var unkilled = remaining
        while !unkilled.isEmpty, Sys.now() < killDeadline {
            unkilled.forEach { reap($0.pid) }
            unkilled = unkilled.filter(isAlive)
            if !unkilled.isEmpty { Sys.sleep(milliseconds: 10) }
        }
        return remaining
    }

    /// PIDs of processes whose network namespace is the one bound at `netnsPath`
    /// (for the warning that something foreign still holds a lab namespace).
    static func inNamespace(_ netnsPath: String) -> [Int32] {
        var target = stat()
        guard stat(netnsPath, &target) == 0 else { return [] }
        var out: [Int32] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name) else { continue }
            var st = stat()
            if stat("/proc/\(pid)/ns/net", &st) == 0, st.st_ino == target.st_ino, st.st_dev == target.st_dev {
                out.append(pid)
            }
        }
        return out
    }
}

/// `trellisctl lab exec --netns PATH -- CMD ARGS...`: enter the network namespace on the main
/// thread of this (still single-threaded) process, then replace the process with CMD. The PID
/// stays the same, so the PID the lab records is the command's.
public enum NamespaceExec {
    public static func run(netns path: String, command: [String]) -> LabError {
        guard let program = command.first else { return LabError("lab exec: no command given after --") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return Sys.fail("lab exec: open network namespace \(path)") }
        guard trellis_setns(fd, TRELLIS_CLONE_NEWNET) == 0 else {
            let e = errno
            close(fd)
            return Sys.fail("lab exec: enter network namespace \(path)", e)
        }
        close(fd)
        Sys.closeOnExecAbove2()   // the command gets stdin, stdout and stderr, nothing else
        let argv = command.map { strdup($0) }
        _ = (argv + [nil]).withUnsafeBufferPointer { execvp(program, $0.baseAddress!) }
        let e = errno
        argv.forEach { free($0) }
        return Sys.fail("lab exec: run \(program)", e)
    }
}
