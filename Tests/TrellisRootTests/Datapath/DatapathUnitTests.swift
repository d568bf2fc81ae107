import CTrellisBPF
import Foundation
import Testing
import TrellisCore
@testable import TrellisDatapath
import TrellisNet
import TrellisTestSupport

/// The shared layouts as Swift sees them: what the BPF programs and the maps expect.
@Suite("Datapath layouts")
struct DatapathLayoutTests {
    @Test("C structs have the sizes of the pinned maps' keys and values")
    func sizes() {
        #expect(MemoryLayout<trellis_ip_key>.size == 20)
        #expect(MemoryLayout<trellis_lpm_key>.size == 24)
        #expect(MemoryLayout<trellis_endpoint>.size == 24)
        #expect(MemoryLayout<trellis_tunnel>.size == 8)
        #expect(MemoryLayout<trellis_ct_key>.size == 40)
        #expect(MemoryLayout<trellis_ct_entry>.size == 48)
        #expect(MemoryLayout<trellis_policy_key>.size == 16)
        #expect(MemoryLayout<trellis_metric_key>.size == 8)
        #expect(MemoryLayout<trellis_drop_event>.size == 64)
        #expect(MemoryLayout<trellis_config>.size == 52)
        #expect(MemoryLayout<trellis_service>.size == 4)
    }

    @Test("the loader loads exactly the programs bpf/ holds (the image and the build ship them all)")
    func objectFilesMatchSources() throws {
        let sources = try FileManager.default.contentsOfDirectory(atPath: DP.repoRoot + "/bpf")
            .filter { $0.hasSuffix(".bpf.c") }.map { String($0.dropLast(2)) + ".o" }
        #expect(Set(sources) == Set(Datapath.objectFiles))
    }

    @Test("labels for metrics are snake_case case names")
    func labels() {
        #expect(DropReason.unknownPeer.label == "unknown_peer")
        #expect(DropReason.spoofedIP.label == "spoofed_ip")
        #expect(DropReason.wrongVNI.label == "wrong_vni")
        #expect(ForwardKind.localRedirect.label == "local_redirect")
        #expect(Direction.fromUnderlay.label == "from_underlay")
    }

    @Test("keys: family tag, prefix length counts the tag, host bits cleared")
    func keys() {
        let k = trellis_lpm_key(IPNetwork("10.2.0.77/24")!)
        #expect(k.prefixlen == 32 + 24)
        #expect(k.family == 4)
        #expect(load(k.addr, count: 16) == [10, 2, 0, 0] + Array(repeating: 0, count: 12))
        #expect(k.ipNetwork == IPNetwork("10.2.0.0/24"))
        let k6 = trellis_ip_key(IPAddress("fd00::5")!)
        #expect(k6.family == 6 && k6.ipAddress == IPAddress("fd00::5"))
        let cfg = NodeConfig(nodeIPv4: IPAddress("198.51.100.1")!, underlayIfindex: 3, vni: 0x1234567, mode: .bridge,
                             routerIPv6: IPAddress("fd00::1"))
        let raw = trellis_config(cfg)
        #expect(withUnsafeBytes(of: raw.node_ipv4) { Array($0) } == [198, 51, 100, 1])
        #expect(raw.vni == 0x234567)
        #expect(raw.nodeConfig.mode == .bridge && raw.nodeConfig.routerIPv6 == IPAddress("fd00::1"))
    }
}

private typealias L = DPUnitLab

/// The programs, one packet at a time, through BPF_PROG_TEST_RUN (redirects are reported, not
/// performed). Each test has its own namespace and an unpinned datapath, so counters start at 0.
@Suite("Datapath programs (BPF_PROG_TEST_RUN)", .needsRoot)
struct DatapathProgramTests {
    // MARK: encap

    @Test("from_pod: IPv4 to a remote pod CIDR is Geneve-encapsulated (RFC 8926), inner frame intact")
    func encapIPv4() throws {
        try L.with { lab in
            let frame = L.fromA(L.udp4(to: L.remote4, tos: 0xb8))
            let r = try lab.run("from_pod", frame, on: lab.hostA, checksumComplete: true)
            #expect(r.retval == TCAction.redirect)
            try expectGeneve(r.packet, inner: frame, tos: 0xb8)
            #expect(try lab.count(.forward(.encap, .fromPod)) == 1)
            // Same flow, same entropy.
            let again = try lab.run("from_pod", frame, on: lab.hostA)
            #expect(again.packet.u16(14 + 20) == r.packet.u16(14 + 20))
        }
    }

    @Test("from_pod: IPv6 to a remote pod CIDR travels in outer IPv4, EtherType fixed")
    func encapIPv6() throws {
        try L.with { lab in
            let frame = L.fromA(L.udp6(to: L.remote6), type: Pkt.ethIPv6)
            let r = try lab.run("from_pod", frame, on: lab.hostA, checksumComplete: true)
            #expect(r.retval == TCAction.redirect)
            try expectGeneve(r.packet, inner: frame, tos: 0)
        }
    }

    // MARK: decap

    @Test("from_underlay: Geneve from a peer is stripped to the inner frame, MACs rewritten for the pod")
    func decapIPv4() throws {
        try L.with { lab in
            let inner = L.remoteInner4()
            let r = try lab.run("from_underlay", L.geneveIn(inner), on: lab.underlay, checksumComplete: true)
            #expect(r.retval == TCAction.redirect)
            #expect(r.packet == forPod(inner, podMAC: L.podAMAC, hostMAC: L.hostAMAC))
            #expect(try lab.count(.forward(.decap, .fromUnderlay)) == 1)
        }
    }

    @Test("from_underlay: inner IPv6 gets EtherType 0x86dd; Geneve options are skipped")
    func decapIPv6AndOptions() throws {
        try L.with { lab in
            let inner = L.remoteInner6()
            let r = try lab.run("from_underlay", L.geneveIn(inner), on: lab.underlay, checksumComplete: true)
            #expect(r.retval == TCAction.redirect)
            #expect(r.packet == forPod(inner, podMAC: L.podAMAC, hostMAC: L.hostAMAC))
            // One non-critical 8-byte option (class 0x0102, type 0x03, length 1 word).
            let opt: [UInt8] = [0x01, 0x02, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef]
            let inner4 = L.remoteInner4(to: L.podB4)
            let r2 = try lab.run("from_underlay", L.geneveIn(inner4, options: opt), on: lab.underlay)
            #expect(r2.retval == TCAction.redirect)
            #expect(r2.packet == forPod(inner4, podMAC: L.podBMAC, hostMAC: L.hostBMAC))
        }
    }

    @Test("from_underlay: unknown peer, wrong VNI, bad version, critical options, unknown endpoint are dropped and counted")
    func decapDrops() throws {
        try L.with { lab in
            let inner = L.remoteInner4()
            let reader = try DropEventReader(lab.datapath)
            let cases: [(String, [UInt8], DropReason)] = [
                ("unknown peer", L.geneveIn(inner, from: L.strangerIP), .unknownPeer),
                ("wrong VNI", L.geneveIn(inner, vni: 7), .wrongVNI),
                ("version 1", L.geneveIn(inner, version: 1), .badGeneve),
                ("critical options", L.geneveIn(inner, options: [0, 1, 0x80, 1, 0, 0, 0, 0], flags: 0x40), .geneveUnsupported),
                ("OAM", L.geneveIn(inner, flags: 0x80), .geneveUnsupported),
                ("no such pod", L.geneveIn(L.remoteInner4(to: DP.ip("10.1.0.99"))), .unknownEndpoint),
            ]
            for (what, frame, reason) in cases {
                let r = try lab.run("from_underlay", frame, on: lab.underlay)
                #expect(r.retval == TCAction.shot, "\(what)")
                #expect(try lab.count(.drop(reason, .fromUnderlay)) >= 1, "\(what)")
            }
            #expect(try lab.count(.drop(.geneveUnsupported, .fromUnderlay)) == 2)
            #expect(try lab.count(.forward(.decap, .fromUnderlay)) == 0)
            let events = try reader.poll(timeoutMs: 100)
            let peerEvent = try #require(events.first { $0.reason == .unknownPeer })
            #expect(peerEvent.source == L.strangerIP && peerEvent.destination == L.nodeIP)
            #expect(peerEvent.destinationPort == 6081 && peerEvent.direction == .fromUnderlay)
            #expect(peerEvent.ifindex == UInt32(lab.underlay))
            #expect(events.count == cases.count)
        }
    }

    @Test("from_underlay: traffic that is not Geneve for this node is left untouched")
    func underlayPassThrough() throws {
        try L.with { lab in
            let node = L.nodeIP, peer = L.peerIP
            let frames: [(String, [UInt8])] = [
                ("UDP 53", Pkt.ethernet(dst: L.underlayMAC, src: L.peerMAC, type: Pkt.ethIPv4,
                    Pkt.ipv4(src: peer, dst: node, proto: Pkt.protoUDP, Pkt.udp(src: peer, dst: node, sport: 6081, dport: 53, [1, 2, 3])))),
                ("TCP 6081", Pkt.ethernet(dst: L.underlayMAC, src: L.peerMAC, type: Pkt.ethIPv4,
                    Pkt.ipv4(src: peer, dst: node, proto: Pkt.protoTCP, Pkt.tcp(src: peer, dst: node, sport: 1000, dport: 6081)))),
                ("ARP", Pkt.ethernet(dst: L.underlayMAC, src: L.peerMAC, type: Pkt.ethARP,
                    Pkt.arp(sha: L.peerMAC, spa: peer, tpa: node))),
                ("IPv6 UDP 6081", Pkt.ethernet(dst: L.underlayMAC, src: L.peerMAC, type: Pkt.ethIPv6,
                    Pkt.ipv6(src: DP.ip("2001:db8::2"), dst: DP.ip("2001:db8::1"), nextHeader: Pkt.protoUDP,
                             Pkt.udp(src: DP.ip("2001:db8::2"), dst: DP.ip("2001:db8::1"), sport: 1, dport: 6081, [0])))),
                ("Geneve to another address", Pkt.geneveFrame(outerSrcMAC: L.peerMAC, outerDstMAC: L.underlayMAC,
                    src: peer, dst: DP.ip("198.51.100.7"), vni: L.vni, inner: L.remoteInner4())),
            ]
            for (what, frame) in frames {
                let r = try lab.run("from_underlay", frame, on: lab.underlay)
                #expect(r.retval == TCAction.ok, "\(what)")
                #expect(r.packet == frame, "\(what)")
            }
            #expect(try lab.count(.forward(.notGeneve, .fromUnderlay)) == UInt64(frames.count))
        }
    }

    // MARK: port security

    @Test("from_pod: spoofed source IPs and MACs are dropped, counted and reported")
    func antiSpoofing() throws {
        try L.with { lab in
            let reader = try DropEventReader(lab.datapath)
            let cases: [(String, [UInt8], Int32, DropReason)] = [
                ("address of no pod", L.fromA(L.udp4(from: DP.ip("10.1.0.99"), to: L.remote4)), lab.hostA, .spoofedIP),
                ("pod B's address from A's veth", L.fromA(L.udp4(from: L.podB4, to: L.remote4), srcMAC: L.podBMAC), lab.hostA, .spoofedIP),
                ("A's address with another MAC", L.fromA(L.udp4(to: L.remote4), srcMAC: DP.mac("02:00:00:00:66:66")), lab.hostA, .spoofedMAC),
                ("IPv6 of no pod", L.fromA(L.udp6(from: DP.ip("fd00:1::99"), to: L.remote6), type: Pkt.ethIPv6), lab.hostA, .spoofedIP),
                ("IPv6 with B's MAC", L.fromA(L.udp6(to: L.remote6), type: Pkt.ethIPv6, srcMAC: L.podBMAC), lab.hostA, .spoofedMAC),
                ("ARP claiming B's address", L.fromA(Pkt.arp(sha: L.podAMAC, spa: L.podB4, tpa: L.router4), type: Pkt.ethARP), lab.hostA, .spoofedARP),
                ("ARP sender MAC not the frame's", L.fromA(Pkt.arp(sha: L.podBMAC, spa: L.podA4, tpa: L.router4), type: Pkt.ethARP), lab.hostA, .spoofedARP),
                ("link-local UDP", L.fromA(L.udp6(from: DP.ip("fe80::1"), to: L.remote6), type: Pkt.ethIPv6), lab.hostA, .linkLocal),
                ("NA for B's address", L.fromA(Pkt.ipv6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::1"), nextHeader: Pkt.protoICMPv6, hopLimit: 255,
                    Pkt.icmp6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::1"), type: 136, [0x20, 0, 0, 0] + L.podB6.bytes)), type: Pkt.ethIPv6), lab.hostA, .spoofedIP),
                ("VLAN frame", L.fromA([0, 1, 8, 0] + L.udp4(to: L.remote4), type: 0x8100), lab.hostA, .unsupportedL3),
                ("right pod, wrong veth", L.fromA(L.udp4(to: L.remote4)), lab.hostB, .spoofedIP),
            ]
            for (what, frame, dev, reason) in cases {
                let r = try lab.run("from_pod", frame, on: dev)
                #expect(r.retval == TCAction.shot, "\(what)")
            }
            #expect(try lab.count(.drop(.spoofedIP, .fromPod)) == 5)
            #expect(try lab.count(.drop(.spoofedMAC, .fromPod)) == 2)
            #expect(try lab.count(.drop(.spoofedARP, .fromPod)) == 2)
            #expect(try lab.count(.drop(.linkLocal, .fromPod)) == 1)
            #expect(try lab.count(.drop(.unsupportedL3, .fromPod)) == 1)
            #expect(try lab.count(.forward(.encap, .fromPod)) == 0)
            let events = try reader.poll(timeoutMs: 100)
            #expect(events.count == cases.count)
            let first = try #require(events.first)
            #expect(first.reason == .spoofedIP && first.source == DP.ip("10.1.0.99") && first.destination == L.remote4)
            #expect(first.proto == Pkt.protoUDP && first.sourcePort == 5555 && first.destinationPort == 53)
            #expect(first.ifindex == UInt32(lab.hostA) && first.direction == .fromPod)
        }
    }

    @Test("from_pod: the pod's own ARP, ARP probes and neighbour discovery pass to the kernel untouched")
    func legitimateControlTraffic() throws {
        try L.with { lab in
            let frames: [[UInt8]] = [
                L.fromA(Pkt.arp(sha: L.podAMAC, spa: L.podA4, tpa: L.router4), type: Pkt.ethARP),
                L.fromA(Pkt.arp(sha: L.podAMAC, spa: DP.ip("0.0.0.0"), tpa: L.podA4), type: Pkt.ethARP),
                L.fromA(Pkt.ipv6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::1:ff00:1"), nextHeader: Pkt.protoICMPv6, hopLimit: 255,
                    Pkt.icmp6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::1:ff00:1"), type: 135, [0, 0, 0, 0] + L.router6.bytes)), type: Pkt.ethIPv6),
                L.fromA(Pkt.ipv6(src: DP.ip("::"), dst: DP.ip("ff02::1:ff00:10"), nextHeader: Pkt.protoICMPv6, hopLimit: 255,
                    Pkt.icmp6(src: DP.ip("::"), dst: DP.ip("ff02::1:ff00:10"), type: 135, [0, 0, 0, 0] + DP.ip("fe80::a").bytes)), type: Pkt.ethIPv6),
                L.fromA(Pkt.ipv6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::2"), nextHeader: Pkt.protoICMPv6, hopLimit: 255,
                    Pkt.icmp6(src: DP.ip("fe80::a"), dst: DP.ip("ff02::2"), type: 133, [0, 0, 0, 0])), type: Pkt.ethIPv6),
                L.fromA(Pkt.ipv6(src: L.podA6, dst: DP.ip("ff02::1"), nextHeader: Pkt.protoICMPv6, hopLimit: 255,
                    Pkt.icmp6(src: L.podA6, dst: DP.ip("ff02::1"), type: 136, [0x20, 0, 0, 0] + L.podA6.bytes)), type: Pkt.ethIPv6),
                L.fromA(L.udp4(to: DP.ip("192.0.2.1"))),   // outside the cluster: the kernel routes it
            ]
            for (i, frame) in frames.enumerated() {
                let r = try lab.run("from_pod", frame, on: lab.hostA)
                #expect(r.retval == TCAction.ok, "frame \(i)")
                #expect(r.packet == frame, "frame \(i)")
            }
            #expect(try lab.count(.forward(.stack, .fromPod)) == UInt64(frames.count))
            #expect(try lab.datapath.metrics().keys.allSatisfy { $0.kind == .forward })
        }
    }

    // MARK: same node

    @Test("from_pod, ebpf mode: to a pod on this node the frame is routed (TTL/hop limit, MACs) and redirected")
    func localForwarding() throws {
        try L.with(mode: .ebpf) { lab in
            let v4 = L.udp4(to: L.podB4)
            let r = try lab.run("from_pod", L.fromA(v4), on: lab.hostA, checksumComplete: true)
            #expect(r.retval == TCAction.redirect)
            var expected = v4
            expected[8] -= 1
            let c = Pkt.checksum({ var h = Array(expected[0..<20]); h[10] = 0; h[11] = 0; return h }())
            expected[10] = UInt8(c >> 8)
            expected[11] = UInt8(c & 0xff)
            #expect(r.packet == Pkt.ethernet(dst: L.podBMAC, src: L.hostBMAC, type: Pkt.ethIPv4, expected))
            #expect(Pkt.checksumValid(Array(r.packet[14..<34])))

            let v6 = L.udp6(to: L.podB6)
            let r6 = try lab.run("from_pod", L.fromA(v6, type: Pkt.ethIPv6), on: lab.hostA, checksumComplete: true)
            #expect(r6.retval == TCAction.redirect)
            var expected6 = v6
            expected6[7] -= 1
            #expect(r6.packet == Pkt.ethernet(dst: L.podBMAC, src: L.hostBMAC, type: Pkt.ethIPv6, expected6))

            // TTL 1: the kernel answers "time exceeded".
            let ttl1 = L.fromA(Pkt.ipv4(src: L.podA4, dst: L.podB4, proto: Pkt.protoUDP, ttl: 1,
                                        Pkt.udp(src: L.podA4, dst: L.podB4, sport: 1, dport: 2, [])))
            let r1 = try lab.run("from_pod", ttl1, on: lab.hostA)
            #expect(r1.retval == TCAction.ok && r1.packet == ttl1)
            #expect(try lab.count(.forward(.localRedirect, .fromPod)) == 2)
        }
    }

    @Test("from_pod, bridge mode: to a pod on this node the frame is left to the bridge")
    func bridgeMode() throws {
        try L.with(mode: .bridge) { lab in
            let frame = L.fromA(L.udp4(to: L.podB4))
            let r = try lab.run("from_pod", frame, on: lab.hostA)
            #expect(r.retval == TCAction.ok && r.packet == frame)
            #expect(try lab.count(.forward(.localBridge, .fromPod)) == 1)
            // Cross-node traffic is encapsulated in bridge mode too.
            let remote = try lab.run("from_pod", L.fromA(L.udp4(to: L.remote4)), on: lab.hostA)
            #expect(remote.retval == TCAction.redirect)
            // to_pod counts and tracks what the bridge delivers.
            let toPod = try lab.run("to_pod", Pkt.ethernet(dst: L.podBMAC, src: L.hostBMAC, type: Pkt.ethIPv4, L.udp4(to: L.podB4)), on: lab.hostB)
            #expect(toPod.retval == TCAction.ok)
            #expect(try lab.count(.forward(.toPod, .toPod)) == 1)
        }
    }

    // MARK: too big for the tunnel

    @Test("from_pod: a DF IPv4 packet too big for the tunnel is answered with ICMP fragmentation needed")
    func fragNeeded() throws {
        try L.with { lab in
            let payload = [UInt8](repeating: 0x5a, count: 1472)   // 1500-byte IP packet, underlay MTU 1500
            let big = L.udp4(to: L.remote4, payload: payload)
            #expect(big.count == 1500)
            let r = try lab.run("from_pod", L.fromA(big), on: lab.hostA)
            #expect(r.retval == TCAction.redirect)
            let p = r.packet
            #expect(p.slice(0, 6) == L.podAMAC.bytes && p.slice(6, 6) == L.gatewayMAC.bytes && p.u16(12) == Pkt.ethIPv4)
            let ip = p.slice(14, 20)
            #expect(Pkt.checksumValid(ip))
            #expect(ip[9] == Pkt.protoICMP && ip.slice(12, 4) == L.router4.bytes && ip.slice(16, 4) == L.podA4.bytes)
            #expect(Int(ip.u16(2)) == p.count - 14)
            let icmp = Array(p[34...])
            #expect(icmp[0] == 3 && icmp[1] == 4 && icmp.u16(6) == 1450)
            #expect(Pkt.checksumValid(icmp))
            #expect(Array(icmp[8...]) == Array(big.prefix(icmp.count - 8)))
            #expect(try lab.count(.forward(.fragNeeded, .fromPod)) == 1)

            // Without DF it cannot be answered, nor fragmented in the tunnel: dropped, counted.
            let noDF = try lab.run("from_pod", L.fromA(L.udp4(to: L.remote4, payload: payload, df: false)), on: lab.hostA)
            #expect(noDF.retval == TCAction.shot)
            #expect(try lab.count(.drop(.fragNeeded, .fromPod)) == 1)

            // The largest packet that fits is encapsulated.
            let fits = try lab.run("from_pod", L.fromA(L.udp4(to: L.remote4, payload: Array(payload.prefix(1450 - 28)))), on: lab.hostA)
            #expect(fits.retval == TCAction.redirect && fits.packet.count == 14 + 1500)
        }
    }

    @Test("from_pod: an IPv6 packet too big for the tunnel is answered with ICMPv6 packet too big")
    func packetTooBig() throws {
        try L.with { lab in
            let big = L.udp6(to: L.remote6, payload: [UInt8](repeating: 0x6b, count: 1500 - 48))
            let r = try lab.run("from_pod", L.fromA(big, type: Pkt.ethIPv6), on: lab.hostA)
            #expect(r.retval == TCAction.redirect)
            let p = r.packet
            #expect(p.slice(0, 6) == L.podAMAC.bytes && p.u16(12) == Pkt.ethIPv6)
            let ip6 = p.slice(14, 40)
            #expect(ip6[6] == Pkt.protoICMPv6 && ip6.slice(8, 16) == L.router6.bytes && ip6.slice(24, 16) == L.podA6.bytes)
            let icmp = Array(p[54...])
            #expect(Int(ip6.u16(4)) == icmp.count)
            #expect(icmp[0] == 2 && icmp[1] == 0 && icmp.u32(4) == 1450)
            #expect(Pkt.checksumValid(icmp, initial: Pkt.pseudoHeaderSum(src: L.router6, dst: L.podA6, proto: Pkt.protoICMPv6, length: icmp.count)))
            #expect(Array(icmp[8...]) == Array(big.prefix(icmp.count - 8)))
        }
        // Without a router IPv6 address there is no source for the answer: dropped, counted.
        try L.with(routerIPv6: false) { lab in
            let big = L.udp6(to: L.remote6, payload: [UInt8](repeating: 0x6b, count: 1500 - 48))
            let r = try lab.run("from_pod", L.fromA(big, type: Pkt.ethIPv6), on: lab.hostA)
            #expect(r.retval == TCAction.shot)
            #expect(try lab.count(.drop(.fragNeeded, .fromPod)) == 1)
        }
    }

    // MARK: checksums as a real NIC leaves them

    @Test("checksum state: decap drops one verified level, encap adds one only to verified skbs",
          arguments: [
            // (program, NIC-verified levels before, cb[1] expected after: 0 = not CHECKSUM_UNNECESSARY, n = level n-1)
            ("harness_from_underlay", 0, 0),   // CHECKSUM_NONE stays NONE: the pod verifies
            ("harness_from_underlay", 1, 0),   // only the outer UDP was verified: now NONE
            ("harness_from_underlay", 2, 1),   // outer UDP + inner TCP verified: inner stays verified (level 0)
            ("harness_from_underlay", 3, 2),
            ("harness_from_pod", 0, 0),        // NONE must not become UNNECESSARY on encap
            ("harness_from_pod", 1, 2),        // inner verified (level 0) + zero outer UDP checksum: level 1
          ])
    func checksumLevels(program: String, before: UInt32, after: UInt32) throws {
        try L.with { lab in
            let harness = try lab.datapath.loadSharingMaps(objectPath: DP.harnessObject)
            let prog = try harness.program(named: program)
            let (frame, dev) = program == "harness_from_underlay"
                ? (L.geneveIn(L.remoteInner4()), lab.underlay)
                : (L.fromA(L.udp4(to: L.remote4)), lab.hostA)
            let r = try lab.run(prog, frame, on: dev, cb: [before])
            #expect(r.retval == TCAction.redirect)
            #expect(r.cb[1] == after, "\(program) with \(before) verified level(s)")
        }
    }

    // MARK: conntrack

    @Test("conntrack: a request from a pod and the reply from the tunnel are one flow, seen both ways")
    func conntrack() throws {
        try L.with { lab in
            let syn = Pkt.ipv4(src: L.podA4, dst: L.remote4, proto: Pkt.protoTCP,
                               Pkt.tcp(src: L.podA4, dst: L.remote4, sport: 40001, dport: 443, flags: 0x02))
            _ = try lab.run("from_pod", L.fromA(syn), on: lab.hostA)
            var flows = try lab.datapath.conntrack()
            #expect(flows.count == 1 && flows.first?.seenReply == false)
            _ = try lab.run("from_underlay", L.geneveIn(L.remoteInner4()), on: lab.underlay)
            flows = try lab.datapath.conntrack()
            let f = try #require(flows.first)
            #expect(flows.count == 1)
            #expect(f.source == L.podA4 && f.destination == L.remote4 && f.sourcePort == 40001 && f.destinationPort == 443)
            #expect(f.proto == Pkt.protoTCP && f.seenReply && f.packets == 2)
        }
    }

    // MARK: helpers

    /// Checks an encapsulated frame: outer IPv4/UDP/Geneve fields and checksums, then the inner frame.
    private func expectGeneve(_ p: [UInt8], inner: [UInt8], tos: UInt8) throws {
        try #require(p.count == inner.count + 50)
        #expect(p.u16(12) == Pkt.ethIPv4, "outer EtherType")
        let ip = p.slice(14, 20)
        #expect(ip[0] == 0x45 && ip[1] == tos)
        #expect(Int(ip.u16(2)) == p.count - 14, "tot_len")
        #expect(ip.u16(6) == 0x4000, "DF, no fragment")
        #expect(ip[8] == 64 && ip[9] == Pkt.protoUDP)
        #expect(ip.slice(12, 4) == L.nodeIP.bytes && ip.slice(16, 4) == L.peerIP.bytes)
        #expect(Pkt.checksumValid(ip), "outer IPv4 header checksum")
        let udp = p.slice(34, 8)
        #expect(udp.u16(0) >= 0x8000, "source port in 32768-65535")
        #expect(udp.u16(2) == 6081)
        #expect(Int(udp.u16(4)) == p.count - 34)
        #expect(udp.u16(6) == 0, "UDP checksum 0")
        let g = p.slice(42, 8)
        #expect(g[0] == 0, "version 0, no options")
        #expect(g[1] == 0, "no O/C flags")
        #expect(g.u16(2) == 0x6558, "protocol: Ethernet")
        #expect(UInt32(g[4]) << 16 | UInt32(g[5]) << 8 | UInt32(g[6]) == L.vni && g[7] == 0)
        #expect(Array(p[50...]) == inner, "inner frame intact")
    }

    /// The inner frame as the pod receives it.
    private func forPod(_ inner: [UInt8], podMAC: MACAddress, hostMAC: MACAddress) -> [UInt8] {
        podMAC.bytes + hostMAC.bytes + Array(inner[12...])
    }
}
