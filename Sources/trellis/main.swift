#if canImport(Glibc)
import Glibc
#endif
import TrellisNetlink
import TrellisPlugin

// The CNI plugin: environment and stdin in, one JSON answer on stdout, diagnostics on stderr.
// Plain read/write instead of FileHandle keeps Foundation (and its ICU data) out of the binary.

func readAll(_ fd: Int32) -> [UInt8] {
    var out: [UInt8] = []
    // 4 KiB at a time: a config is a few hundred bytes, and every zeroed page of a bigger
    // buffer is resident memory of a process started for each pod.
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buf, buf.count)
        if n > 0 { out += buf[0..<n]; continue }
        if n < 0, errno == EINTR { continue }
        return out
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return }
    }
}

NetworkNamespace.useSingleMallocArena()

var environment: [String: String] = [:]
var entry = environ
while let p = entry.pointee {
    let pair = String(cString: p)
    if let eq = pair.firstIndex(of: "=") {
        environment[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }
    entry += 1
}

let outcome = Plugin.run(environment: environment, stdin: readAll(0)) { line in
    writeAll(2, Array((line + "\n").utf8))
}
writeAll(1, outcome.stdout)
exit(outcome.exitCode)
