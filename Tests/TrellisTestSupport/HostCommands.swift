import Foundation

/// Where the host's commands are.
public enum HostTools {
    /// An executable on PATH (python3, kubectl, openssl), or nil.
    public static func onPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// iproute2's `ip`, by absolute path: the suites run with a PATH of their own (or none).
    public static let ip: String = {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "ip"
    }()
}

public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a command to completion, output through files (no pipe can fill up).
public func runCommand(_ argv: [String], environment: [String: String]? = nil, stdin: String? = nil) throws -> CommandResult {
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
