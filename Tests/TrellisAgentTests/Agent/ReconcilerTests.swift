import Testing
@testable import TrellisAgent
import TrellisCore
import TrellisNet
import TrellisPolicy

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }


extension AgentSuite {
    @Suite("Agent reconcilers")
    struct ReconcilerTests {
        typealias Call = RecordingProgrammer.Call

        static let me = ClusterNode(name: "a", podCIDRs: [net("10.244.1.0/24"), net("fd00:244:1::/64")],
                                    internalIPs: [ip("192.168.50.1")])
        static let b = ClusterNode(name: "b", podCIDRs: [net("10.244.2.0/24"), net("fd00:244:2::/64")],
                                   internalIPs: [ip("192.168.50.2"), ip("fd00:50::2")])
        static let c = ClusterNode(name: "c", podCIDRs: [net("10.244.3.0/24")], internalIPs: [ip("192.168.50.3")])

        func overlay(_ nodes: [ClusterNode]) -> OverlayIntent {
            OverlayIntent.from(ClusterSnapshot(nodes: nodes), selfNode: "a")
        }

        @Test("intent: every other node with CIDRs and an InternalIP; our own CIDRs are not tunnels")
        func intent() {
            let noIP = ClusterNode(name: "d", podCIDRs: [net("10.244.4.0/24")])
            let noCIDR = ClusterNode(name: "e", internalIPs: [ip("192.168.50.5")])
            let i = overlay([Self.me, Self.b, Self.c, noIP, noCIDR])
            #expect(i.state.tunnels == [
                net("10.244.2.0/24"): ip("192.168.50.2"), net("fd00:244:2::/64"): ip("192.168.50.2"),
                net("10.244.3.0/24"): ip("192.168.50.3"),
            ])
            #expect(i.state.peers == [ip("192.168.50.2"), ip("192.168.50.3")])
            #expect(i.notes.contains("Node d has no InternalIP; not a peer"))
            #expect(i.notes.contains("Node e has no podCIDR yet; not a peer"))
        }

        @Test("intent: conflicting claims on a CIDR; a node claiming ours")
        func conflicts() {
            let thief = ClusterNode(name: "z", podCIDRs: [net("10.244.1.0/24"), net("10.244.2.0/24")], internalIPs: [ip("192.168.50.26")])
            let i = overlay([Self.me, Self.b, thief])
            #expect(i.state.tunnels[net("10.244.2.0/24")] == ip("192.168.50.2"))
            #expect(i.state.tunnels[net("10.244.1.0/24")] == nil)
            #expect(i.notes.contains { $0.contains("claimed by Nodes b and z") })
            #expect(i.notes.contains { $0.contains("overlaps our own 10.244.1.0/24") })
        }

        @Test("node added, IP changed, CIDR changed, node removed: only the differences are programmed")
        func overlayDiffs() {
            let p = RecordingProgrammer()
            let log = TestLog()
            var r = OverlayReconciler()

            #expect(r.reconcile(to: overlay([Self.me, Self.b]), programmer: p, logger: log.logger).isEmpty)
            #expect(p.calls == [
                .upsertPeer(ip("192.168.50.2")),
                .upsertTunnel(net("10.244.2.0/24"), ip("192.168.50.2")),
                .upsertTunnel(net("fd00:244:2::/64"), ip("192.168.50.2")),
            ])

            // The same state again: nothing at all.
            p.clearCalls()
            r.reconcile(to: overlay([Self.me, Self.b]), programmer: p, logger: log.logger)
            #expect(p.calls.isEmpty)

            // Node c added: only c's entries.
            r.reconcile(to: overlay([Self.me, Self.b, Self.c]), programmer: p, logger: log.logger)
            #expect(p.calls == [.upsertPeer(ip("192.168.50.3")), .upsertTunnel(net("10.244.3.0/24"), ip("192.168.50.3"))])

            // b changes its IP: tunnels overwritten in place (no delete), new peer added before the
            // old one is removed; c untouched.
            p.clearCalls()
            var b2 = Self.b
            b2.internalIPs = [ip("192.168.50.22")]
            r.reconcile(to: overlay([Self.me, b2, Self.c]), programmer: p, logger: log.logger)
            #expect(p.calls == [
                .upsertPeer(ip("192.168.50.22")),
                .upsertTunnel(net("10.244.2.0/24"), ip("192.168.50.22")),
                .upsertTunnel(net("fd00:244:2::/64"), ip("192.168.50.22")),
                .deletePeer(ip("192.168.50.2")),
            ])
            #expect(log.contains(.info, "tunnel moved to a new node IP"))

            // c's CIDR changes: new tunnel, old one removed; peer untouched.
            p.clearCalls()
            var c2 = Self.c
            c2.podCIDRs = [net("10.244.33.0/24")]
            r.reconcile(to: overlay([Self.me, b2, c2]), programmer: p, logger: log.logger)
            #expect(p.calls == [.upsertTunnel(net("10.244.33.0/24"), ip("192.168.50.3")), .deleteTunnel(net("10.244.3.0/24"))])

            // b removed: its tunnels, then its peer.
            p.clearCalls()
            r.reconcile(to: overlay([Self.me, c2]), programmer: p, logger: log.logger)
            #expect(p.calls == [
                .deleteTunnel(net("10.244.2.0/24")), .deleteTunnel(net("fd00:244:2::/64")), .deletePeer(ip("192.168.50.22")),
            ])
            #expect(p.state.tunnels == [net("10.244.33.0/24"): ip("192.168.50.3")])
            #expect(p.state.peers == [ip("192.168.50.3")])

            // Our own node changing does not touch the overlay.
            p.clearCalls()
            var me2 = Self.me
            me2.internalIPs = [ip("192.168.50.111")]
            r.reconcile(to: overlay([me2, c2]), programmer: p, logger: log.logger)
            #expect(p.calls.isEmpty)

            // Every change was logged at info, every action at debug, with dotted keys.
            #expect(!log.entries(with: "tunnel.cidr", "10.244.33.0/24").filter { $0.level == .info }.isEmpty)
            #expect(!log.entries(with: "peer.ip", "192.168.50.22").filter { $0.level == .debug }.isEmpty)
            #expect(log.entries.contains { $0.metadata["peer.node"]?.description == "b" })
        }

        @Test("adoption: pre-programmed entries that are right stay untouched; stale ones go")
        func adoption() throws {
            let pre = RecordingProgrammer(state: .init(
                tunnels: [net("10.244.2.0/24"): ip("192.168.50.2"), net("fd00:244:2::/64"): ip("192.168.50.2"),
                          net("10.244.9.0/24"): ip("192.168.50.9")],
                peers: [ip("192.168.50.2"), ip("192.168.50.9")]))
            var r = OverlayReconciler()
            try r.refresh(from: pre)
            let log = TestLog()
            #expect(r.reconcile(to: overlay([Self.me, Self.b, Self.c]), programmer: pre, logger: log.logger).isEmpty)
            #expect(pre.calls == [
                .upsertPeer(ip("192.168.50.3")),
                .upsertTunnel(net("10.244.3.0/24"), ip("192.168.50.3")),
                .deleteTunnel(net("10.244.9.0/24")),
                .deletePeer(ip("192.168.50.9")),
            ])
        }

        @Test("a failed write is reported, the rest goes on, and the next pass re-reads and retries")
        func failureAndRetry() {
            let p = RecordingProgrammer()
            p.failWhen { call in
                if case .upsertTunnel(let cidr, _) = call, cidr == net("10.244.2.0/24") { return InjectedFailure(description: "map full") }
                return nil
            }
            var r = OverlayReconciler()
            let log = TestLog()
            let failures = r.reconcile(to: overlay([Self.me, Self.b]), programmer: p, logger: log.logger)
            #expect(failures == [ReconcileFailure(object: "tunnel 10.244.2.0/24 via 192.168.50.2 (node b)", error: "map full")])
            #expect(p.state.tunnels[net("fd00:244:2::/64")] != nil)
            #expect(r.needsRefresh)

            p.failWhen(nil)
            p.clearCalls()
            #expect(r.reconcile(to: overlay([Self.me, Self.b]), programmer: p, logger: log.logger).isEmpty)
            #expect(p.calls == [.upsertTunnel(net("10.244.2.0/24"), ip("192.168.50.2"))])
        }

        @Test("policy inputs: pods on the pod network; a local endpoint's addresses win; routers are the node's")
        func policyInputs() {
            let pods = [
                ClusterPod(namespace: "shop", name: "web-1", labels: ["app": "web"], nodeName: "a",
                           ports: [ContainerPort(name: "http", containerPort: 8080), ContainerPort(containerPort: 9090)],
                           podIPs: [ip("10.244.1.5")], phase: "Running"),
                ClusterPod(namespace: "data", name: "pg-0", nodeName: "b", podIPs: [ip("10.244.2.5")], phase: "Running"),
                ClusterPod(namespace: "shop", name: "done", nodeName: "b", podIPs: [ip("10.244.2.6")], phase: "Succeeded"),
                ClusterPod(namespace: "kube-system", name: "proxy", nodeName: "b", hostNetwork: true, podIPs: [ip("192.168.50.2")]),
                ClusterPod(namespace: "shop", name: "pending", nodeName: "a"),
            ]
            let snap = ClusterSnapshot(nodes: [Self.me, Self.b], namespaces: [ClusterNamespace(name: "data", labels: ["team": "db"])],
                                       pods: pods, policies: [NetworkPolicy(namespace: "shop", name: "deny")])
            let i = PolicyInputs.from(snap, localNode: "a", localAddresses: [PodKey("shop", "web-1"): [ip("10.244.1.9")]],
                                      routers: [ip("10.244.1.1")])
            #expect(Set(i.pods.keys) == [PodKey("shop", "web-1"), PodKey("data", "pg-0"), PodKey("shop", "pending")])
            #expect(i.pods[PodKey("shop", "web-1")]?.ips == [ip("10.244.1.9")], "the endpoint's address, not the stale status")
            #expect(i.pods[PodKey("shop", "web-1")]?.namedPorts == [NamedPort("http", 8080, .tcp)])
            #expect(i.pods[PodKey("data", "pg-0")]?.ips == [ip("10.244.2.5")])
            #expect(i.pods[PodKey("shop", "web-1")]?.node == "a" && i.pods[PodKey("data", "pg-0")]?.node == "b")
            #expect(i.pods[PodKey("shop", "pending")]?.node == nil, "not wired here: compiled nowhere")
            #expect(i.nodes["a"]?.ips == [ip("192.168.50.1"), ip("10.244.1.1")])
            #expect(i.nodes["b"]?.ips == [ip("192.168.50.2"), ip("fd00:50::2")])
            #expect(i.namespaces["data"]?.labels == ["team": "db"])
            #expect(i.policies.keys.map(\.description) == ["shop/deny"])

            // Changes: what appears first, then what goes; nothing for what is the same.
            var later = i
            later.pods[PodKey("shop", "web-1")]?.labels = ["app": "web", "v": "2"]
            later.pods[PodKey("data", "pg-0")] = nil
            later.policies = [:]
            #expect(later.changes(from: i).map(\.description) == [
                "upsert pod shop/web-1", "remove policy shop/deny", "remove pod data/pg-0",
            ])
            #expect(i.changes(from: i).isEmpty)
        }

        static var world: PolicyInputs {
            let snap = ClusterSnapshot(
                nodes: [Self.me, Self.b], namespaces: [ClusterNamespace(name: "x")],
                pods: [
                    ClusterPod(namespace: "x", name: "a", labels: ["app": "a"], nodeName: "a", podIPs: [ip("10.244.1.5")], phase: "Running"),
                    ClusterPod(namespace: "x", name: "b", labels: ["app": "b"], nodeName: "b", podIPs: [ip("10.244.2.5")], phase: "Running"),
                ],
                policies: [NetworkPolicy(namespace: "x", name: "a-from-b", podSelector: LabelSelector(matchLabels: ["app": "a"]),
                                         ingress: [PolicyRule(peers: [.pods(LabelSelector(matchLabels: ["app": "b"]))])])])
            return PolicyInputs.from(snap, localNode: "a", localAddresses: [PodKey("x", "a"): [ip("10.244.1.5")]],
                                     routers: [ip("10.244.1.1")])
        }

        @Test("policy reconciler: compiles and programs, writes nothing when nothing changes, a relabel in order")
        func policyReconciler() throws {
            let p = RecordingProgrammer()
            var r = PolicyReconciler(localNode: "a")
            let log = TestLog()
            var betweenAt: [Int] = []
            let (f1, wrote1) = r.reconcile(to: Self.world, programmer: p, logger: log.logger) { _ in betweenAt.append(p.calls.count); return [] }
            #expect(f1.isEmpty && wrote1)
            #expect(p.state.policy == r.engine.policyMap && p.state.ipcache == r.engine.ipcache)
            #expect(p.state.identities == r.engine.identityFingerprints)
            #expect(p.calls.last == .bumpPolicyGeneration && p.state.generation == 1)
            let aEP = try #require(r.engine.endpointID(of: PodKey("x", "a")))
            let bID = try #require(r.engine.identity(of: PodKey("x", "b")))
            #expect(p.state.policy.contains(PolicyMapKey(endpoint: aEP, direction: .ingress, peer: bID, ports: .anyProtocol)))
            #expect(p.state.ipcache[net("10.244.1.1/32")]?.identity == ReservedIdentity.host, "the router is the node")

            p.clearCalls()
            #expect(r.reconcile(to: Self.world, programmer: p, logger: log.logger) { _ in [] } == ([], false))
            #expect(p.calls.isEmpty)

            // b is relabelled out of the policy: its new identity and entries go in before the
            // old ones go out, the endpoint hook runs in between, one new generation.
            var relabelled = Self.world
            relabelled.pods[PodKey("x", "b")]?.labels = ["app": "c"]
            betweenAt = []
            let (f2, wrote2) = r.reconcile(to: relabelled, programmer: p, logger: log.logger) { _ in betweenAt.append(p.calls.count); return [] }
            #expect(f2.isEmpty && wrote2)
            let newB = try #require(r.engine.identity(of: PodKey("x", "b")))
            #expect(newB != bID)
            let upsertB = try #require(p.calls.firstIndex(of: .upsertIPCache(net("10.244.2.5/32"), IPCacheEntry(identity: newB))))
            let dropAllow = try #require(p.calls.firstIndex(of: .deletePolicy(PolicyMapKey(endpoint: aEP, direction: .ingress, peer: bID, ports: .anyProtocol))))
            #expect(upsertB < dropAllow)
            #expect(betweenAt == [dropAllow])
            #expect(p.calls.filter { $0 == .bumpPolicyGeneration }.count == 1)
            #expect(p.state.policy == r.engine.policyMap && p.state.ipcache == r.engine.ipcache)
        }

        @Test("policy reconciler: a restart adopts endpoint ids and identity numbers and writes nothing that is right")
        func policyAdoption() throws {
            let p = RecordingProgrammer()
            var first = PolicyReconciler(localNode: "a")
            let log = TestLog()
            _ = first.reconcile(to: Self.world, programmer: p, logger: log.logger) { _ in [] }
            // The endpoint entry of pod a carries its id, as the registry writes it.
            let aEP = try #require(first.engine.endpointID(of: PodKey("x", "a")))
            try p.upsertEndpoint(ip: ip("10.244.1.5"), EndpointEntry(hostIfindex: 7, podMAC: mac("02:00:00:00:00:05"),
                                                                      hostMAC: mac("02:00:00:00:00:07"), identity: 0, policyID: aEP))
            p.clearCalls()

            var second = PolicyReconciler(localNode: "a")
            #expect(second.reconcile(to: Self.world, programmer: p, logger: log.logger) { _ in [] } == ([], false))
            #expect(p.calls.isEmpty, "\(p.calls)")
            #expect(second.engine.endpointID(of: PodKey("x", "a")) == aEP)
            #expect(second.engine.identity(of: PodKey("x", "b")) == first.engine.identity(of: PodKey("x", "b")))

            // A pod relabelled while no agent ran: a new number, never one found programmed.
            var relabelled = Self.world
            relabelled.pods[PodKey("x", "b")]?.labels = ["app": "z"]
            var third = PolicyReconciler(localNode: "a")
            let (f, wrote) = third.reconcile(to: relabelled, programmer: p, logger: log.logger) { _ in [] }
            #expect(f.isEmpty && wrote)
            let newB = try #require(third.engine.identity(of: PodKey("x", "b")))
            #expect(!first.engine.identityFingerprints.keys.contains(newB))
            #expect(p.state.policy == third.engine.policyMap && p.state.ipcache == third.engine.ipcache)
        }

        @Test("policy reconciler: a failed write is retried by comparing the maps as a whole")
        func policyResync() throws {
            let p = RecordingProgrammer()
            p.failWhen { if case .upsertPolicy = $0 { InjectedFailure(description: "map full") } else { nil } }
            var r = PolicyReconciler(localNode: "a")
            let log = TestLog()
            let (f, _) = r.reconcile(to: Self.world, programmer: p, logger: log.logger) { _ in [] }
            #expect(f.first?.error == "map full")
            #expect(r.needsResync)
            p.failWhen(nil)
            let (f2, wrote) = r.reconcile(to: Self.world, programmer: p, logger: log.logger) { _ in [] }
            #expect(f2.isEmpty && wrote && !r.needsResync)
            #expect(p.state.policy == r.engine.policyMap && p.state.ipcache == r.engine.ipcache)
        }

        @Test("service addresses by difference; only a removal starts a new policy generation")
        func services() {
            let p = RecordingProgrammer()
            let log = TestLog()
            var r = ServiceReconciler()
            #expect(r.reconcile(to: [ip("10.96.0.10"), ip("10.96.0.11")], programmer: p, logger: log.logger).isEmpty)
            #expect(p.calls == [.upsertService(ip("10.96.0.10")), .upsertService(ip("10.96.0.11"))])
            p.clearCalls()
            #expect(r.reconcile(to: [ip("10.96.0.10"), ip("10.96.0.11")], programmer: p, logger: log.logger).isEmpty)
            #expect(p.calls.isEmpty, "nothing changed, nothing written")
            #expect(r.reconcile(to: [ip("10.96.0.10"), ip("10.96.0.12")], programmer: p, logger: log.logger).isEmpty)
            #expect(p.calls == [.upsertService(ip("10.96.0.12")), .deleteService(ip("10.96.0.11")), .bumpPolicyGeneration])
            #expect(p.state.services == [ip("10.96.0.10"), ip("10.96.0.12")])
        }
    }
}
