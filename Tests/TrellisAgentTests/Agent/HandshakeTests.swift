import Foundation
import Testing
@testable import TrellisAgent
import TrellisCore
import TrellisJSON
import TrellisNet
import TrellisPolicy
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }


/// A handshake server on a real unix socket in a temporary folder, in front of a controller
/// with a recording programmer and fake devices.
struct HandshakeRig {
    let dir: TempDir
    let programmer: RecordingProgrammer
    let links: FakeLinks
    let board = StatusBoard()
    let controller: DatapathController
    let server: HandshakeServer
    let log = TestLog()
    var socketPath: String { server.path }

    init(programmer: RecordingProgrammer = RecordingProgrammer(), links: FakeLinks = FakeLinks([veth7, veth8])) throws {
        dir = TempDir("handshake")
        self.programmer = programmer
        self.links = links
        controller = DatapathController(programmer: programmer, links: links, nodeName: "a", vni: 1, mode: .ebpf,
                                        board: board, logger: log.logger, podWaitTimeout: .milliseconds(500))
        let controller = self.controller
        server = try HandshakeServer(path: dir.path + "/run/agent.sock", logger: log.logger) { request in
            await controller.handle(request)
        }
        server.start()
    }

    /// Node a (this one) with the pods the requests name: web-1, web-2, p100 ... p115.
    static let snapshot = ClusterSnapshot(
        nodes: [ClusterNode(name: "a", podCIDRs: [net("10.244.1.0/24"), net("fd00:244:1::/64")], internalIPs: [ip("192.168.50.1")])],
        namespaces: [ClusterNamespace(name: "default")],
        pods: (["web-1", "web-2"] + (100..<116).map { "p\($0)" }).map {
            ClusterPod(namespace: "default", name: $0, labels: ["app": "web"], nodeName: "a", phase: "Pending")
        })

    /// The policy endpoint id the controller gave a pod.
    func policyID(_ pod: String) async -> UInt32? {
        await controller.policy.engine.endpointID(of: PodKey("default", pod))
    }

    func stop() async {
        await server.stop()
        dir.remove()
    }

    func send(_ text: String, raw: Bool = false) async throws -> JSONValue {
        let answer = try await unixRequestAsync(socketPath, text, raw: raw)
        return try JSONValue.parse(Array(answer.utf8))
    }

    static let veth7 = LinkFacts(index: 7, name: "trl0000000007", mtu: 1450, mac: mac("02:00:00:00:00:07"))
    static let veth8 = LinkFacts(index: 8, name: "trl0000000008", mtu: 1450, mac: mac("02:00:00:00:00:08"))

    static func add(_ id: String = "c7", index: Int = 7, name: String = "trl0000000007",
                    ips: [String] = ["10.244.1.5/32", "fd00:244:1::5/128"], pod: String = "web-1") -> String {
        JSONValue.object([
            ("op", .string("add")), ("containerID", .string(id)), ("ifname", .string("eth0")),
            ("netns", .string("/var/run/netns/x")), ("podNamespace", .string("default")), ("podName", .string(pod)),
            ("hostIfname", .string(name)), ("hostIfindex", .int(index)),
            ("hostMAC", .string("02:00:00:00:00:0\(index % 10)")), ("podMAC", .string("0a:58:0a:f4:01:05")),
            ("ips", .strings(ips)),
        ]).serialized
    }

    static func del(_ id: String = "c7", hostIfname: String? = "trl0000000007") -> String {
        JSONValue.object([("op", .string("del")), ("containerID", .string(id)), ("ifname", .string("eth0")),
                          ("hostIfname", hostIfname.map(JSONValue.string))]).serialized
    }
}

/// A rig whose controller has seen `HandshakeRig.snapshot` (unless `synced` is false), with
/// the calls of that first reconcile cleared.
func withRig(programmer: RecordingProgrammer = RecordingProgrammer(), links: FakeLinks = FakeLinks([HandshakeRig.veth7, HandshakeRig.veth8]),
             synced: Bool = true, _ body: (HandshakeRig) async throws -> Void) async throws {
    let rig = try HandshakeRig(programmer: programmer, links: links)
    if synced {
        _ = await rig.controller.reconcile(HandshakeRig.snapshot)
        programmer.clearCalls()
    }
    do {
        try await body(rig)
    } catch {
        await rig.stop()
        throw error
    }
    await rig.stop()
}

extension AgentSuite {
    @Suite("Agent handshake")
    struct HandshakeTests {
        typealias Call = RecordingProgrammer.Call
        static let ok = JSONValue.object([("ok", .bool(true))])

        @Test("add programs the pod's policy, then the endpoint, before answering; del removes it")
        func addThenDel() async throws {
            try await withRig { rig async throws in
                #expect(try await rig.send(HandshakeRig.add()) == Self.ok)
                let id = try #require(await rig.policyID("web-1"))
                #expect(id != 0)
                #expect(rig.programmer.calls.filter { !$0.isPolicyWrite } == [
                    .attachEndpoint(7), .upsertEndpoint(ip("10.244.1.5"), 7, id), .upsertEndpoint(ip("fd00:244:1::5"), 7, id),
                ])
                // The pod's addresses get its identity in the ipcache before the endpoint exists.
                let attach = try #require(rig.programmer.calls.firstIndex(of: .attachEndpoint(7)))
                let ipcache = rig.programmer.calls.prefix(attach).compactMap { c -> IPNetwork? in
                    if case .upsertIPCache(let p, _) = c { p } else { nil }
                }
                #expect(Set(ipcache) == [net("10.244.1.5/32"), net("fd00:244:1::5/128")])
                #expect(rig.programmer.calls.prefix(attach).contains(.bumpPolicyGeneration))
                // Its (open) policy entries are programmed.
                #expect(rig.programmer.state.policy.contains(PolicyMapKey(endpoint: id, direction: .ingress, peer: 0, ports: .anyProtocol)))
                let entry = rig.programmer.state.endpoints[ip("10.244.1.5")]
                let identity = try #require(rig.programmer.state.ipcache[net("10.244.1.5/32")]?.identity)
                #expect(entry == EndpointEntry(hostIfindex: 7, podMAC: mac("0a:58:0a:f4:01:05"), hostMAC: mac("02:00:00:00:00:07"),
                                               identity: identity, policyID: id))
                #expect(rig.log.contains(.info, "endpoint added"))
                #expect(!rig.log.entries(with: "pod.name", "web-1").isEmpty)
                #expect(rig.board.report.metrics[AgentMetrics.endpoints] == 1)

                // A repeated ADD: same entries again, nothing removed.
                rig.programmer.clearCalls()
                #expect(try await rig.send(HandshakeRig.add()) == Self.ok)
                #expect(!rig.programmer.calls.contains { if case .deleteEndpoint = $0 { true } else { false } })

                // The plugin deletes the veth before it tells the agent.
                rig.programmer.clearCalls()
                rig.links.remove(index: 7)
                #expect(try await rig.send(HandshakeRig.del()) == Self.ok)
                #expect(rig.programmer.calls.filter { !$0.isPolicyWrite } == [.deleteEndpoint(ip("10.244.1.5")), .deleteEndpoint(ip("fd00:244:1::5"))])
                #expect(rig.programmer.state.endpoints.isEmpty)
                #expect(await rig.controller.registry.count == 0)
                // The pod object has no addresses of its own: its ipcache entries go with the endpoint.
                #expect(rig.programmer.state.ipcache[net("10.244.1.5/32")] == nil)

                // DEL again, or of something never seen: fine.
                #expect(try await rig.send(HandshakeRig.del()) == Self.ok)
                #expect(try await rig.send(HandshakeRig.del("never", hostIfname: nil)) == Self.ok)
            }
        }

        @Test("add waits for its Pod object, and fails with a retryable error when it never comes")
        func addWaitsForPod() async throws {
            try await withRig { rig async throws in
                // Not in the snapshot: the ADD waits, then fails.
                let late = try await rig.send(HandshakeRig.add(pod: "late"))
                #expect(late["ok"] == .bool(false))
                #expect("\(late["error"] ?? .null)".contains("has not seen its Pod object"), "\(late)")
                #expect(!rig.programmer.calls.contains(.attachEndpoint(7)))

                // It arrives while the ADD waits.
                async let answer = rig.send(HandshakeRig.add(pod: "late"))
                try await Task.sleep(for: .milliseconds(100))
                var snap = HandshakeRig.snapshot
                snap.pods[ClusterPod.Key(namespace: "default", name: "late")] = ClusterPod(namespace: "default", name: "late", nodeName: "a")
                _ = await rig.controller.reconcile(snap)
                #expect(try await answer == Self.ok)
                #expect(await rig.policyID("late") != nil)

                // A request that names no pod cannot get policy: refused.
                let anonymous = JSONValue.object([
                    ("op", .string("add")), ("containerID", .string("c8")), ("ifname", .string("eth0")),
                    ("hostIfname", .string("trl0000000008")), ("hostIfindex", .int(8)), ("hostMAC", .string("02:00:00:00:00:08")),
                    ("podMAC", .string("0a:58:0a:f4:01:06")), ("ips", .strings(["10.244.1.6/32"])),
                ]).serialized
                let refused = try await rig.send(anonymous)
                #expect("\(refused["error"] ?? .null)".contains("names no pod"), "\(refused)")
            }
        }

        @Test("del while the veth still exists also detaches")
        func delDetaches() async throws {
            try await withRig { rig async throws in
                #expect(try await rig.send(HandshakeRig.add()) == Self.ok)
                rig.programmer.clearCalls()
                #expect(try await rig.send(HandshakeRig.del()) == Self.ok)
                #expect(rig.programmer.calls.filter { !$0.isPolicyWrite }.last == .detachEndpoint(7))
                #expect(rig.programmer.state.attached.isEmpty)
            }
        }

        @Test("status answers the ready flag")
        func status() async throws {
            try await withRig { rig async throws in
                #expect(try await rig.send(#"{"op":"status"}"#) == .object([("ok", .bool(true)), ("ready", .bool(false))]))
                rig.board.markReady()
                #expect(try await rig.send(#"{"op":"status"}"#) == .object([("ok", .bool(true)), ("ready", .bool(true))]))
            }
        }

        @Test("malformed requests get ok:false naming the problem", arguments: [
            ("not json", "request is not JSON"),
            (#"{"containerID":"x"}"#, "op: missing"),
            (#"{"op":"frobnicate"}"#, "op: \"frobnicate\" is not an operation"),
            (#"["op","add"]"#, "expected a mapping"),
            (#"{"op":"del","ifname":"eth0"}"#, "containerID: missing"),
            (#"{"op":"add","containerID":"c","ifname":"eth0","hostIfname":"trl1","hostIfindex":7,"hostMAC":"02:00:00:00:00:07","podMAC":"0a:58:0a:f4:01:05","ips":["10.244.1.5/32","banana"]}"#,
             "ips[1]: \"banana\" is not an address"),
            (#"{"op":"add","containerID":"c","ifname":"eth0","hostIfname":"trl1","hostIfindex":-3,"hostMAC":"02:00:00:00:00:07","podMAC":"0a:58:0a:f4:01:05","ips":["10.244.1.5/32"]}"#,
             "hostIfindex: -3 is not an interface index"),
            (#"{"op":"add","containerID":"c","ifname":"eth0","hostIfname":"trl1","hostIfindex":7,"hostMAC":"02:00:00:00:00:07","podMAC":"nope","ips":["10.244.1.5/32"]}"#,
             "podMAC: \"nope\" is not a MAC address"),
            (#"{"op":"add","containerID":"c","ifname":"eth0","hostIfname":"trl1","hostIfindex":7,"hostMAC":"02:00:00:00:00:07","podMAC":"0a:58:0a:f4:01:05","ips":[]}"#,
             "ips: missing or empty"),
            ("   ", "empty request"),
        ])
        func malformed(_ request: String, _ fragment: String) async throws {
            try await withRig { rig async throws in
                let answer = try await rig.send(request)
                #expect(answer["ok"] == .bool(false))
                guard case .string(let why)? = answer["error"] else {
                    Issue.record("no error text in \(answer)")
                    return
                }
                #expect(why.contains(fragment), "\(why)")
                #expect(rig.programmer.calls.isEmpty)
            }
        }

        @Test("a request without a trailing newline is still read once the client half-closes")
        func noNewline() async throws {
            try await withRig { rig async throws in
                let answer = try await rig.send(#"{"op":"status"}"#, raw: true)
                #expect(answer["ok"] == .bool(true))
            }
        }

        @Test("a programmer failure answers ok:false and leaves nothing programmed for the endpoint")
        func rollback() async throws {
            let p = RecordingProgrammer()
            p.failWhen { call in
                if case .upsertEndpoint(let a, _, _) = call, a == ip("fd00:244:1::5") { return InjectedFailure(description: "endpoint map full") }
                return nil
            }
            try await withRig(programmer: p) { rig async throws in
                let answer = try await rig.send(HandshakeRig.add())
                #expect(answer["ok"] == .bool(false))
                guard case .string(let why)? = answer["error"] else { Issue.record("\(answer)"); return }
                #expect(why.contains("pod default/web-1 (trl0000000007)") && why.contains("endpoint map full"), "\(why)")
                #expect(rig.programmer.state.endpoints.isEmpty)
                #expect(rig.programmer.state.attached.isEmpty)
                #expect(rig.programmer.calls.filter { !$0.isPolicyWrite }.suffix(2) == [.deleteEndpoint(ip("10.244.1.5")), .detachEndpoint(7)])
                #expect(await rig.controller.registry.count == 0)
                #expect(rig.log.contains(.error, "rolled back"))

                // An attach failure: nothing written, nothing left attached.
                p.failWhen { if case .attachEndpoint = $0 { InjectedFailure(description: "tc: no such device") } else { nil } }
                let a2 = try await rig.send(HandshakeRig.add())
                #expect(a2["ok"] == .bool(false))
                #expect(rig.programmer.state.endpoints.isEmpty && rig.programmer.state.attached.isEmpty)
            }
        }

        @Test("add for a veth that does not exist, or whose ifindex names another device")
        func wrongDevice() async throws {
            try await withRig { rig async throws in
                let missing = try await rig.send(HandshakeRig.add(index: 42, name: "trl0000000042"))
                #expect(missing["error"].map { "\($0)" }?.contains("does not exist") == true, "\(missing)")
                let other = try await rig.send(HandshakeRig.add(index: 8, name: "trl0000000007"))
                #expect(other["error"].map { "\($0)" }?.contains("ifindex 8 is trl0000000008, not trl0000000007") == true, "\(other)")
                #expect(rig.programmer.calls.isEmpty)
            }
        }

        @Test("an IP moving to a new endpoint, a container re-added on a new veth")
        func ipMoves() async throws {
            try await withRig { rig async throws in
                #expect(try await rig.send(HandshakeRig.add("c7", ips: ["10.244.1.5/32"])) == Self.ok)
                // Same container, new veth (8): the old veth's entries go, and it is detached.
                rig.programmer.clearCalls()
                #expect(try await rig.send(HandshakeRig.add("c7", index: 8, name: "trl0000000008", ips: ["10.244.1.6/32"])) == Self.ok)
                let id = try #require(await rig.policyID("web-1"))
                #expect(rig.programmer.calls.filter { !$0.isPolicyWrite } == [
                    .deleteEndpoint(ip("10.244.1.5")), .detachEndpoint(7), .attachEndpoint(8), .upsertEndpoint(ip("10.244.1.6"), 8, id),
                ])
                // Another container takes 10.244.1.6 (a stale DEL was lost): the entry is overwritten
                // and the old record forgets it, so its later DEL does not delete the new owner's entry.
                #expect(try await rig.send(HandshakeRig.add("c9", index: 7, name: "trl0000000007", ips: ["10.244.1.6/32"], pod: "web-2")) == Self.ok)
                rig.programmer.clearCalls()
                #expect(try await rig.send(HandshakeRig.del("c7", hostIfname: "trl0000000008")) == Self.ok)
                #expect(rig.programmer.calls.filter { !$0.isPolicyWrite } == [.detachEndpoint(8)])
                #expect(rig.programmer.state.endpoints[ip("10.244.1.6")]?.hostIfindex == 7)
            }
        }

        @Test("sixteen concurrent ADDs all succeed")
        func concurrentAdds() async throws {
            let links = FakeLinks((100..<116).map { LinkFacts(index: Int32($0), name: "trl\($0)", mtu: 1450) })
            try await withRig(links: links) { rig async throws in
                try await withThrowingTaskGroup(of: JSONValue.self) { group in
                    for i in 100..<116 {
                        group.addTask { try await rig.send(HandshakeRig.add("c\(i)", index: i, name: "trl\(i)", ips: ["10.244.1.\(i)/32"], pod: "p\(i)")) }
                    }
                    for try await answer in group { #expect(answer == Self.ok) }
                }
                #expect(rig.programmer.state.endpoints.count == 16)
                #expect(rig.programmer.state.attached.count == 16)
                #expect(Set(rig.programmer.state.endpoints.values.map(\.policyID)).count == 16, "one policy id per pod")
            }
        }

        @Test("endpoints whose host veth vanished are swept; adoption keeps live entries untouched")
        func sweepAndAdoption() async throws {
            let pre = RecordingProgrammer(state: .init(endpoints: [
                ip("10.244.1.5"): EndpointEntry(hostIfindex: 7, podMAC: mac("0a:58:0a:f4:01:05"), hostMAC: mac("02:00:00:00:00:07"), identity: 0, policyID: 0),
                ip("fd00:244:1::5"): EndpointEntry(hostIfindex: 7, podMAC: mac("0a:58:0a:f4:01:05"), hostMAC: mac("02:00:00:00:00:07"), identity: 0, policyID: 0),
                ip("10.244.1.9"): EndpointEntry(hostIfindex: 9, podMAC: mac("0a:58:0a:f4:01:09"), hostMAC: mac("02:00:00:00:00:09"), identity: 0, policyID: 0),
            ]))
            try await withRig(programmer: pre, synced: false) { rig async throws in
                let failures = await rig.controller.adopt()
                #expect(failures.isEmpty)
                // 7 is alive: programs re-attached, entries untouched. 9 is gone: its entry removed,
                // no detach (its device took the hooks with it).
                #expect(pre.calls == [.attachEndpoint(7), .deleteEndpoint(ip("10.244.1.9"))])
                #expect(await rig.controller.registry.count == 1)
                #expect(await rig.controller.registry.endpoints[7]?.hostIfname == "trl0000000007")
                _ = await rig.controller.reconcile(HandshakeRig.snapshot)

                // DEL by host veth name finds an adopted endpoint (no container ID known).
                pre.clearCalls()
                rig.links.remove(index: 7)
                #expect(try await rig.send(HandshakeRig.del("unknown-to-agent")) == Self.ok)
                #expect(pre.calls.filter { !$0.isPolicyWrite } == [.deleteEndpoint(ip("10.244.1.5")), .deleteEndpoint(ip("fd00:244:1::5"))])

                // A sweep catches an endpoint whose veth disappears without any DEL.
                rig.links.add(HandshakeRig.veth7)
                #expect(try await rig.send(HandshakeRig.add()) == Self.ok)
                pre.clearCalls()
                await rig.controller.sweep()
                #expect(pre.calls.isEmpty)
                rig.links.remove(index: 7)
                await rig.controller.sweep()
                #expect(pre.calls.filter { !$0.isPolicyWrite } == [.deleteEndpoint(ip("10.244.1.5")), .deleteEndpoint(ip("fd00:244:1::5"))])
                #expect(rig.log.contains(.info, "host veth is gone"))
            }
        }

        @Test("the socket: 0600 in a 0700 folder; a stale file replaced; a live one refused; removed on stop")
        func socketFile() async throws {
            let dir = TempDir("socket")
            defer { dir.remove() }
            let path = dir.path + "/run/trellis/agent.sock"
            let log = TestLog()
            // A stale socket file, as a killed agent leaves it.
            try Posix.makeDirectories(dir.path + "/run/trellis", mode: 0o700)
            let stale = try HandshakeServer.listen(at: path)
            close(stale)
            var st = stat()
            #expect(lstat(path, &st) == 0)

            let server = try HandshakeServer(path: path, logger: log.logger) { _ in .ok }
            server.start()
            #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
            #expect(stat(dir.path + "/run/trellis", &st) == 0 && st.st_mode & 0o777 == 0o700)
            #expect(try await unixRequestAsync(path, #"{"op":"status"}"#) == #"{"ok":true}"#)

            // A second agent on the same socket is refused.
            #expect(throws: SystemError.self) { try HandshakeServer(path: path, logger: log.logger) { _ in .ok } }
            await server.stop()
            #expect(lstat(path, &st) != 0)

            // A server stopped without ever being started does not hang, and cleans up too.
            let unstarted = try HandshakeServer(path: path, logger: log.logger) { _ in .ok }
            await unstarted.stop()
            #expect(lstat(path, &st) != 0)

            // Something that is not a socket is never removed.
            dir.write("run/trellis/agent.sock", "precious")
            #expect(throws: SystemError.self) { try HandshakeServer(path: path, logger: log.logger) { _ in .ok } }
            #expect(dir.read("run/trellis/agent.sock") == "precious")
        }
    }
}
