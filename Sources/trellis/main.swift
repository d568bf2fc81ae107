import Foundation
import TrellisPlugin

// The CNI plugin: environment and stdin in, one JSON answer on stdout, diagnostics on stderr.
let input = FileHandle.standardInput.readDataToEndOfFile()
let outcome = Plugin.run(environment: ProcessInfo.processInfo.environment, stdin: input) { line in
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
FileHandle.standardOutput.write(outcome.stdout)
exit(outcome.exitCode)
