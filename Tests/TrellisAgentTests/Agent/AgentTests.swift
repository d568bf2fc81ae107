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


final class RecordingMasquerade: MasqueradeApplier, @unchecked Sendable {
    private let scripts = Locked<[String]>([])
    var applied: [String] { scripts.current }
    func apply(script: String) async throws { scripts.withLock { $0.append(script) } }
}

/// One agent running in-process against a manifests folder, fake devices, a recording
/// programmer and a recording masquerade applier.
struct AgentRig {
    let dir: TempDir
    let programmer: RecordingProgrammer
    let links: FakeLinks
    let masquerade = RecordingMasquerade()
    let log = TestLog()
    var applier: (any MasqueradeApplier)?
    let agent: Agent
    let task: Task<Void, any Error>

    var manifests: TempDirView { TempDirView(path: dir.path + "/manifests") }
    var conflistPath: String { agent.config.conflistPath }

    init(programmer: RecordingProgrammer = RecordingProgrammer(),
         links: FakeLinks = FakeLinks([LinkFacts(index: 2, name: "ul0", mtu: 1500)]),
         applier: (any MasqueradeApplier)? = nil,
         configure: (inout AgentConfig) -> Void = { _ in }) throws {
        self.applier = applier
        dir = TempDir("agent")
        mkdir(dir.path + "/manifests", 0o755)
        self.programmer = programmer
        self.links = links
        programmer.devices.withLock { $0 = links }
        var config = try AgentConfig.parse(yaml: """
            nodeName: a
            manifestsDir: \(dir.path)/manifests
            socketPath: \(dir.path)/run/agent.sock
            cniConfDir: \(dir.path)/net.d
            ipamDataDir: \(dir.path)/ipam
            bpffsDir: \(dir.path)/bpf
            underlayDevice: ul0
            healthAddress: 127.0.0.1:0
            logLevel: trace
            """)
        configure(&config)
        let deps = AgentDependencies(
            makeProgrammer: { [programmer] _, _ in programmer },
            source: ManifestsSource(directory: config.manifestsDir, interval: .milliseconds(20), logger: log.logger),
            links: links, masquerade: applier ?? masquerade,
            sweepInterval: .milliseconds(100), retryInterval: .milliseconds(50), maxRetryInterval: .milliseconds(200))
        let agent = Agent(config: config, logger: log.logger, dependencies: deps)
        self.agent = agent
        task = Task { try await agent.run() }
    }

    func stop() async throws {
        task.cancel()
        try await task.value
    }

    func cleanup() async {
        task.cancel()
        _ = try? await task.value
        dir.remove()
    }

    /// Runs `body` with a running agent, then stops it and removes its folder on every path.
    static func with(programmer: RecordingProgrammer = RecordingProgrammer(),
                     links: FakeLinks = FakeLinks([LinkFacts(index: 2, name: "ul0", mtu: 1500)]),
                     applier: (any MasqueradeApplier)? = nil,
                     configure: (inout AgentConfig) -> Void = { _ in },
                     _ body: (AgentRig) async throws -> Void) async throws {
        let rig = try AgentRig(programmer: programmer, links: links, applier: applier, configure: configure)
        do {
            try await body(rig)
        } catch {
            await rig.cleanup()
            throw error
        }
        await rig.cleanup()
    }

    var healthPort: UInt16? { agent.healthPort }

    static func node(_ name: String, _ cidrs: [String], _ ip: String) -> String {
        """
        apiVersion: v1
        kind: Node
        metadata: {name: \(name)}
        spec:
          podCIDRs: [\(cidrs.map { "\"\($0)\"" }.joined(separator: ", "))]
        status:
          addresses: [{type: InternalIP, address: "\(ip)"}]

        """
    }
}

extension AgentSuite {
    @Suite("Agent end to end (in-process, no root)")
    struct AgentTests {
        typealias Call = RecordingProgrammer.Call

        @Test("waits for its Node, programs it, serves the handshake, writes the conflist, becomes ready; SIGTERM keeps the datapath")
        func lifecycle() async throws {
            try await AgentRig.with { rig in

                // No manifests yet: not ready, no conflist, no socket.
                #expect(await eventually { rig.healthPort != nil })
                let port = try #require(rig.healthPort)
                #expect(await eventually { rig.agent.board.report.reason.contains("Node a is not in the cluster state") })
                let notReady = try await httpGet(port: port, "/readyz")
                #expect(notReady.status == 503 && notReady.body.contains("Node a"), "\(notReady.body)")
                #expect(try await httpGet(port: port, "/healthz").status == 200)
                #expect(!FileManager.default.fileExists(atPath: rig.conflistPath))

                rig.manifests.write("nodes.yaml", AgentRig.node("a", ["10.244.1.0/24", "fd00:244:1::/64"], "192.168.50.1")
                                    + "---\n" + AgentRig.node("b", ["10.244.2.0/24"], "192.168.50.2"))
                rig.manifests.write("pods.yaml", """
                    kind: Pod
                    metadata: {name: web-1, namespace: default, labels: {app: web}}
                    spec: {nodeName: a}
                    status: {phase: Pending}
                    """)
                #expect(await eventually { rig.agent.board.isReady })
                #expect(try await httpGet(port: port, "/readyz").status == 200)

                let calls = rig.programmer.calls
                #expect(Array(calls.prefix(2)) == [.setNodeConfig(ip("192.168.50.1"), 2, 1, .ebpf, [ip("10.244.1.1"), ip("fd00:244:1::1")]), .attachUnderlay(2)])
                #expect(calls.contains(.upsertPeer(ip("192.168.50.2"))))
                #expect(calls.contains(.upsertTunnel(net("10.244.2.0/24"), ip("192.168.50.2"))))
                // The overlay device holds the pods' gateways; b's CIDR is routed into it.
                #expect(calls.contains(.ensureOverlayDevice("trellis_ovl", 1450, [ip("10.244.1.1"), ip("fd00:244:1::1")])))
                #expect(calls.contains(.attachOverlay(RecordingProgrammer.overlayDevice.ifindex)))
                #expect(rig.programmer.state.overlayRoutes == [net("10.244.2.0/24"): ip("10.244.1.1")])
                #expect(!calls.contains { if case .upsertTunnel(let c, _) = $0 { c == net("10.244.1.0/24") } else { false } })

                // The conflist: pod MTU = underlay 1500 - 50, one range per pod CIDR.
                let conflist = try JSONValue.parse(Array(try #require(FileManager.default.contents(atPath: rig.conflistPath))))
                let conf = try ConflistWriter.validate(conflist)[0]
                #expect(conf.mtu == 1450 && conf.mode == .ebpf)
                #expect(conf.agentSocket == rig.agent.config.socketPath)
                #expect(conf.ranges.map(\.subnet) == [net("10.244.1.0/24"), net("fd00:244:1::/64")])
                #expect(conf.dataDir == rig.agent.config.ipamDataDir)

                // Masquerade: our CIDRs, cluster = all nodes' CIDRs.
                let script = try #require(rig.masquerade.applied.last)
                #expect(script.contains("ip saddr 10.244.1.0/24 ip daddr != @cluster_v4 masquerade"))
                #expect(script.contains("10.244.2.0/24"))
                #expect(script.contains("oifname \"trellis_ovl\" ip saddr != @cluster_v4 masquerade"))

                // The handshake works over the socket.
                let socket = rig.agent.config.socketPath
                rig.links.add(LinkFacts(index: 7, name: "trl0000000007", mtu: 1450))
                let added = try await unixRequestAsync(socket, HandshakeRig.add())
                #expect(added == #"{"ok":true}"#)
                #expect(try await unixRequestAsync(socket, #"{"op":"status"}"#) == #"{"ok":true,"ready":true}"#)

                // Node c appears: only c's entries are programmed; b's are not touched.
                rig.programmer.clearCalls()
                rig.manifests.write("c.yaml", AgentRig.node("c", ["10.244.3.0/24"], "192.168.50.3"))
                #expect(await eventually { rig.programmer.state.tunnels[net("10.244.3.0/24")] != nil })
                #expect(rig.programmer.calls.allSatisfy {
                    switch $0 {
                    case .upsertPeer(let i): i == ip("192.168.50.3")
                    case .upsertTunnel(let c, _): c == net("10.244.3.0/24")
                    case .upsertOverlayRoute(let c, let s): c == net("10.244.3.0/24") && s == ip("10.244.1.1")
                    case .ensureOverlayDevice: true   // every pass makes sure of it
                    default: $0.isPolicyWrite   // c's node address is a node's now
                    }
                }, "\(rig.programmer.calls)")
                #expect(await eventually { rig.masquerade.applied.last?.contains("10.244.3.0/24") == true })

                // Our pod CIDR changes: the conflist follows.
                rig.manifests.write("nodes.yaml", AgentRig.node("a", ["10.244.11.0/24"], "192.168.50.1")
                                    + "---\n" + AgentRig.node("b", ["10.244.2.0/24"], "192.168.50.2"))
                #expect(await eventually {
                    (FileManager.default.contents(atPath: rig.conflistPath).map { String(decoding: $0, as: UTF8.self) } ?? "")
                        .contains("10.244.11.0/24")
                })
                // ... and so do the pods' gateway addresses the datapath answers ICMP errors from.
                #expect(rig.programmer.calls.contains(.setNodeConfig(ip("192.168.50.1"), 2, 1, .ebpf, [ip("10.244.11.1")])))

                // Metrics.
                let metrics = try await httpGet(port: port, "/metrics").body
                #expect(metrics.contains("trellis_agent_ready 1"))
                #expect(metrics.contains("trellis_agent_endpoints 1"))
                #expect(metrics.contains("trellis_agent_tunnels 2"))
                #expect(metrics.contains("trellis_datapath_test_drops_total 7"))

                // Stop (what SIGTERM does): run() returns, the socket is gone, nothing was torn down.
                rig.programmer.clearCalls()
                try await rig.stop()
                #expect(rig.programmer.calls.isEmpty, "\(rig.programmer.calls)")
                #expect(!FileManager.default.fileExists(atPath: socket))
                #expect(FileManager.default.fileExists(atPath: rig.conflistPath))
                #expect(rig.programmer.state.endpoints.count == 2)  // one per IP of the endpoint
                #expect(rig.log.contains(.info, "the datapath stays programmed"))
            }
        }

        @Test("restart: adopts what is pinned and changes nothing that is right")
        func restartAdoption() async throws {
            let programmer = RecordingProgrammer(state: .init(
                tunnels: [net("10.244.2.0/24"): ip("192.168.50.2"), net("10.244.9.0/24"): ip("192.168.50.9")],
                peers: [ip("192.168.50.2"), ip("192.168.50.9")],
                ipcache: [net("10.244.2.7/32"): IPCacheEntry(identity: 0)],
                endpoints: [ip("10.244.1.5"): EndpointEntry(hostIfindex: 7, podMAC: mac("0a:58:0a:f4:01:05"),
                                                            hostMAC: mac("02:00:00:00:00:07"), identity: 0, policyID: 0)]))
            let links = FakeLinks([LinkFacts(index: 2, name: "ul0", mtu: 1500), LinkFacts(index: 7, name: "trl0000000007", mtu: 1450)])
            try await AgentRig.with(programmer: programmer, links: links) { rig in
                rig.manifests.write("all.yaml", AgentRig.node("a", ["10.244.1.0/24"], "192.168.50.1") + "---\n"
                                    + AgentRig.node("b", ["10.244.2.0/24"], "192.168.50.2") + """
                    ---
                    kind: Pod
                    metadata: {name: p, namespace: default}
                    spec: {nodeName: b}
                    status: {phase: Running, podIP: 10.244.2.7}
                    """)
                #expect(await eventually { rig.agent.board.isReady })
                // Only the stale node 9 goes; the endpoint's programs are re-attached; nothing else
                // but policy, which compiles the pods (the pinned ipcache entry was not right).
                #expect(programmer.state.ipcache[net("10.244.2.7/32")].map { ReservedIdentity.labelRange.contains($0.identity) } == true)
                #expect(programmer.calls.filter { !$0.isPolicyWrite } == [
                    .attachEndpoint(7),
                    .setNodeConfig(ip("192.168.50.1"), 2, 1, .ebpf, [ip("10.244.1.1")]), .attachUnderlay(2),
                    .ensureOverlayDevice("trellis_ovl", 1450, [ip("10.244.1.1")]), .attachOverlay(RecordingProgrammer.overlayDevice.ifindex),
                    .deleteTunnel(net("10.244.9.0/24")), .deletePeer(ip("192.168.50.9")),
                    .upsertOverlayRoute(net("10.244.2.0/24"), ip("10.244.1.1")),
                ], "\(programmer.calls)")
                try await rig.stop()
            }
        }

        @Test("the overlay device: made once, not on every snapshot; made again by the sweep when deleted")
        func overlayDeviceKept() async throws {
            try await AgentRig.with { rig in
                rig.manifests.write("n.yaml", AgentRig.node("a", ["10.244.1.0/24"], "192.168.50.1") + "---\n"
                                    + AgentRig.node("b", ["10.244.2.0/24"], "192.168.50.2"))
                #expect(await eventually { rig.agent.board.isReady })
                func ensures() -> Int { rig.programmer.calls.filter { if case .ensureOverlayDevice = $0 { true } else { false } }.count }
                #expect(ensures() == 1)
                rig.manifests.write("c.yaml", AgentRig.node("c", ["10.244.3.0/24"], "192.168.50.3"))
                #expect(await eventually { rig.programmer.state.overlayRoutes[net("10.244.3.0/24")] != nil })
                try await Task.sleep(for: .milliseconds(300))   // a few sweeps
                #expect(ensures() == 1, "\(rig.programmer.calls)")

                // Someone deletes it (its routes go with it): the next sweep makes it and routes it again.
                rig.links.remove(index: RecordingProgrammer.overlayDevice.ifindex)
                rig.programmer.clearCalls()
                #expect(await eventually { ensures() == 1 })
                #expect(rig.log.contains(.warning, "overlay device trellis_ovl is gone"))
                #expect(try rig.links.link(index: RecordingProgrammer.overlayDevice.ifindex) != nil)
                try await rig.stop()
            }
        }

        @Test("a missing underlay device keeps the agent unready and is retried")
        func underlayMissing() async throws {
            let links = FakeLinks()
            try await AgentRig.with(links: links) { rig in
                rig.manifests.write("a.yaml", AgentRig.node("a", ["10.244.1.0/24"], "192.168.50.1"))
                #expect(await eventually { rig.agent.board.report.reason.contains("underlay device ul0 does not exist") })
                #expect(!FileManager.default.fileExists(atPath: rig.conflistPath))
                #expect(!FileManager.default.fileExists(atPath: rig.agent.config.socketPath))
                links.add(LinkFacts(index: 3, name: "ul0", mtu: 9000))
                #expect(await eventually { rig.agent.board.isReady })
                #expect(rig.programmer.calls.contains(.attachUnderlay(3)))
                let conf = try ConflistWriter.validate(try JSONValue.parse(Array(FileManager.default.contents(atPath: rig.conflistPath)!)))[0]
                #expect(conf.mtu == 8950)
                try await rig.stop()
            }
        }

        @Test("a programming failure delays readiness and the conflist until a retry succeeds")
        func failureDelaysReadiness() async throws {
            let programmer = RecordingProgrammer()
            programmer.failWhen { if case .upsertTunnel = $0 { InjectedFailure(description: "tunnel map full") } else { nil } }
            try await AgentRig.with(programmer: programmer, configure: { $0.mtu = 1400 }) { rig in
                rig.manifests.write("n.yaml", AgentRig.node("a", ["10.244.1.0/24"], "192.168.50.1") + "---\n"
                                    + AgentRig.node("b", ["10.244.2.0/24"], "192.168.50.2"))
                #expect(await eventually { rig.agent.board.report.reason.contains("tunnel map full") })
                #expect(!rig.agent.board.isReady)
                #expect(!FileManager.default.fileExists(atPath: rig.conflistPath))
                #expect(rig.log.contains(.error, "tunnel 10.244.2.0/24 via 192.168.50.2 (node b): tunnel map full"))
                programmer.failWhen(nil)
                #expect(await eventually { rig.agent.board.isReady })
                let conf = try ConflistWriter.validate(try JSONValue.parse(Array(FileManager.default.contents(atPath: rig.conflistPath)!)))[0]
                #expect(conf.mtu == 1400)
                try await rig.stop()
            }
        }

        @Test("nft failing: holds readiness when masquerading, not when masquerade is off")
        func nftFailure() async throws {
            let nodes = AgentRig.node("a", ["10.244.1.0/24"], "192.168.50.1")
            try await AgentRig.with(applier: FailingMasquerade()) { rig in
                rig.manifests.write("n.yaml", nodes)
                #expect(await eventually { rig.agent.board.report.reason.contains("masquerade: nft: not found") })
                #expect(!rig.agent.board.isReady)
                try await rig.stop()
            }
            try await AgentRig.with(applier: FailingMasquerade(), configure: { $0.masquerade = false }) { rig in
                rig.manifests.write("n.yaml", nodes)
                #expect(await eventually { rig.agent.board.isReady })
                #expect(rig.log.contains(.warning, "masquerade is off; the node's own Service traffic"))
                try await rig.stop()
            }
        }

        @Test("a datapath that cannot be loaded fails the run")
        func loadFailure() async throws {
            let dir = TempDir("agent")
            defer { dir.remove() }
            var config = AgentConfig.defaults
            config.healthAddress = AgentConfig.ListenAddress("127.0.0.1:0")!
            config.socketPath = dir.path + "/agent.sock"
            let log = TestLog()
            let agent = Agent(config: config, logger: log.logger, dependencies: AgentDependencies(
                makeProgrammer: { _, _ in throw InjectedFailure(description: "no BTF") },
                source: StaticClusterSource([]), links: FakeLinks(), masquerade: RecordingMasquerade()))
            await #expect(throws: InjectedFailure.self) { try await agent.run() }
            #expect(log.contains(.critical, "cannot load the datapath: no BTF"))
        }
    }
}

struct FailingMasquerade: MasqueradeApplier {
    func apply(script: String) async throws { throw InjectedFailure(description: "nft: not found") }
}
