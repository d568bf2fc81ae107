import Foundation
import Testing
@testable import TrellisAgent
import TrellisJSON
import TrellisNetlink
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

enum AgentBinary {
    /// `trellis-agent` next to the test bundle (all products share the build folder).
    static let path: String = {
        if let p = ProcessInfo.processInfo.environment["TRELLIS_AGENT_BIN"], !p.isEmpty { return p }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("trellis-agent").path
    }()
    static var available: Bool { FileManager.default.isExecutableFile(atPath: path) }
}

extension AgentSuite {
    @Suite("Agent binary", .needsRoot,
           .enabled(if: AgentBinary.available, "needs the trellis-agent product beside the test bundle (swift build --build-tests)"),
           .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft"), "needs nft (Debian package nftables)"))
    struct AgentBinaryTests {
        @Test("trellis-agent in a throw-away namespace: conflist, handshake, SIGTERM exits 0 and keeps the nft table")
        func lifecycle() async throws {
            let dir = TempDir("agent-bin")
            let ns = "trlt-\(getpid())-agent-" + String(UInt32.random(in: 0..<UInt32.max), radix: 16)
            try NetworkNamespace.create(named: ns)
            var process: Process?
            defer {
                // Only the process this test started, by its PID.
                if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
                try? NetworkNamespace.delete(named: ns)
                dir.remove()
            }
            mkdir(dir.file("m"), 0o755)
            dir.write("agent.yaml", """
                nodeName: n1
                manifestsDir: \(dir.file("m"))
                socketPath: \(dir.file("run/agent.sock"))
                cniConfDir: \(dir.file("net.d"))
                ipamDataDir: \(dir.file("ipam"))
                bpffsDir: \(dir.file("bpf"))
                underlayDevice: lo
                healthAddress: 127.0.0.1:9876
                """)
            dir.write("m/nodes.yaml", """
                kind: Node
                metadata: {name: n1}
                spec: {podCIDR: 10.77.1.0/24}
                status: {addresses: [{type: InternalIP, address: 192.168.77.1}]}
                ---
                kind: Node
                metadata: {name: n2}
                spec: {podCIDR: 10.77.2.0/24}
                status: {addresses: [{type: InternalIP, address: 192.168.77.2}]}
                """)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: HostTools.ip)
            p.arguments = ["netns", "exec", ns, AgentBinary.path, "--config", dir.file("agent.yaml"), "--log-level", "debug"]
            // The control plane alone: this test is about the process, not the BPF datapath.
            var env = ProcessInfo.processInfo.environment
            env["TRELLIS_AGENT_DATAPATH"] = "in-memory"
            p.environment = env
            _ = FileManager.default.createFile(atPath: dir.file("agent.log"), contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: dir.file("agent.log"))
            p.standardError = FileHandle(forWritingAtPath: dir.file("agent.log"))
            try p.run()
            process = p

            let conflist = dir.file("net.d/10-trellis.conflist")
            let ready = await eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: conflist) || !p.isRunning }
            let log = { dir.read("agent.log") ?? "" }
            try #require(ready && p.isRunning, "agent not ready: \(log())")
            let conf = try ConflistWriter.validate(try JSONValue.parse(Array(FileManager.default.contents(atPath: conflist)!)))[0]
            #expect(conf.ranges.map(\.subnet.description) == ["10.77.1.0/24"])
            #expect(conf.mtu == 65486)  // lo's 65536 - 50
            #expect(try await unixRequestAsync(dir.file("run/agent.sock"), #"{"op":"status"}"#) == #"{"ok":true,"ready":true}"#)
            let healthz = try await ExternalCommand.run([HostTools.ip, "netns", "exec", ns, "bash", "-c",
                                                    "exec 3<>/dev/tcp/127.0.0.1/9876; printf 'GET /readyz HTTP/1.1\\r\\n\\r\\n' >&3; cat <&3"])
            #expect(healthz.stdoutText.hasPrefix("HTTP/1.1 200 OK"), "\(healthz.stdoutText) \(healthz.stderrText)")

            kill(p.processIdentifier, SIGTERM)
            let exited = await eventually(timeout: .seconds(15)) { !p.isRunning }
            try #require(exited, "agent did not stop on SIGTERM: \(log())")
            #expect(p.terminationStatus == 0, "\(log())")
            #expect(!FileManager.default.fileExists(atPath: dir.file("run/agent.sock")))
            #expect(FileManager.default.fileExists(atPath: conflist))
            let table = try await ExternalCommand.run([HostTools.ip, "netns", "exec", ns, "nft", "list", "table", "inet", "trellis"])
            #expect(table.stdoutText.contains("ip saddr 10.77.1.0/24 ip daddr != @cluster_v4 masquerade"), "\(table.stdoutText)")
            #expect(log().contains("ready"))
            #expect(log().contains("the datapath stays programmed"))
        }
    }
}
