import CLibbpf
import Foundation
import Testing
import TrellisCore
import TrellisDatapath
import TrellisNet
import TrellisPolicy
import TrellisNetlink
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two "nodes" (network namespaces) joined by an underlay veth, each with one pod wired as the
/// plugin's ebpf mode wires it (pod /32 and /128, gateway through a permanent neighbour entry,
/// host routes), each with its own datapath pinned in its own bpffs mount. Endpoints, tunnels
/// and peers are programmed by hand, as the agent would.
///
///   podA 10.201.1.10 ── hvA ┐ nodeA 198.51.100.1 ── ul0 ═══ ul0 ── nodeB 198.51.100.2 ┌ hvB ── podB 10.201.2.10
///        fd00:201:1::10     ┘ (gateway 10.201.1.1)                (gateway 10.201.2.1) └        fd00:201:2::10
final class DPTwoNodeLab {
    struct Node {
        let index: Int
        let ns: String
        let podNS: String
        let netns: NetworkNamespace
        let bpffs: TempBPFFS
        let datapath: Datapath
        let nodeIP: IPAddress
        let pod4: IPAddress, pod6: IPAddress
        let gateway4: IPAddress, gateway6: IPAddress
        let underlay: Int32
        let hostVeth: Int32
    }

    static let vni: UInt32 = 42
    static let underlayMTU = 1500
    static let podMTU = underlayMTU - 50

    let runID = DP.newRunID()
    private(set) var namespaces: [String] = []
    private(set) var mounts: [TempBPFFS] = []
    private(set) var processes: [Process] = []
    private(set) var nodes: [Node] = []

    static func with(_ body: (DPTwoNodeLab) throws -> Void) throws {
        _ = DP.removeLeftoversOfDeadRuns
        let lab = DPTwoNodeLab()
        defer { lab.cleanup() }
        try lab.build()
        try body(lab)
    }

    func cleanup() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        // Whatever those started inside the lab's namespaces (nc, tcpdump children).
        for ns in namespaces {
            for pid in DP.run(HostTools.ip, ["netns", "pids", ns]).output.split(separator: "\n").compactMap({ Int32($0) }) {
                kill(pid, SIGKILL)
            }
        }
        nodes.removeAll()   // closes the datapaths (the attached programs go with the namespaces)
        for ns in namespaces.reversed() { try? NetworkNamespace.delete(named: ns) }
        for m in mounts { m.remove() }
    }

    private func makeNamespace(_ role: String) throws -> String {
        let name = DP.namespaceName(role, run: runID)
        try NetworkNamespace.create(named: name)
        namespaces.append(name)
        return name
    }

    func path(_ ns: String) -> String { NetworkNamespace.defaultDirectory + "/" + ns }

    private func build() throws {
        let nA = try makeNamespace("nA"), nB = try makeNamespace("nB")
        let nsA = try NetworkNamespace(path: path(nA)), nsB = try NetworkNamespace(path: path(nB))
        let nlA = try Netlink(namespace: nsA), nlB = try Netlink(namespace: nsB)

        // Underlay: one veth pair, an end in each node.
        try nlA.addVethPair(name: "ul0", peerName: "ul0", peerNamespace: nsB, mtu: Self.underlayMTU)
        for (nl, ip) in [(nlA, "198.51.100.1/24"), (nlB, "198.51.100.2/24")] {
            let ul = try #require(try nl.link(named: "ul0"))
            try nl.addAddress(DP.net(ip), index: ul.index)
            try nl.setLink(index: ul.index, up: true)
        }

        for (i, (nodeNS, netns, nl)) in [(nA, nsA, nlA), (nB, nsB, nlB)].enumerated() {
            nodes.append(try buildNode(i + 1, nodeNS: nodeNS, netns: netns, nl: nl))
        }
        // The overlay, as the agent programs it from the Node objects.
        for node in nodes {
            for other in nodes where other.index != node.index {
                try node.datapath.upsertTunnel(DP.net("10.201.\(other.index).0/24"), nodeIP: other.nodeIP)
                try node.datapath.upsertTunnel(DP.net("fd00:201:\(other.index)::/64"), nodeIP: other.nodeIP)
                try node.datapath.upsertPeer(other.nodeIP)
            }
        }
    }

    private func buildNode(_ n: Int, nodeNS: String, netns: NetworkNamespace, nl: Netlink) throws -> Node {
        let podNS = try makeNamespace("p\(n)")
        let podNetns = try NetworkNamespace(path: path(podNS))
        let nodeIP = DP.ip("198.51.100.\(n)")
        let pod4 = DP.ip("10.201.\(n).10"), pod6 = DP.ip("fd00:201:\(n)::10")
        let gw4 = DP.ip("10.201.\(n).1"), gw6 = DP.ip("fd00:201:\(n)::1")

        // Node: the gateway device (a veth pair) holding the gateway addresses, forwarding on.
        let gwDev = try nl.ensureVethPair(name: "trellis_host", peerName: "trellis_net")
        try nl.addAddress(IPNetwork(address: gw4, prefixLength: 32)!, index: gwDev.index)
        try nl.addAddress(IPNetwork(address: gw6, prefixLength: 128)!, index: gwDev.index)
        try netns.run { () throws -> Void in
            try Sysctl.set("net.ipv4.ip_forward", "1")
            try Sysctl.set("net.ipv6.conf.all.forwarding", "1")
        }

        // Pod veth, born in the pod namespace, MTU = underlay - 50.
        try nl.addVethPair(name: "hv\(n)", peerName: "eth0", peerNamespace: podNetns, mtu: Self.podMTU)
        let host = try #require(try nl.link(named: "hv\(n)"))
        try nl.setLink(index: host.index, up: true)
        let podNL = try Netlink(namespace: podNetns)
        let pod = try #require(try podNL.link(named: "eth0"))
        try podNL.setLink(index: pod.index, up: true)
        for (addr, gw) in [(pod4, gw4), (pod6, gw6)] {
            try podNL.addAddress(IPNetwork(address: addr, prefixLength: addr.bitWidth)!, index: pod.index, noPrefixRoute: true)
            try podNL.addRoute(RouteInfo(destination: IPNetwork(address: gw, prefixLength: gw.bitWidth)!, outputIndex: pod.index))
            let any = IPNetwork(address: gw.family == .v4 ? .v4(0) : .v6(0, 0), prefixLength: 0)!
            try podNL.addRoute(RouteInfo(destination: any, gateway: gw, outputIndex: pod.index))
            try podNL.setPermanentNeighbour(gw, mac: try #require(host.mac), index: pod.index)
            // Node side: host route and permanent neighbour to the pod.
            try nl.addRoute(RouteInfo(destination: IPNetwork(address: addr, prefixLength: addr.bitWidth)!, outputIndex: host.index))
            try nl.setPermanentNeighbour(addr, mac: try #require(pod.mac), index: host.index)
        }

        // Datapath: its own bpffs, maps pinned in a folder inside it.
        let bpffs = try TempBPFFS()
        mounts.append(bpffs)
        let datapath = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: bpffs.path + "/trellis")
        let underlay = try #require(try nl.link(named: "ul0")).index
        try datapath.setNodeConfig(NodeConfig(nodeIPv4: nodeIP, underlayIfindex: underlay, vni: Self.vni,
                                              mode: .ebpf, routerIPv4: gw4, routerIPv6: gw6))
        try datapath.attachUnderlay(ifindex: underlay, namespace: netns)
        try datapath.attachEndpoint(hostIfindex: host.index, namespace: netns)
        // A pod no policy selects: its allow-all entries, as the agent compiles them.
        try datapath.openPolicy(endpoint: 1)
        let ep = EndpointEntry(hostIfindex: host.index, podMAC: try #require(pod.mac), hostMAC: try #require(host.mac),
                               identity: 0, policyID: 1)
        try datapath.upsertEndpoint(pod4, ep)
        try datapath.upsertEndpoint(pod6, ep)
        return Node(index: n, ns: nodeNS, podNS: podNS, netns: netns, bpffs: bpffs, datapath: datapath,
                    nodeIP: nodeIP, pod4: pod4, pod6: pod6, gateway4: gw4, gateway6: gw6,
                    underlay: underlay, hostVeth: host.index)
    }

    func ping(from node: Node, _ to: IPAddress, count: Int = 3, size: Int? = nil, dontFragment: Bool = false)
        -> (status: Int32, output: String) {
        var args = ["ping", to.family == .v6 ? "-6" : "-4", "-n", "-c", "\(count)", "-i", "0.2", "-W", "2"]
        if let size { args += ["-s", "\(size)"] }
        if dontFragment { args += ["-M", "do"] }
        return DP.exec(node.podNS, args + ["\(to)"])
    }

    /// Starts `ip netns exec NS args...` in the background; stopped by `cleanup` at the latest.
    func startBackground(_ ns: String, _ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: HostTools.ip)
        p.arguments = ["netns", "exec", ns] + args
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes.append(p)
        return p
    }

    /// Starts tcpdump on a node's underlay device; returns once it is capturing.
    func startCapture(on node: Node, filter: [String], packets: Int) throws -> (Process, URL) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("trld-\(getpid())-\(runID)-tcpdump.txt")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: HostTools.ip)
        p.arguments = ["netns", "exec", node.ns, "tcpdump", "-i", "ul0", "-nn", "-v", "-l", "-c", "\(packets)"] + filter
        let h = try FileHandle(forWritingTo: out)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        processes.append(p)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let s = try? String(contentsOf: out, encoding: .utf8), s.contains("listening on") { break }
            if !p.isRunning { break }
            usleep(50_000)
        }
        return (p, out)
    }

    /// Waits for a capture to end (it stops after its packet count), kills it after `timeout`.
    func finishCapture(_ p: Process, _ out: URL, timeout: TimeInterval = 10) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGTERM); p.waitUntilExit() }
        defer { try? FileManager.default.removeItem(at: out) }
        return (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    }

    /// Sends one UDP datagram from `source` (an address of `node`'s underlay) to `dest`:6081.
    func sendUDP(from node: Node, source: IPAddress, to dest: IPAddress, port: UInt16, payload: [UInt8]) throws {
        try node.netns.run { () throws -> Void in
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw DatapathError("socket", code: errno, message: "") }
            defer { close(fd) }
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = UInt32(source.bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) })
            local.sin_port = UInt16(40000).bigEndian
            var remote = local
            remote.sin_addr.s_addr = UInt32(dest.bytes.reversed().reduce(0) { $0 << 8 | UInt32($1) })
            remote.sin_port = port.bigEndian
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw DatapathError("bind \(source)", code: errno, message: String(cString: strerror(errno))) }
            let sent = payload.withUnsafeBytes { buf in
                withUnsafePointer(to: &remote) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard sent == payload.count else { throw DatapathError("sendto \(dest)", code: errno, message: String(cString: strerror(errno))) }
        }
    }
}

@Suite("Datapath across two nodes (real veths, Geneve underlay)", .serialized, .needsRoot,
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump") ||
                    FileManager.default.isExecutableFile(atPath: "/usr/sbin/tcpdump"),
                "needs tcpdump (hack/install-deps.sh installs it)"))
struct DatapathTwoNodeTests {
    @Test("pod to pod across nodes: Geneve on the wire, full-size DF pings, PMTU answer, unknown peer dropped")
    func crossNode() throws {
        try DPTwoNodeLab.with { lab in
            let a = lab.nodes[0], b = lab.nodes[1]

            // 1. Ping A -> B (IPv4) while capturing the underlay: Geneve with our VNI.
            let (tcpdump, out) = try lab.startCapture(on: b, filter: ["udp", "port", "6081"], packets: 4)
            let p4 = lab.ping(from: a, b.pod4)
            let capture = lab.finishCapture(tcpdump, out)
            #expect(p4.status == 0, "ping \(b.pod4): \(p4.output)")
            #expect(capture.contains("Geneve"), "tcpdump: \(capture)")
            #expect(capture.contains("vni 0x2a"), "tcpdump: \(capture)")
            #expect(capture.contains("\(a.pod4) > \(b.pod4): ICMP echo request"), "tcpdump: \(capture)")
            #expect(capture.contains("\(b.pod4) > \(a.pod4): ICMP echo reply"), "tcpdump: \(capture)")

            // 2. IPv6 (inner IPv6 in outer IPv4), and back the other way.
            let p6 = lab.ping(from: a, b.pod6)
            #expect(p6.status == 0, "ping \(b.pod6): \(p6.output)")
            let back = lab.ping(from: b, a.pod4, count: 2)
            #expect(back.status == 0, "ping \(a.pod4): \(back.output)")

            // 3. Full-size packets with DF: pod MTU = underlay MTU - 50 crosses whole.
            let full4 = lab.ping(from: a, b.pod4, count: 2, size: DPTwoNodeLab.podMTU - 28, dontFragment: true)
            #expect(full4.status == 0, "full-size DF ping: \(full4.output)")
            let full6 = lab.ping(from: a, b.pod6, count: 2, size: DPTwoNodeLab.podMTU - 48, dontFragment: true)
            #expect(full6.status == 0, "full-size DF ping6: \(full6.output)")

            // 4. A TCP stream (GSO packets through encap and decap), 4 MiB, checked byte count.
            let countFile = FileManager.default.temporaryDirectory.appendingPathComponent("trld-\(getpid())-\(lab.runID)-nc").path
            defer { try? FileManager.default.removeItem(atPath: countFile) }
            let server = try lab.startBackground(b.podNS, ["timeout", "20", "sh", "-c", "nc -l -d -p 5001 | wc -c > \(countFile)"])
            usleep(300_000)
            let client = DP.exec(a.podNS, ["timeout", "20", "sh", "-c", "head -c 4194304 /dev/zero | nc -N \(b.pod4) 5001"], timeout: 25)
            #expect(client.status == 0, "nc client: \(client.output)")
            let deadline = Date().addingTimeInterval(10)
            while server.isRunning, Date() < deadline { usleep(50_000) }
            let received = (try? String(contentsOfFile: countFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(received == "4194304", "bytes received over TCP: \(received ?? "none")")

            // 5. A pod MTU above underlay - 50: the DF packet is answered "fragmentation needed"
            //    (no black hole), the pod learns the tunnel MTU, and full-size pings cross after.
            let nlA = try Netlink(namespace: a.netns)
            let podNL = try Netlink(namespace: NetworkNamespace(path: lab.path(a.podNS)))
            try podNL.setLink(index: try #require(try podNL.link(named: "eth0")).index, mtu: DPTwoNodeLab.underlayMTU)
            try nlA.setLink(index: a.hostVeth, mtu: DPTwoNodeLab.underlayMTU)
            let tooBig = lab.ping(from: a, b.pod4, count: 1, size: DPTwoNodeLab.underlayMTU - 28, dontFragment: true)
            #expect(tooBig.status != 0)
            #expect(tooBig.output.contains("Frag needed") && tooBig.output.contains("mtu = \(DPTwoNodeLab.podMTU)"),
                    "ping with pod MTU 1500: \(tooBig.output)")
            #expect((try a.datapath.metrics()[.forward(.fragNeeded, .fromPod)]?.packets ?? 0) >= 1)
            let learnt = lab.ping(from: a, b.pod4, count: 2, size: DPTwoNodeLab.underlayMTU - 28, dontFragment: true)
            #expect(learnt.output.contains("mtu=\(DPTwoNodeLab.podMTU)") || learnt.output.contains("mtu = \(DPTwoNodeLab.podMTU)"),
                    "the pod keeps the learnt path MTU: \(learnt.output)")
            let stillOK = lab.ping(from: a, b.pod4, count: 2, size: DPTwoNodeLab.podMTU - 28, dontFragment: true)
            #expect(stillOK.status == 0, "\(stillOK.output)")
            let tooBig6 = lab.ping(from: a, b.pod6, count: 1, size: DPTwoNodeLab.underlayMTU - 48, dontFragment: true)
            #expect(tooBig6.output.contains("Packet too big") && tooBig6.output.contains("mtu=\(DPTwoNodeLab.podMTU)"),
                    "ping6 with pod MTU 1500: \(tooBig6.output)")

            // 6. Geneve from an address that is not a peer: dropped at tc ingress, counted, reported.
            let events = try DropEventReader(a.datapath)
            _ = try events.poll(timeoutMs: 0)
            let stranger = DP.ip("198.51.100.3")
            let nlB = try Netlink(namespace: b.netns)
            try nlB.addAddress(DP.net("198.51.100.3/24"), index: b.underlay)
            let inner = Pkt.ethernet(dst: DP.mac("02:00:00:00:00:01"), src: DP.mac("02:00:00:00:00:02"), type: Pkt.ethIPv4,
                                     Pkt.ipv4(src: b.pod4, dst: a.pod4, proto: Pkt.protoICMP, Pkt.icmpEcho(id: 7, seq: 1)))
            let before = try a.datapath.metrics()[.drop(.unknownPeer, .fromUnderlay)]?.packets ?? 0
            try lab.sendUDP(from: b, source: stranger, to: a.nodeIP, port: 6081,
                            payload: Pkt.geneve(vni: DPTwoNodeLab.vni, inner: inner))
            var after = before
            let until = Date().addingTimeInterval(5)
            while after == before, Date() < until {
                usleep(50_000)
                after = try a.datapath.metrics()[.drop(.unknownPeer, .fromUnderlay)]?.packets ?? 0
            }
            #expect(after == before + 1, "unknown-peer drops: \(before) -> \(after)")
            let dropped = try events.poll(timeoutMs: 500)
            #expect(dropped.contains { $0.reason == .unknownPeer && $0.source == stranger && $0.ifindex == UInt32(a.underlay) },
                    "events: \(dropped)")

            // Counters of the successful paths, on both nodes.
            let ma = try a.datapath.metrics(), mb = try b.datapath.metrics()
            #expect((ma[.forward(.encap, .fromPod)]?.packets ?? 0) > 0)
            #expect((ma[.forward(.decap, .fromUnderlay)]?.packets ?? 0) > 0)
            #expect((mb[.forward(.decap, .fromUnderlay)]?.packets ?? 0) > 0)
            #expect(ma[.drop(.spoofedIP, .fromPod)] == nil && mb[.drop(.spoofedIP, .fromPod)] == nil)
        }
    }
}

@Suite("Datapath pinning and attachment", .serialized, .needsRoot)
struct DatapathLifecycleTests {
    @Test("a second load adopts the pinned maps; an incompatible pinned map is replaced")
    func adoption() throws {
        let fs = try TempBPFFS()
        defer { fs.remove() }
        let pins = fs.path + "/trellis"
        let ep = EndpointEntry(hostIfindex: 7, podMAC: DP.mac("02:00:00:00:00:07"), hostMAC: DP.mac("02:00:00:00:00:70"), identity: 9, policyID: 0)
        do {
            let first = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: pins)
            try first.setNodeConfig(NodeConfig(nodeIPv4: DP.ip("198.51.100.1"), underlayIfindex: 2, vni: 5, mode: .bridge))
            try first.upsertEndpoint(DP.ip("10.9.0.7"), ep)
            try first.upsertTunnel(DP.net("10.9.1.0/24"), nodeIP: DP.ip("198.51.100.2"))
            try first.upsertPeer(DP.ip("198.51.100.2"))
            try first.upsertIPCache(DP.net("10.9.0.0/16"), IPCacheEntry(identity: 77))
            try first.upsertPolicy(PolicyMapKey(endpoint: 3, direction: .ingress, peer: 77, ports: .ports(.tcp, PortPrefix(base: 8080, bits: 12))))
            #expect(first.replacedMaps.isEmpty)
        }
        let pinned = try FileManager.default.contentsOfDirectory(atPath: pins)
        #expect(Set(pinned) == Datapath.mapNames)

        let second = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: pins)
        #expect(second.replacedMaps.isEmpty)
        #expect(try second.endpoint(DP.ip("10.9.0.7")) == ep)
        #expect(try second.nodeConfig()?.mode == .bridge && second.nodeConfig()?.vni == 5)
        #expect(try second.tunnels().map { "\($0.0) \($0.1)" } == ["10.9.1.0/24 198.51.100.2"])
        #expect(try second.peers() == [DP.ip("198.51.100.2")])
        #expect(try second.ipcache().map { "\($0.0) \($0.1)" } == ["10.9.0.0/16 77"])
        #expect(try second.policyEntries().map(\.description) == ["ep 3 ingress peer 77 TCP/8080-8095"])
        #expect(try second.deleteEndpoint(DP.ip("10.9.0.7")))
        #expect(try second.deleteEndpoint(DP.ip("10.9.0.7")) == false)

        // An older layout pinned under a datapath map's name (value size 8 instead of 4).
        let peers = DatapathMap.peers.name
        try FileManager.default.removeItem(atPath: pins + "/" + peers)
        let fd = bpf_map_create(BPF_MAP_TYPE_HASH, peers, 4, 8, 16, nil)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(bpf_obj_pin(fd, pins + "/" + peers) == 0)
        let third = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: pins)
        #expect(third.replacedMaps == [peers])
        try third.upsertPeer(DP.ip("198.51.100.9"))
        #expect(try third.peers() == [DP.ip("198.51.100.9")])
    }

    @Test("a pin directory that is not on a bpffs is refused")
    func pinDirectoryMustBeBPFFS() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trld-notbpffs-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: DatapathError.self) {
            _ = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: dir)
        }
    }

    @Test("attach puts from_pod on ingress and to_pod on egress, replaces them in place; detach removes both")
    func attachReplaceDetach() throws {
        _ = DP.removeLeftoversOfDeadRuns
        let name = DP.namespaceName("attach", run: DP.newRunID())
        let ns = try NetworkNamespace.create(named: name)
        defer { try? NetworkNamespace.delete(named: name) }
        let nl = try Netlink(namespace: ns)
        try nl.addVethPair(name: "hv0", peerName: "pv0", peerNamespace: ns, mtu: 1500)
        let ifindex = try #require(try nl.link(named: "hv0")).index
        func attached(_ side: TCHook.Side) throws -> UInt32? {
            try ns.run { () throws -> UInt32? in try TCHook.attachedProgramID(ifindex: ifindex, side: side) }
        }

        let one = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: nil)
        try one.attachEndpoint(hostIfindex: ifindex, namespace: ns)
        let firstID = try #require(try attached(.ingress))
        let firstEgress = try #require(try attached(.egress))

        let two = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: nil)
        try two.attachEndpoint(hostIfindex: ifindex, namespace: ns)
        let secondID = try #require(try attached(.ingress))
        #expect(secondID != firstID, "re-attach replaced the program")
        #expect(try attached(.egress) != firstEgress, "re-attach replaced to_pod too")
        for side in ["ingress", "egress"] {
            let filters = DP.exec(name, ["tc", "filter", "show", "dev", "hv0", side])
            #expect(filters.output.components(separatedBy: "direct-action").count == 2, "one filter on \(side): \(filters.output)")
        }

        try two.detachEndpoint(hostIfindex: ifindex, namespace: ns)
        #expect(try attached(.ingress) == nil)
        #expect(try attached(.egress) == nil)
        try two.detachEndpoint(hostIfindex: ifindex, namespace: ns)   // idempotent
        try two.attachUnderlay(ifindex: ifindex, namespace: ns)
        #expect(try attached(.ingress) != nil)
        try two.detachUnderlay(ifindex: ifindex, namespace: ns)
        #expect(try attached(.ingress) == nil)
    }
}
