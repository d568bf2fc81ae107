import Foundation
import Subprocess
import SystemPackage

public struct SubprocessError: Error, CustomStringConvertible, Sendable {
    public let command: [String]
    public let status: Int32
    public let stderr: String
    public var description: String {
        "\(command.joined(separator: " ")) exited with \(status): "
            + stderr.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Runs a short helper command (nft) to completion, through swift-subprocess: input and output
/// are read and written concurrently (no pipe can fill up and stall the child), and the wait
/// does not hold a thread of the cooperative pool.
enum ExternalCommand {
    struct Result: Sendable {
        /// The exit status, or 128 + the signal that ended the command.
        var status: Int32
        var stdout: [UInt8]
        var stderr: [UInt8]
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Where a bare command name is looked for: the sbin folders too, which a DaemonSet's PATH
    /// may lack.
    static let searchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"]

    /// Output beyond this is an error: nft's answers are a few lines.
    static let outputLimit = 16 << 20

    static func resolve(_ name: String) -> String {
        if name.contains("/") { return name }
        return searchPath.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? name
    }

    static func run(_ argv: [String], stdin: [UInt8] = []) async throws -> Result {
        let result = try await Subprocess.run(
            .path(FilePath(resolve(argv[0]))), arguments: Arguments(Array(argv.dropFirst())),
            input: .array(stdin), output: .bytes(limit: outputLimit), error: .bytes(limit: outputLimit))
        let status: Int32
        switch result.terminationStatus {
        case .exited(let code): status = code
        case .signaled(let signal): status = 128 + signal
        }
        return Result(status: status, stdout: result.standardOutput, stderr: result.standardError)
    }
}
