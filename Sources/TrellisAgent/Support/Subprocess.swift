import Foundation

public struct SubprocessError: Error, CustomStringConvertible, Sendable {
    public let command: [String]
    public let status: Int32
    public let stderr: String
    public var description: String {
        "\(command.joined(separator: " ")) exited with \(status): "
            + stderr.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Runs a short helper command (nft) to completion off the cooperative pool.
enum Subprocess {
    struct Result: Sendable {
        var status: Int32
        var stdout: [UInt8]
        var stderr: [UInt8]
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    static let searchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"]

    static func resolve(_ name: String) -> String {
        if name.contains("/") { return name }
        return searchPath.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? name
    }

    /// Output goes to temporary files (no pipe can fill up and stall the child); the wait
    /// happens on a thread of its own.
    static func run(_ argv: [String], stdin: [UInt8] = []) async throws -> Result {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Result, any Error>) in
            let thread = Thread {
                cont.resume(with: Swift.Result { try runBlocking(argv, stdin: stdin) })
            }
            thread.name = "trellis subprocess"
            thread.start()
        }
    }

    static func runBlocking(_ argv: [String], stdin: [UInt8]) throws -> Result {
        let tmp = FileManager.default.temporaryDirectory.path
        let base = tmp + "/trellis-agent-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let files = [base + ".in", base + ".out", base + ".err"]
        defer { for f in files { unlink(f) } }
        _ = FileManager.default.createFile(atPath: files[0], contents: Data(stdin), attributes: [.posixPermissions: 0o600])
        _ = FileManager.default.createFile(atPath: files[1], contents: nil, attributes: [.posixPermissions: 0o600])
        _ = FileManager.default.createFile(atPath: files[2], contents: nil, attributes: [.posixPermissions: 0o600])
        guard let input = FileHandle(forReadingAtPath: files[0]), let output = FileHandle(forUpdatingAtPath: files[1]),
              let errors = FileHandle(forUpdatingAtPath: files[2]) else {
            throw SystemError("open the temporary files of \(argv[0])")
        }
        defer { try? input.close(); try? output.close(); try? errors.close() }
        // Open, they need no names: gone from /tmp now, even if this process is killed later.
        for f in files { unlink(f) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: resolve(argv[0]))
        process.arguments = Array(argv.dropFirst())
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        func readAll(_ h: FileHandle) -> [UInt8] {
            (try? h.seek(toOffset: 0)).flatMap { _ in try? h.readToEnd() }.map(Array.init) ?? []
        }
        return Result(status: process.terminationStatus, stdout: readAll(output), stderr: readAll(errors))
    }
}
