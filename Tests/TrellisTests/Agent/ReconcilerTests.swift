import Testing
@testable import TrellisAgent
import TrellisNet

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

        @Test("ipcache: pod IPs as host prefixes with their identity; finished and host-network pods left out")
        func ipcache() {
            struct ByApp: IdentityAllocator {
                func identity(namespace: String, podLabels: [String: String], namespaceLabels: [String: String]) -> UInt32 {
                    podLabels["app"] == "web" ? 100 : (namespaceLabels["team"] == "db" ? 200 : 0)
                }
            }
            let pods = [
                ClusterPod(namespace: "shop", name: "web-1", labels: ["app": "web"], podIPs: [ip("10.244.1.5"), ip("fd00:244:1::5")], phase: "Running"),
                ClusterPod(namespace: "data", name: "pg-0", podIPs: [ip("10.244.2.5")], phase: "Running"),
                ClusterPod(namespace: "shop", name: "done", podIPs: [ip("10.244.1.6")], phase: "Succeeded"),
                ClusterPod(namespace: "kube-system", name: "proxy", hostNetwork: true, podIPs: [ip("192.168.50.1")]),
                ClusterPod(namespace: "shop", name: "pending"),
            ]
            let snap = ClusterSnapshot(namespaces: [ClusterNamespace(name: "data", labels: ["team": "db"])], pods: pods)
            let intent = IPCacheIntent.from(snap, identities: ByApp())
            #expect(intent.entries == [net("10.244.1.5/32"): 100, net("fd00:244:1::5/128"): 100, net("10.244.2.5/32"): 200])

            let zero = IPCacheIntent.from(snap, identities: FixedIdentityAllocator())
            #expect(Set(zero.entries.values) == [0])

            let p = RecordingProgrammer(state: .init(ipcache: [net("10.244.2.5/32"): 200, net("10.244.9.9/32"): 0]))
            var r = IPCacheReconciler()
            let log = TestLog()
            try? r.refresh(from: p)
            #expect(r.reconcile(to: intent, programmer: p, logger: log.logger).isEmpty)
            #expect(p.calls == [
                .upsertIPCache(net("10.244.1.5/32"), 100), .upsertIPCache(net("fd00:244:1::5/128"), 100),
                .deleteIPCache(net("10.244.9.9/32")),
            ])
            #expect(!log.entries(with: "pod.name", "web-1").isEmpty)

            // Unchanged: nothing. Identity changed: overwritten in place.
            p.clearCalls()
            r.reconcile(to: intent, programmer: p, logger: log.logger)
            #expect(p.calls.isEmpty)
            r.reconcile(to: zero, programmer: p, logger: log.logger)
            #expect(p.calls.count == 3)
            #expect(p.calls.allSatisfy { if case .upsertIPCache(_, 0) = $0 { true } else { false } })
        }

        @Test("ipcache: an IP claimed by two pods goes to the running one")
        func ipcacheDuplicate() {
            let pods = [
                ClusterPod(namespace: "a", name: "old", labels: ["v": "1"], podIPs: [ip("10.244.1.5")], phase: "Pending"),
                ClusterPod(namespace: "b", name: "new", podIPs: [ip("10.244.1.5")], phase: "Running"),
            ]
            let intent = IPCacheIntent.from(ClusterSnapshot(pods: pods), identities: FixedIdentityAllocator())
            #expect(intent.owners[net("10.244.1.5/32")] == ClusterPod.Key(namespace: "b", name: "new"))
            #expect(intent.notes.count == 1)
        }
    }
}
