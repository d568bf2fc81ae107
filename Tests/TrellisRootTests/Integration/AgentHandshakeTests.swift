import Foundation
import Glibc
import Testing
import TrellisCore
import TrellisPlugin
import TrellisTestSupport

/// A stand-in for trellis-agent's handshake socket: answers every request with `answer`
/// and records what it received. Runs on its own thread; `stop()` closes it.
final class FakeAgent: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var _requests: [[String: Any]] = []
    private let answer: @Sendable ([String: Any]) -> [String: Any]
    private var thread: Thread?

    var requests: [[String: Any]] { lock.withLock { _requests } }

    init(path: String, answer: @escaping @Sendable ([String: Any]) -> [String: Any]) throws {
        self.path = path
        self.answer = answer
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard let addr = UnixSocketAddress(path: path) else { throw POSIXError(.ENAMETOOLONG) }
        guard addr.withSockaddr({ bind(fd, $0, $1) }) == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        let t = Thread { [self] in serve() }
        thread = t
        t.start()
    }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            guard c >= 0 else { return }   // closed by stop()
            var bytes: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while !bytes.contains(0x0A) {
                let n = read(c, &buf, buf.count)
                guard n > 0 else { break }
                bytes += buf[0..<n]
            }
            let request = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
            lock.withLock { _requests.append(request) }
            var reply = (try? JSONSerialization.data(withJSONObject: answer(request))) ?? Data()
            reply.append(0x0A)
            _ = reply.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
            close(c)
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}

extension Integration {
    /// The plugin's side of the agent handshake (docs/agent.md), against a fake agent.
    @Suite("Handshake with trellis-agent", .needsRoot)
    struct AgentHandshake {
        @Test("ADD waits for the agent and tells it who the pod is")
        func addRegistersTheEndpoint() throws {
            try ITLab.with { lab in
                let agent = try FakeAgent(path: lab.folder + "/agent.sock") { _ in ["ok": true, "ready": true] }
                defer { agent.stop() }
                let pod = try lab.makePod("a")
                let conf = lab.conf(.ebpf, ranges: IT.dualStack(31), extra: ["agentSocket": agent.path])
                var env = lab.cniEnv("ADD", containerID: "hs1", netns: lab.netnsPath(pod), ifName: "eth0")
                env["CNI_ARGS"] = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1"
                let run = lab.runPlugin(env, conf: conf)
                try #require(run.ok, "\(run)")
                let request = try #require(agent.requests.first)
                #expect(request["op"] as? String == "add")
                #expect(request["podNamespace"] as? String == "shop" && request["podName"] as? String == "web-1")
                #expect(request["hostIfname"] as? String == HostVethName.of(containerID: "hs1", ifName: "eth0"))
                #expect((request["hostIfindex"] as? Int ?? 0) > 0)
                let ips = request["ips"] as? [String] ?? []
                #expect(ips.count == 2 && ips.allSatisfy { $0.hasSuffix("/32") || $0.hasSuffix("/128") }, "\(ips)")

                // DEL tells the agent too; STATUS asks it.
                #expect(lab.del("hs1", pod: pod, conf: conf).ok)
                #expect(agent.requests.last?["op"] as? String == "del")
                let status = lab.runPlugin(lab.cniEnv("STATUS"), conf: conf)
                #expect(status.ok, "\(status)")
            }
        }

        @Test("agent unreachable: ADD fails with 11 and leaves nothing, DEL still works, STATUS says 50")
        func agentUnreachable() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("a")
                let conf = lab.conf(.bridge, ranges: IT.dualStack(32), extra: ["agentSocket": lab.folder + "/no-agent.sock"])
                let run = lab.add("hs2", pod: pod, conf: conf)
                #expect(run.errorCode == 11, "\(run)")
                #expect(run.message.contains("no-agent.sock"), "\(run.message)")
                #expect(lab.hostVeths().isEmpty, "rolled back: no host veth")
                #expect(!lab.linkNames(pod).contains("eth0"), "rolled back: no eth0 in the pod")
                #expect(lab.ipamRecords().isEmpty, "rolled back: no allocation")
                #expect(lab.del("hs2", pod: pod, conf: conf).ok)
                let status = lab.runPlugin(lab.cniEnv("STATUS"), conf: conf)
                #expect(status.errorCode == 50, "\(status)")
            }
        }

        @Test("agent refuses: ADD fails naming the agent's reason and rolls back; not ready: STATUS 50")
        func agentRefuses() throws {
            try ITLab.with { lab in
                let agent = try FakeAgent(path: lab.folder + "/agent.sock") { _ in
                    ["ok": false, "error": "cannot attach to the host veth"]
                }
                defer { agent.stop() }
                let pod = try lab.makePod("a")
                let conf = lab.conf(.ebpf, ranges: IT.dualStack(33), extra: ["agentSocket": agent.path])
                let run = lab.add("hs3", pod: pod, conf: conf)
                #expect(run.errorCode == 100, "\(run)")
                #expect(run.message.contains("cannot attach to the host veth"), "\(run.message)")
                #expect(lab.hostVeths().isEmpty)
                #expect(lab.ipamRecords().isEmpty)
                let status = lab.runPlugin(lab.cniEnv("STATUS"), conf: conf)
                #expect(status.errorCode == 50, "\(status)")
            }
        }
    }
}
