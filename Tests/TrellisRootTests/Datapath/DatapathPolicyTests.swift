import Testing
@testable import TrellisDatapath
import TrellisNet
import TrellisPolicy
import TrellisTestSupport

fileprivate typealias L = DPUnitLab

/// NetworkPolicy in the programs, one packet at a time through BPF_PROG_TEST_RUN, on the unit
/// lab (pods A and B on this node, a remote pod 10.2.0.30 behind the peer). Each test starts
/// from the lab's open policy and closes what it tests.
@Suite("Datapath policy (BPF_PROG_TEST_RUN)", .needsRoot)
struct DatapathPolicyTests {
    static let remoteID: Identity = 300
    static let aID: Identity = 100, bID: Identity = 200

    /// ipcache of the lab's world: A, B and the remote pod by label identity.
    fileprivate func identities(_ lab: L) throws {
        try lab.datapath.upsertIPCache(host(L.podA4), IPCacheEntry(identity: Self.aID))
        try lab.datapath.upsertIPCache(host(L.podB4), IPCacheEntry(identity: Self.bID))
        try lab.datapath.upsertIPCache(host(L.remote4), IPCacheEntry(identity: Self.remoteID))
        try lab.datapath.upsertIPCache(host(L.remote6), IPCacheEntry(identity: Self.remoteID))
    }

    fileprivate func allow(_ lab: L, _ endpoint: EndpointID, _ d: PolicyDirection, peer: Identity, _ ports: PortMatch = .anyProtocol) throws {
        try lab.datapath.upsertPolicy(PolicyMapKey(endpoint: endpoint, direction: d, peer: peer, ports: ports))
    }

    func tcp4(from src: IPAddress = L.podA4, to dst: IPAddress, sport: UInt16 = 40000, dport: UInt16, flags: UInt8 = 0x02) -> [UInt8] {
        Pkt.ipv4(src: src, dst: dst, proto: Pkt.protoTCP, Pkt.tcp(src: src, dst: dst, sport: sport, dport: dport, flags: flags))
    }

    /// A frame from the remote pod to `dst`, Geneve-encapsulated by the peer.
    func fromRemote(_ l3: [UInt8], type: UInt16 = Pkt.ethIPv4) -> [UInt8] {
        L.geneveIn(Pkt.ethernet(dst: L.remoteHostMAC, src: L.remotePodMAC, type: type, l3))
    }

    @Test("fail closed: an endpoint without entries sends and receives nothing, reported as policy drops")
    func failClosed() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            let reader = try DropEventReader(lab.datapath)
            let out = try lab.run("from_pod", L.fromA(tcp4(to: L.remote4, dport: 80)), on: lab.hostA)
            #expect(out.retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyEgress, .fromPod)) == 1)
            let inbound = try lab.run("from_underlay", fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 5000, dport: 80)), on: lab.underlay)
            #expect(inbound.retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyIngress, .fromUnderlay)) == 1)
            let events = try reader.poll(timeoutMs: 100)
            #expect(events.map(\.reason) == [.policyEgress, .policyIngress])
            let e = try #require(events.first)
            #expect(e.source == L.podA4 && e.destination == L.remote4 && e.destinationPort == 80 && e.proto == Pkt.protoTCP)
        }
    }

    @Test("egress: peer identity, protocol and port (aligned port blocks) decide; the rest is denied")
    func egressPorts() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.tcp, PortPrefix(base: 80, bits: 16)))
            for p in PortPrefix.cover(8080...8095) { try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.tcp, p)) }
            let cases: [(String, [UInt8], UInt32)] = [
                ("TCP 80", tcp4(to: L.remote4, dport: 80), TCAction.redirect),
                ("TCP 81", tcp4(to: L.remote4, dport: 81), TCAction.shot),
                ("UDP 80", L.udp4(to: L.remote4, dport: 80), TCAction.shot),
                ("TCP 8090 (in 8080-8095)", tcp4(to: L.remote4, sport: 40001, dport: 8090), TCAction.redirect),
                ("TCP 8096", tcp4(to: L.remote4, dport: 8096), TCAction.shot),
                ("TCP 80 to B (another identity)", tcp4(to: L.podB4, dport: 80), TCAction.shot),
                ("ICMP echo (not matched by port rules)",
                 Pkt.ipv4(src: L.podA4, dst: L.remote4, proto: Pkt.protoICMP, Pkt.icmpEcho(id: 7, seq: 1)), TCAction.shot),
            ]
            for (what, l3, verdict) in cases {
                #expect(try lab.run("from_pod", L.fromA(l3), on: lab.hostA).retval == verdict, "\(what)")
            }
            #expect(try lab.count(.drop(.policyEgress, .fromPod)) == 5)
        }
    }

    @Test("SCTP ports are matched like TCP and UDP")
    func sctpPorts() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.sctp, PortPrefix(base: 9000, bits: 16)))
            func sctp(_ dport: UInt16) -> [UInt8] {
                // Common header (ports, verification tag, checksum) and an INIT chunk header.
                let seg = Pkt.be16(5000) + Pkt.be16(dport) + Pkt.be32(0) + Pkt.be32(0) + [1, 0] + Pkt.be16(20) + [UInt8](repeating: 0, count: 16)
                return L.fromA(Pkt.ipv4(src: L.podA4, dst: L.remote4, proto: 132, seg))
            }
            #expect(try lab.run("from_pod", sctp(9000), on: lab.hostA).retval == TCAction.redirect)
            #expect(try lab.run("from_pod", sctp(9001), on: lab.hostA).retval == TCAction.shot)
        }
    }

    @Test("ipBlocks: a pod address carries the CIDR identity around it; unknown addresses are world")
    func cidrAndWorld() throws {
        try L.with { lab in
            let cidrID: Identity = 0x0100_0001
            try identities(lab)
            // 10.2.0.0/16 is an ipBlock; the remote pod inside it has both identities.
            try lab.datapath.upsertIPCache(DP.net("10.2.0.0/16"), IPCacheEntry(identity: cidrID, cidrIdentity: cidrID))
            try lab.datapath.upsertIPCache(host(L.remote4), IPCacheEntry(identity: Self.remoteID, cidrIdentity: cidrID))
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .egress, peer: cidrID, .ports(.udp, PortPrefix(base: 53, bits: 16)))
            try allow(lab, L.policyA, .egress, peer: ReservedIdentity.world, .ports(.tcp, PortPrefix(base: 443, bits: 16)))
            #expect(try lab.run("from_pod", L.fromA(L.udp4(to: L.remote4, dport: 53)), on: lab.hostA).retval == TCAction.redirect,
                    "pod inside the ipBlock, by its CIDR identity")
            #expect(try lab.run("from_pod", L.fromA(L.udp4(to: DP.ip("10.2.9.9"), dport: 53)), on: lab.hostA).retval == TCAction.ok,
                    "another address of the block (to the stack)")
            #expect(try lab.run("from_pod", L.fromA(L.udp4(to: DP.ip("8.8.8.8"), dport: 53)), on: lab.hostA).retval == TCAction.shot,
                    "outside the block")
            #expect(try lab.run("from_pod", L.fromA(tcp4(to: DP.ip("8.8.8.8"), dport: 443)), on: lab.hostA).retval == TCAction.ok,
                    "the world on 443")
            #expect(try lab.run("from_pod", L.fromA(tcp4(to: L.remote4, dport: 443)), on: lab.hostA).retval == TCAction.shot,
                    "a pod is not the world")
        }
    }

    @Test("ingress at both kinds of delivery: decapsulated (from_underlay) and same node (from_pod, ebpf mode)")
    func ingress() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyB)
            try allow(lab, L.policyB, .egress, peer: ReservedIdentity.any)
            try allow(lab, L.policyB, .ingress, peer: Self.aID, .ports(.tcp, PortPrefix(base: 80, bits: 16)))
            try allow(lab, L.policyB, .ingress, peer: Self.remoteID, .ports(.udp, PortPrefix(base: 53, bits: 16)))
            #expect(try lab.run("from_pod", L.fromA(tcp4(to: L.podB4, dport: 80)), on: lab.hostA).retval == TCAction.redirect)
            #expect(try lab.run("from_pod", L.fromA(tcp4(to: L.podB4, dport: 81)), on: lab.hostA).retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyIngress, .fromPod)) == 1)
            let udp = Pkt.ipv4(src: L.remote4, dst: L.podB4, proto: Pkt.protoUDP,
                               Pkt.udp(src: L.remote4, dst: L.podB4, sport: 5353, dport: 53, [1, 2, 3]))
            #expect(try lab.run("from_underlay", fromRemote(udp), on: lab.underlay).retval == TCAction.redirect)
            #expect(try lab.run("from_underlay", fromRemote(tcp4(from: L.remote4, to: L.podB4, dport: 80)), on: lab.underlay).retval
                    == TCAction.shot)
            #expect(try lab.count(.drop(.policyIngress, .fromUnderlay)) == 1)
        }
    }

    @Test("to_pod: what the kernel delivers is checked against ingress; the node's own traffic is host")
    func toPod() throws {
        try L.with(mode: .bridge) { lab in
            try identities(lab)
            try lab.datapath.upsertIPCache(host(L.router4), IPCacheEntry(identity: ReservedIdentity.host))
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .ingress, peer: ReservedIdentity.host)
            func toA(from src: IPAddress) -> [UInt8] {
                Pkt.ethernet(dst: L.podAMAC, src: L.hostAMAC, type: Pkt.ethIPv4, tcp4(from: src, to: L.podA4, sport: 33000, dport: 8080))
            }
            #expect(try lab.run("to_pod", toA(from: L.router4), on: lab.hostA).retval == TCAction.ok, "kubelet probe")
            #expect(try lab.run("to_pod", toA(from: DP.ip("203.0.113.7")), on: lab.hostA).retval == TCAction.shot, "world")
            #expect(try lab.run("to_pod", toA(from: L.podB4), on: lab.hostA).retval == TCAction.shot, "pod B, bridged")
            #expect(try lab.count(.drop(.policyIngress, .toPod)) == 2)
            // Not for this port's pod (flooded by the bridge), or not a connection (ARP): passed.
            let forB = Pkt.ethernet(dst: L.podBMAC, src: L.hostBMAC, type: Pkt.ethIPv4, tcp4(from: DP.ip("203.0.113.7"), to: L.podB4, dport: 1))
            #expect(try lab.run("to_pod", forB, on: lab.hostA).retval == TCAction.ok)
            let arp = Pkt.ethernet(dst: L.podAMAC, src: L.hostAMAC, type: Pkt.ethARP,
                                   Pkt.arp(sha: L.hostAMAC, spa: L.router4, tpa: L.podA4))
            #expect(try lab.run("to_pod", arp, on: lab.hostA).retval == TCAction.ok)
        }
    }

    @Test("stateful: replies of an allowed connection pass; a denied first packet leaves nothing to reply to")
    func stateful() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.tcp, PortPrefix(base: 80, bits: 16)))
            // A's ingress allows nothing: replies pass only by conntrack.
            #expect(try lab.run("from_pod", L.fromA(tcp4(to: L.remote4, sport: 41000, dport: 80)), on: lab.hostA).retval == TCAction.redirect)
            let reply = fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 80, dport: 41000, flags: 0x12))
            #expect(try lab.run("from_underlay", reply, on: lab.underlay).retval == TCAction.redirect, "SYN-ACK")
            let ct = try #require(try lab.datapath.conntrack().first { $0.destinationPort == 80 && $0.sourcePort == 41000 })
            #expect(ct.seenReply && ct.packets == 2)
            let unsolicited = fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 80, dport: 41001, flags: 0x12))
            #expect(try lab.run("from_underlay", unsolicited, on: lab.underlay).retval == TCAction.shot, "no such connection")

            // Denied towards 81: no entry is made, so a "reply" from 81 is a new, denied connection.
            #expect(try lab.run("from_pod", L.fromA(tcp4(to: L.remote4, sport: 42000, dport: 81)), on: lab.hostA).retval == TCAction.shot)
            #expect(try lab.datapath.conntrack().contains { $0.destinationPort == 81 } == false)
            let fake = fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 81, dport: 42000, flags: 0x12))
            #expect(try lab.run("from_underlay", fake, on: lab.underlay).retval == TCAction.shot)
        }
    }

    @Test("a new policy generation re-checks established flows: revoked access ends, kept access goes on")
    func generation() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            let http = PolicyMapKey(endpoint: L.policyA, direction: .egress, peer: Self.remoteID, ports: .ports(.tcp, PortPrefix(base: 80, bits: 16)))
            try lab.datapath.upsertPolicy(http)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.tcp, PortPrefix(base: 443, bits: 16)))
            let synHTTP = L.fromA(tcp4(to: L.remote4, sport: 43000, dport: 80))
            let synTLS = L.fromA(tcp4(to: L.remote4, sport: 43001, dport: 443))
            for f in [synHTTP, synTLS] { #expect(try lab.run("from_pod", f, on: lab.hostA).retval == TCAction.redirect) }
            for (sport, dport) in [(80, 43000), (443, 43001)] as [(UInt16, UInt16)] {
                let r = fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: sport, dport: dport, flags: 0x12))
                #expect(try lab.run("from_underlay", r, on: lab.underlay).retval == TCAction.redirect)
            }
            let dataHTTP = L.fromA(tcp4(to: L.remote4, sport: 43000, dport: 80, flags: 0x10))
            let dataTLS = L.fromA(tcp4(to: L.remote4, sport: 43001, dport: 443, flags: 0x10))

            // The allow goes; without a new generation the established flow goes on...
            try lab.datapath.deletePolicy(http)
            #expect(try lab.run("from_pod", dataHTTP, on: lab.hostA).retval == TCAction.redirect)
            // ...and with one it is checked again, denied and forgotten; the other flow stays.
            let before = try lab.datapath.policyGeneration()
            #expect(try lab.datapath.bumpPolicyGeneration() == before &+ 1)
            let replyHTTP = fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 80, dport: 43000, flags: 0x10))
            #expect(try lab.run("from_underlay", replyHTTP, on: lab.underlay).retval == TCAction.shot, "reply of a revoked flow")
            #expect(try lab.count(.drop(.policyEgress, .fromUnderlay)) == 1, "denied for A's egress, found at its ingress")
            #expect(try lab.datapath.conntrack().contains { $0.destinationPort == 80 && $0.sourcePort == 43000 } == false)
            #expect(try lab.run("from_pod", dataTLS, on: lab.hostA).retval == TCAction.redirect)
            let tls = try #require(try lab.datapath.conntrack().first { $0.destinationPort == 443 })
            #expect(tls.policyGeneration == before &+ 1)
            // Node settings written later keep the generation.
            try lab.datapath.setNodeConfig(NodeConfig(nodeIPv4: L.nodeIP, underlayIfindex: lab.underlay, vni: L.vni, mode: .ebpf))
            #expect(try lab.datapath.policyGeneration() == before &+ 1)
        }
    }

    @Test("ICMP errors about a tracked flow pass (path MTU, port unreachable); unrelated ones do not")
    func relatedICMP() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.udp, PortPrefix(base: 53, bits: 16)))
            let query = L.udp4(to: L.remote4, sport: 5555, dport: 53)
            #expect(try lab.run("from_pod", L.fromA(query), on: lab.hostA).retval == TCAction.redirect)
            func unreachable(quoting q: [UInt8], to dst: IPAddress = L.podA4) -> [UInt8] {
                var icmp: [UInt8] = [3, 3, 0, 0, 0, 0, 0, 0] + q.prefix(28)
                let c = Pkt.checksum(icmp)
                icmp[2] = UInt8(c >> 8)
                icmp[3] = UInt8(c & 0xff)
                return fromRemote(Pkt.ipv4(src: L.remote4, dst: dst, proto: Pkt.protoICMP, icmp))
            }
            #expect(try lab.run("from_underlay", unreachable(quoting: query), on: lab.underlay).retval == TCAction.redirect)
            let other = L.udp4(to: L.remote4, sport: 5556, dport: 53)
            #expect(try lab.run("from_underlay", unreachable(quoting: other), on: lab.underlay).retval == TCAction.shot,
                    "quotes a flow that was never allowed")
            #expect(try lab.run("from_underlay", unreachable(quoting: query, to: L.podB4), on: lab.underlay).retval == TCAction.redirect,
                    "B is open")
            try lab.datapath.closePolicy(endpoint: L.policyB)
            #expect(try lab.run("from_underlay", unreachable(quoting: query, to: L.podB4), on: lab.underlay).retval == TCAction.shot,
                    "sent to a pod that is not the quoted packet's source")
        }
    }

    @Test("IPv6: the same lookups with 128-bit keys")
    func ipv6() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.udp, PortPrefix(base: 53, bits: 16)))
            #expect(try lab.run("from_pod", L.fromA(L.udp6(to: L.remote6, dport: 53), type: Pkt.ethIPv6), on: lab.hostA).retval
                    == TCAction.redirect)
            #expect(try lab.run("from_pod", L.fromA(L.udp6(to: L.remote6, dport: 54), type: Pkt.ethIPv6), on: lab.hostA).retval
                    == TCAction.shot)
        }
    }
}

private func host(_ ip: IPAddress) -> IPNetwork { IPNetwork(address: ip, prefixLength: ip.bitWidth)! }
