import Testing
@testable import TrellisDatapath
import TrellisNet
import TrellisPolicy
import TrellisTestSupport

fileprivate typealias L = DPUnitLab

/// The datapath and the node's own stack, one packet at a time through BPF_PROG_TEST_RUN on the
/// unit lab: pods' Service connections (handed to the stack, checked after its translation),
/// what the stack routes into the overlay device (its own traffic, kube-proxy's DNAT to a pod
/// on another node) and the replies, which must go back through the stack to be de-NATed.
@Suite("Datapath services and the node's stack (BPF_PROG_TEST_RUN)", .needsRoot)
struct DatapathServiceTests {
    static let service = DP.ip("10.96.0.10")
    static let aID: Identity = 100, bID: Identity = 200, remoteID: Identity = 300

    fileprivate func identities(_ lab: L) throws {
        try lab.datapath.upsertIPCache(host(L.podA4), IPCacheEntry(identity: Self.aID))
        try lab.datapath.upsertIPCache(host(L.podB4), IPCacheEntry(identity: Self.bID))
        try lab.datapath.upsertIPCache(host(L.remote4), IPCacheEntry(identity: Self.remoteID))
    }

    fileprivate func allow(_ lab: L, _ endpoint: EndpointID, _ d: PolicyDirection, peer: Identity, _ ports: PortMatch = .anyProtocol) throws {
        try lab.datapath.upsertPolicy(PolicyMapKey(endpoint: endpoint, direction: d, peer: peer, ports: ports))
    }

    func tcp4(from src: IPAddress, to dst: IPAddress, sport: UInt16, dport: UInt16, flags: UInt8 = 0x02) -> [UInt8] {
        Pkt.ipv4(src: src, dst: dst, proto: Pkt.protoTCP, Pkt.tcp(src: src, dst: dst, sport: sport, dport: dport, flags: flags))
    }

    /// A frame the node's stack sends on a device (its MACs do not matter to the programs).
    func fromStack(_ l3: [UInt8], type: UInt16 = Pkt.ethIPv4) -> [UInt8] {
        Pkt.ethernet(dst: L.podAMAC, src: L.hostAMAC, type: type, l3)
    }

    func fromRemote(_ l3: [UInt8]) -> [UInt8] {
        L.geneveIn(Pkt.ethernet(dst: L.remoteHostMAC, src: L.remotePodMAC, type: Pkt.ethIPv4, l3))
    }

    fileprivate func conntrack(_ lab: L, _ src: IPAddress, _ dst: IPAddress) throws -> ConntrackEntry? {
        try lab.datapath.conntrack().first { $0.source == src && $0.destination == dst }
    }

    @Test("a pod's packet to a Service address goes to the stack, tracked and marked with its policy id, whatever its egress policy")
    func toService() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try lab.datapath.upsertService(Self.service)
            #expect(try lab.datapath.services() == [Self.service])
            let out = try lab.run("from_pod", L.fromA(L.udp4(to: Self.service, dport: 53)), on: lab.hostA)
            #expect(out.retval == TCAction.ok)
            #expect(out.mark == Datapath.serviceMark(policyID: L.policyA))
            #expect(Datapath.serviceMark(policyID: 0x12_3456) & 0xF00 == 0xE00, "the tag sits in bits 8-11")
            #expect(Datapath.serviceMark(policyID: 0x12_3456) & 0xC000 == 0, "kube-proxy's bits stay clear")
            #expect(try lab.count(.forward(.service, .fromPod)) == 1)
            let entry = try #require(try conntrack(lab, L.podA4, Self.service))
            #expect(entry.service && !entry.viaStack)
            // An address that is no Service is checked here, as before.
            let other = try lab.run("from_pod", L.fromA(L.udp4(to: DP.ip("10.96.0.11"), dport: 53)), on: lab.hostA)
            #expect(other.retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyEgress, .fromPod)) == 1)
        }
    }

    @Test("replies from the Service address pass the pod's ingress gate, across policy generations; nothing else from it does")
    func serviceReplies() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            try lab.datapath.upsertService(Self.service)
            _ = try lab.run("from_pod", L.fromA(L.udp4(to: Self.service, sport: 5555, dport: 53)), on: lab.hostA)
            let reply = fromStack(L.udp4(from: Self.service, to: L.podA4, sport: 53, dport: 5555))
            #expect(try lab.run("to_pod", reply, on: lab.hostA).retval == TCAction.ok)
            try lab.datapath.bumpPolicyGeneration()
            #expect(try lab.run("to_pod", reply, on: lab.hostA).retval == TCAction.ok, "not checked again: the backend's flow is")
            let stranger = fromStack(L.udp4(from: Self.service, to: L.podA4, sport: 54, dport: 5555))
            #expect(try lab.run("to_pod", stranger, on: lab.hostA).retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyIngress, .toPod)) == 1)
        }
    }

    @Test("to_pod: a translated packet is checked against the backend at both ends, and its replies go back through the stack")
    func translatedToLocalBackend() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            // After kube-proxy's DNAT: A -> B:53, delivered by the stack to B's host veth.
            let dnat = fromStack(L.udp4(from: L.podA4, to: L.podB4, sport: 5555, dport: 53))
            #expect(try lab.run("to_pod", dnat, on: lab.hostB).retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyEgress, .toPod)) == 1, "A's egress, checked against the backend")
            try allow(lab, L.policyA, .egress, peer: Self.bID, .ports(.udp, PortPrefix(base: 53, bits: 16)))
            #expect(try lab.run("to_pod", dnat, on: lab.hostB).retval == TCAction.ok)
            #expect(try conntrack(lab, L.podA4, L.podB4)?.viaStack == true)
            // B's reply must be de-NATed by the stack: not redirected into A (ebpf mode).
            let reply = try lab.run("from_pod", Pkt.ethernet(dst: L.hostBMAC, src: L.podBMAC, type: Pkt.ethIPv4,
                                                             L.udp4(from: L.podB4, to: L.podA4, sport: 53, dport: 5555)), on: lab.hostB)
            #expect(reply.retval == TCAction.ok)
            #expect(try lab.count(.forward(.localRedirect, .fromPod)) == 0)
            // A direct flow B -> A (allowed) is still redirected into A.
            try allow(lab, L.policyA, .ingress, peer: Self.bID)
            let direct = try lab.run("from_pod", Pkt.ethernet(dst: L.hostBMAC, src: L.podBMAC, type: Pkt.ethIPv4,
                                                              L.udp4(from: L.podB4, to: L.podA4, sport: 6000, dport: 7000)), on: lab.hostB)
            #expect(direct.retval == TCAction.redirect)
        }
    }

    @Test("to_overlay: the node's own traffic to a remote pod is tracked and encapsulated; the reply is decapsulated to the stack")
    func nodeToRemotePod() throws {
        try L.with { lab in
            try identities(lab)
            let syn = fromStack(tcp4(from: L.router4, to: L.remote4, sport: 40000, dport: 80))
            let out = try lab.run("to_overlay", syn, on: lab.overlay)
            #expect(out.retval == TCAction.redirect)
            #expect(IPAddress(bytes: out.packet.slice(14 + 16, 4)) == L.peerIP, "outer destination: the peer")
            #expect(out.packet.u16(14 + 20 + 2) == 6081)
            #expect(try lab.count(.forward(.encap, .toOverlay)) == 1)
            #expect(try conntrack(lab, L.router4, L.remote4)?.viaStack == true)

            let synAck = try lab.run("from_underlay", fromRemote(tcp4(from: L.remote4, to: L.router4, sport: 80, dport: 40000, flags: 0x12)),
                                     on: lab.underlay)
            #expect(synAck.retval == TCAction.redirect)
            #expect(synAck.packet.slice(0, 6) == lab.overlayMAC.bytes, "addressed to the overlay device")
            #expect(synAck.packet.u16(12) == Pkt.ethIPv4 && IPAddress(bytes: synAck.packet.slice(14 + 16, 4)) == L.router4)
            #expect(try lab.count(.forward(.decapToStack, .fromUnderlay)) == 1)

            let unsolicited = try lab.run("from_underlay", fromRemote(tcp4(from: L.remote4, to: L.router4, sport: 80, dport: 40001)),
                                          on: lab.underlay)
            #expect(unsolicited.retval == TCAction.shot)
            #expect(try lab.count(.drop(.unknownEndpoint, .fromUnderlay)) == 1)

            let nowhere = try lab.run("to_overlay", fromStack(tcp4(from: L.router4, to: DP.ip("10.3.0.1"), sport: 40000, dport: 80)),
                                      on: lab.overlay)
            #expect(nowhere.retval == TCAction.shot)
            #expect(try lab.count(.drop(.noTunnel, .toOverlay)) == 1)
        }
    }

    @Test("to_overlay: a pod's Service connection translated to a remote backend is checked against it; the reply goes to the stack")
    func translatedToRemoteBackend() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            let mark = Datapath.serviceMark(policyID: L.policyA)
            let dnat = fromStack(tcp4(from: L.podA4, to: L.remote4, sport: 41000, dport: 80))
            #expect(try lab.run("to_overlay", dnat, on: lab.overlay, mark: mark).retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyEgress, .toOverlay)) == 1)
            try allow(lab, L.policyA, .egress, peer: Self.remoteID, .ports(.tcp, PortPrefix(base: 80, bits: 16)))
            let out = try lab.run("to_overlay", dnat, on: lab.overlay, mark: mark)
            #expect(out.retval == TCAction.redirect)
            #expect(out.mark == 0, "checked: the underlay device must not check the Geneve packet")

            // The backend's reply, for a pod of this node, still goes to the stack (de-NAT).
            let reply = try lab.run("from_underlay", fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 80, dport: 41000, flags: 0x12)),
                                    on: lab.underlay)
            #expect(reply.retval == TCAction.redirect)
            #expect(reply.packet.slice(0, 6) == lab.overlayMAC.bytes)
            // A flow the remote pod opens itself is delivered into the pod as before (if allowed).
            try allow(lab, L.policyA, .ingress, peer: Self.remoteID)
            let direct = try lab.run("from_underlay", fromRemote(tcp4(from: L.remote4, to: L.podA4, sport: 5000, dport: 8080)),
                                     on: lab.underlay)
            #expect(direct.retval == TCAction.redirect)
            #expect(direct.packet.slice(0, 6) == L.podAMAC.bytes)
        }
    }

    @Test("to_underlay: Service traffic leaving the node is checked against the translated destination by its mark; the rest passes")
    func serviceLeavingTheNode() throws {
        try L.with { lab in
            try identities(lab)
            try lab.datapath.closePolicy(endpoint: L.policyA)
            let apiServer = DP.ip("192.0.2.10")
            // Masqueraded by then: the source is the node, the mark says whose packet it is.
            let pkt = fromStack(tcp4(from: L.nodeIP, to: apiServer, sport: 45000, dport: 6443))
            let mark = Datapath.serviceMark(policyID: L.policyA)
            #expect(try lab.run("to_underlay", pkt, on: lab.underlay, mark: mark).retval == TCAction.shot)
            #expect(try lab.count(.drop(.policyEgress, .toUnderlay)) == 1)
            #expect(try lab.run("to_underlay", pkt, on: lab.underlay, mark: 0x4000).retval == TCAction.ok, "unmarked: not ours")
            try allow(lab, L.policyA, .egress, peer: ReservedIdentity.world, .ports(.tcp, PortPrefix(base: 6443, bits: 16)))
            #expect(try lab.run("to_underlay", pkt, on: lab.underlay, mark: mark | 0x4000).retval == TCAction.ok)
            #expect(try lab.count(.forward(.service, .toUnderlay)) == 1)
        }
    }

    @Test("MLD reports (link-local source, hop-by-hop header, link-scope multicast) go to the kernel, not to the drop counters")
    func mldReports() throws {
        try L.with { lab throws in
            // Hop-by-hop: next header ICMPv6, length 0, router alert (type 5, len 2, MLD), PadN.
            let hopByHop: [UInt8] = [58, 0, 5, 2, 0, 0, 1, 0]
            let report = Pkt.icmp6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::16"), type: 143, [0, 0, 0, 0])
            let frame = L.fromA(Pkt.ipv6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::16"), nextHeader: 0, hopLimit: 1,
                                         hopByHop + report), type: Pkt.ethIPv6)
            #expect(try lab.run("from_pod", frame, on: lab.hostA).retval == TCAction.ok)
            #expect(try lab.count(.drop(.linkLocal, .fromPod)) == 0)
            let unicast = L.fromA(L.udp6(from: DP.ip("fe80::a"), to: L.remote6), type: Pkt.ethIPv6)
            #expect(try lab.run("from_pod", unicast, on: lab.hostA).retval == TCAction.shot)
            #expect(try lab.count(.drop(.linkLocal, .fromPod)) == 1)
        }
    }
}

private func host(_ ip: IPAddress) -> IPNetwork { IPNetwork(address: ip, prefixLength: ip.bitWidth)! }
