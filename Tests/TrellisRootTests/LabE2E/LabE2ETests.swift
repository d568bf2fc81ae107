import Foundation
import Glibc
import Testing
import TrellisTestSupport

/// Where the binaries and BPF objects the lab runs are (a type of its own: a suite's traits
/// cannot refer to the suite).
enum LabBinaries {
    static let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let ready: Bool = ["trellisctl", "trellis", "trellis-agent"].allSatisfy {
        FileManager.default.isExecutableFile(atPath: binDir + "/" + $0)
    } && FileManager.default.fileExists(atPath: repo + "/.build/bpf")
}

/// The datapath issue's end-to-end checks, on the real binaries in `trellisctl lab`:
/// 3 nodes x 2 pods, every pair over TCP and UDP, a full-MTU DF ping across nodes, Geneve on
/// the underlay, agents restarted under a 100 pps ping without a lost packet, and `lab down`
/// leaving nothing. Both datapath modes.
@Suite("Lab end to end", .serialized,
       .needsRoot,
       .enabled(if: LabBinaries.ready, "needs trellisctl, trellis and trellis-agent beside the test bundle and the BPF objects in .build/bpf (hack/test.sh builds them)"))
struct LabE2E {
    static var binDir: String { LabBinaries.binDir }
    static var repo: String { LabBinaries.repo }

    static let pods = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: e2e, labels: {team: a}}
    ---
    apiVersion: v1
    kind: List
    items:
    """ + (1...3).flatMap { node in (1...2).map { i in """

      - apiVersion: v1
        kind: Pod
        metadata: {name: p\(node)\(i), namespace: e2e, labels: {app: p\(node)\(i)}}
        spec:
          nodeName: node-\(node)
          containers:
          - name: srv
            ports: [{name: http, containerPort: 80, protocol: TCP}, {name: dns, containerPort: 53, protocol: UDP}]
    """ } }.joined()

    @Test("3 nodes x 2 pods, per datapath mode", arguments: ["ebpf", "bridge"])
    func wholeLab(mode: String) throws {
        let state = "/tmp/trlt-e2e-\(getpid())-\(mode)"
        defer {
            _ = Self.ctl(["lab", "down", "--state", state], timeout: 60)
            try? FileManager.default.removeItem(atPath: state)
        }
        let up = Self.ctl(["lab", "up", "--nodes", "3", "--datapath", mode, "--state", state, "--bpf-dir", Self.repo + "/.build/bpf"], timeout: 90)
        try #require(up.code == 0, "lab up: \(up)")
        let manifest = state + ".pods.yaml"
        try Self.pods.write(toFile: manifest, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: manifest) }
        let apply = Self.ctl(["lab", "apply", "-f", manifest, "--state", state], timeout: 90)
        try #require(apply.code == 0, "lab apply: \(apply)")

        let status = try #require(Self.json(Self.ctl(["lab", "status", "-o", "json", "--state", state]).out))
        let pods = try #require(status["pods"] as? [[String: Any]])
        try #require(pods.count == 6, "\(pods)")
        let names = pods.map { "\($0["namespace"]!)/\($0["name"]!)" }.sorted()

        // Every ordered pair, TCP and UDP, same node and across nodes.
        var failures: [String] = []
        for src in names { for dst in names where dst != src {
            for port in ["80/TCP", "53/UDP"] {
                let r = Self.ctl(["lab", "probe", src, dst, port, "--state", state])
                if r.code != 0 { failures.append("\(src) -> \(dst) \(port): \(r.out)\(r.err)") }
            }
        } }
        #expect(failures.isEmpty, "unreachable pairs:\n\(failures.joined(separator: "\n"))")

        // A full-MTU ping with DF set crosses nodes (pod MTU = 1500 - 50).
        let p11 = try #require(pods.first { $0["name"] as? String == "p11" })
        let p21 = try #require(pods.first { $0["name"] as? String == "p21" })
        let src = try #require(p11["netns"] as? String)
        let dstIP = try #require((p21["ips"] as? [String])?.first?.split(separator: "/").first.map(String.init))
        let df = Self.run("/usr/bin/ip", ["netns", "exec", src, "ping", "-M", "do", "-s", "\(1450 - 28)", "-c", "3", "-W", "2", dstIP])
        #expect(df.code == 0, "full-MTU DF ping \(src) -> \(dstIP): \(df)")
        let tooBig = Self.run("/usr/bin/ip", ["netns", "exec", src, "ping", "-M", "do", "-s", "\(1450 - 27)", "-c", "1", "-W", "2", dstIP])
        #expect(tooBig.code != 0, "a packet over the pod MTU must not pass with DF set")

        // Leaving the cluster is masqueraded to the node IP: node-2 has no route back to
        // node-1's pod CIDR, so its answer to a pod on node-1 arrives only if the pod's packet
        // left with node-1's address as its source.
        let nodes = try #require(status["nodes"] as? [[String: Any]])
        let node2IP = try #require(nodes.first { $0["name"] as? String == "node-2" }?["nodeIP"] as? String)
        let outside = Self.run("/usr/bin/ip", ["netns", "exec", src, "ping", "-c", "2", "-W", "2", node2IP])
        #expect(outside.code == 0, "pod on node-1 -> node-2's underlay address \(node2IP) (masquerade): \(outside)")

        // The underlay carries Geneve (decoded by tcpdump: "Geneve ... vni 0x1").
        let underlay = try #require(status["underlay"] as? [String: Any])
        let ulNS = try #require(underlay["netns"] as? String)
        let ulDev = try #require(underlay["device"] as? String)
        let pcap = state + ".pcap"
        defer { try? FileManager.default.removeItem(atPath: pcap) }
        let capture = try Self.start("/usr/bin/ip", ["netns", "exec", ulNS, "tcpdump", "-i", ulDev, "-c", "4", "-w", pcap, "udp", "port", "6081"])
        usleep(500_000)
        _ = Self.run("/usr/bin/ip", ["netns", "exec", src, "ping", "-c", "4", "-i", "0.2", dstIP])
        let captured = Self.wait(capture, timeout: 10)
        _ = (Self.output(capture), Self.errors(capture))
        #expect(captured == 0, "tcpdump saw no Geneve packets on \(ulNS)/\(ulDev)")
        let decoded = Self.run("/usr/bin/env", ["tcpdump", "-nn", "-v", "-r", pcap])
        #expect(decoded.out.contains("Geneve"), "tcpdump does not decode the packets as Geneve:\n\(decoded.out)")

        // Restart every agent while a 100 pps ping runs across nodes: no packet may be lost.
        let ping = try Self.start("/usr/bin/ip", ["netns", "exec", src, "ping", "-i", "0.01", "-c", "500", "-W", "1", dstIP])
        usleep(1_000_000)
        let restart = Self.ctl(["lab", "restart-agents", "--state", state], timeout: 60)
        #expect(restart.code == 0, "restart-agents: \(restart)")
        #expect(Self.wait(ping, timeout: 30) == 0)
        let pingOut = Self.output(ping)
        _ = Self.errors(ping)
        #expect(pingOut.contains(" 0% packet loss"), "packets lost while the agents restarted:\n\(pingOut)")

        // down leaves nothing: no namespace, no bpffs mount, no process, no state.
        let down = Self.ctl(["lab", "down", "--state", state], timeout: 60)
        #expect(down.code == 0, "lab down: \(down)")
        let leftNS = Self.run("/usr/bin/ip", ["netns", "list"]).out.split(separator: "\n")
            .filter { line in ([src, ulNS] + pods.compactMap { $0["netns"] as? String }).contains { line.hasPrefix($0) } }
        #expect(leftNS.isEmpty, "namespaces left: \(leftNS)")
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(state), "bpffs mounts left under \(state)")
        #expect(!FileManager.default.fileExists(atPath: state), "state dir left")
        for node in status["nodes"] as? [[String: Any]] ?? [] {
            if let pid = node["agentPID"] as? Int { #expect(kill(Int32(pid), 0) != 0, "agent \(pid) still running") }
        }
    }

    // MARK: running things

    struct Run: CustomStringConvertible {
        var code: Int32, out: String, err: String
        var description: String { "exit \(code)\n\(out)\(err)" }
    }

    static func ctl(_ args: [String], timeout: TimeInterval = 30) -> Run {
        run(binDir + "/trellisctl", args + ["--bin-dir", binDir], timeout: timeout)
    }

    static func run(_ exe: String, _ args: [String], timeout: TimeInterval = 30) -> Run {
        guard let p = try? start(exe, args) else { return Run(code: -1, out: "", err: "cannot start \(exe)") }
        let code = wait(p, timeout: timeout)
        return Run(code: code, out: output(p), err: errors(p))
    }

    static func start(_ exe: String, _ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("trlt-e2e-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path + ".out", contents: nil)
        FileManager.default.createFile(atPath: out.path + ".err", contents: nil)
        p.standardOutput = FileHandle(forWritingAtPath: out.path + ".out")
        p.standardError = FileHandle(forWritingAtPath: out.path + ".err")
        p.standardInput = FileHandle.nullDevice
        do {
            try p.run()
        } catch {
            try? FileManager.default.removeItem(atPath: out.path + ".out")
            try? FileManager.default.removeItem(atPath: out.path + ".err")
            throw error
        }
        outputs[ObjectIdentifier(p)] = out.path
        return p
    }

    nonisolated(unsafe) static var outputs: [ObjectIdentifier: String] = [:]

    static func wait(_ p: Process, timeout: TimeInterval) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return p.terminationStatus
    }

    static func output(_ p: Process) -> String { read(p, ".out") }
    static func errors(_ p: Process) -> String { read(p, ".err") }
    private static func read(_ p: Process, _ suffix: String) -> String {
        guard let base = outputs[ObjectIdentifier(p)] else { return "" }
        defer { if suffix == ".err" { try? FileManager.default.removeItem(atPath: base + ".out"); try? FileManager.default.removeItem(atPath: base + ".err") } }
        return (try? String(contentsOfFile: base + suffix, encoding: .utf8)) ?? ""
    }

    static func json(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }
}
