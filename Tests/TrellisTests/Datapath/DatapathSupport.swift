import Foundation
import Testing
import TrellisCore
import TrellisDatapath
import TrellisNet
import TrellisNetlink
import TrellisPolicy
#if canImport(Glibc)
import Glibc
#endif

// Shared machinery of the datapath suites. Every root test works in network namespaces it
// creates (`trld-<test process PID>-<random>-<role>`) and removes on every exit path; maps are
// either not pinned at all or pinned in a bpffs the test mounts on a temporary folder and
// unmounts. Nothing touches the root namespace or /sys/fs/bpf.

enum DP {
    static let needsRoot = ConditionTrait.enabled(
        if: getuid() == 0, "needs root: loads BPF programs and creates network namespaces")

    /// The repository root (this file is Tests/TrellisTests/Datapath/DatapathSupport.swift).
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The compiled objects: `$TRELLIS_BPF_DIR`, else hack/build-bpf.sh is run (it only rebuilds
    /// what changed) and its output folder is used.
    static let objectDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["TRELLIS_BPF_DIR"], !dir.isEmpty { return dir }
        let r = run("/bin/bash", [repoRoot + "/hack/build-bpf.sh"], timeout: 120)
        if r.status != 0 { Issue.record("hack/build-bpf.sh failed: \(r.output)") }
        return repoRoot + "/.build/bpf"
    }()

    static var harnessObject: String { objectDirectory + "/tests/checksum_harness.bpf.o" }

    /// Runs a command to completion (or kills it after `timeout`), output and error together.
    @discardableResult
    static func run(_ exe: String, _ args: [String], timeout: TimeInterval = 30) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("trld-\(getpid())-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        guard let h = try? FileHandle(forWritingTo: out) else { return (-1, "cannot create \(out.path)") }
        p.standardOutput = h
        p.standardError = h
        do { try p.run() } catch { return (-1, "\(exe): \(error)") }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        p.waitUntilExit()
        try? h.close()
        let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        return (p.terminationStatus, text)
    }

    static let ipTool: String = {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "ip"
    }()

    /// `ip netns exec NAME args...`
    @discardableResult
    static func exec(_ ns: String, _ args: [String], timeout: TimeInterval = 20) -> (status: Int32, output: String) {
        run(ipTool, ["netns", "exec", ns] + args, timeout: timeout)
    }

    static func namespaceName(_ role: String, run id: String) -> String { "trld-\(getpid())-\(id)-\(role)" }
    static func newRunID() -> String { String(UInt32.random(in: 0..<UInt32.max), radix: 16) }

    /// Removes namespaces left behind by test processes that died before cleaning up.
    static let removeLeftoversOfDeadRuns: Void = {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: NetworkNamespace.defaultDirectory) else { return }
        for name in names where name.hasPrefix("trld-") {
            let parts = name.split(separator: "-")
            guard parts.count >= 2, let pid = Int32(parts[1]), pid != getpid() else { continue }
            if kill(pid, 0) != 0, errno == ESRCH { try? NetworkNamespace.delete(named: name) }
        }
    }()

    static func mac(_ s: String) -> MACAddress { MACAddress(s)! }
    static func ip(_ s: String) -> IPAddress { IPAddress(s)! }
    static func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
}

/// A bpffs mounted on a fresh temporary folder, unmounted and removed by `remove()`.
final class TempBPFFS {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("trld-bpffs-\(getpid())-\(DP.newRunID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("bpf", path, "bpf", 0, nil) == 0 else {
            let e = errno
            try? FileManager.default.removeItem(atPath: path)
            throw DatapathError("mount bpffs on \(path)", code: e, message: String(cString: strerror(e)))
        }
    }
    func remove() {
        umount2(path, Int32(MNT_DETACH))
        rmdir(path)
    }
}

/// One namespace with fake pod host veths and an underlay device, and a datapath loaded
/// without pinning: the setting of the BPF_PROG_TEST_RUN suites.
///
/// Node 198.51.100.1 (VNI 0x123456) with pods A (10.1.0.10, fd00:1::10 on host veth hA) and
/// B (10.1.0.20, fd00:1::20 on hB); remote CIDRs 10.2.0.0/24 and fd00:2::/64 on node
/// 198.51.100.2, which is a known peer; underlay ul0 with MTU 1500.
final class DPUnitLab {
    static let nodeIP = DP.ip("198.51.100.1")
    static let peerIP = DP.ip("198.51.100.2")
    static let strangerIP = DP.ip("198.51.100.66")
    static let vni: UInt32 = 0x123456
    static let podA4 = DP.ip("10.1.0.10"), podA6 = DP.ip("fd00:1::10")
    static let podB4 = DP.ip("10.1.0.20"), podB6 = DP.ip("fd00:1::20")
    static let remote4 = DP.ip("10.2.0.30"), remote6 = DP.ip("fd00:2::30")
    static let router4 = DP.ip("10.1.0.1"), router6 = DP.ip("fd00:1::1")
    static let podAMAC = DP.mac("02:00:00:00:0a:0a"), hostAMAC = DP.mac("02:00:00:00:a0:0a")
    static let podBMAC = DP.mac("02:00:00:00:0b:0b"), hostBMAC = DP.mac("02:00:00:00:b0:0b")
    static let gatewayMAC = hostAMAC
    static let underlayMAC = DP.mac("02:00:00:00:01:01"), peerMAC = DP.mac("02:00:00:00:02:02")
    static let remotePodMAC = DP.mac("02:00:00:00:0c:0c"), remoteHostMAC = DP.mac("02:00:00:00:c0:0c")
    static let policyA: EndpointID = 1, policyB: EndpointID = 2

    let name: String
    let ns: NetworkNamespace
    let datapath: Datapath
    let hostA: Int32, hostB: Int32, underlay: Int32
    /// The overlay device (the stack's way into the overlay; replies to it come back through it).
    let overlay: Int32, overlayMAC: MACAddress

    private init(mode: DatapathMode, routerIPv6: Bool) throws {
        _ = DP.removeLeftoversOfDeadRuns
        name = DP.namespaceName("unit", run: DP.newRunID())
        ns = try NetworkNamespace.create(named: name)
        do {
            let nl = try Netlink(namespace: ns)
            try nl.addVethPair(name: "hA", peerName: "pA", peerNamespace: ns, mtu: 1500)
            try nl.addVethPair(name: "hB", peerName: "pB", peerNamespace: ns, mtu: 1500)
            try nl.addVethPair(name: "ul0", peerName: "ul1", peerNamespace: ns, mtu: 1500)
            try nl.addVethPair(name: "ovl0", peerName: "ovl1", peerNamespace: ns, mtu: 1450)
            let ovl = try nl.link(named: "ovl0")!
            overlay = ovl.index
            overlayMAC = ovl.mac!
            hostA = try nl.link(named: "hA")!.index
            hostB = try nl.link(named: "hB")!.index
            underlay = try nl.link(named: "ul0")!.index
            datapath = try Datapath.load(objectDirectory: DP.objectDirectory, pinDirectory: nil)
            try datapath.setNodeConfig(NodeConfig(nodeIPv4: Self.nodeIP, underlayIfindex: underlay, vni: Self.vni,
                                                  mode: mode, routerIPv4: Self.router4,
                                                  routerIPv6: routerIPv6 ? Self.router6 : nil))
            try datapath.setOverlay(ifindex: overlay, mac: overlayMAC)
            // Pods no policy selects: allow-all entries (the suites on policy change them).
            try datapath.openPolicy(endpoint: Self.policyA)
            try datapath.openPolicy(endpoint: Self.policyB)
            let a = EndpointEntry(hostIfindex: hostA, podMAC: Self.podAMAC, hostMAC: Self.hostAMAC, identity: 100, policyID: Self.policyA)
            let b = EndpointEntry(hostIfindex: hostB, podMAC: Self.podBMAC, hostMAC: Self.hostBMAC, identity: 200, policyID: Self.policyB)
            try datapath.upsertEndpoint(Self.podA4, a)
            try datapath.upsertEndpoint(Self.podA6, a)
            try datapath.upsertEndpoint(Self.podB4, b)
            try datapath.upsertEndpoint(Self.podB6, b)
            try datapath.upsertTunnel(DP.net("10.2.0.0/24"), nodeIP: Self.peerIP)
            try datapath.upsertTunnel(DP.net("fd00:2::/64"), nodeIP: Self.peerIP)
            try datapath.upsertPeer(Self.peerIP)
        } catch {
            try? NetworkNamespace.delete(named: name)
            throw error
        }
    }

    static func with(mode: DatapathMode = .ebpf, routerIPv6: Bool = true, _ body: (DPUnitLab) throws -> Void) throws {
        let lab = try DPUnitLab(mode: mode, routerIPv6: routerIPv6)
        defer { try? NetworkNamespace.delete(named: lab.name) }
        try body(lab)
    }

    /// BPF_PROG_TEST_RUN of a datapath program, from a thread inside the lab's namespace.
    func run(_ program: String, _ packet: [UInt8], on ifindex: Int32?, cb: [UInt32] = [], mark: UInt32 = 0,
             checksumComplete: Bool = false) throws -> TestRunResult {
        try ns.run { () throws -> TestRunResult in
            try datapath.testRun(program: program, packet: packet, ingressIfindex: ifindex, cb: cb, mark: mark,
                                 checksumComplete: checksumComplete)
        }
    }

    /// Same, for a program of another object (a harness) loaded sharing the datapath's maps.
    func run(_ program: BPFProgram, _ packet: [UInt8], on ifindex: Int32?, cb: [UInt32] = []) throws -> TestRunResult {
        try ns.run { () throws -> TestRunResult in
            try program.testRun(packet: packet, ingressIfindex: ifindex, cb: cb)
        }
    }

    func count(_ key: MetricKey) throws -> UInt64 { try datapath.metrics()[key]?.packets ?? 0 }

    // MARK: frames

    /// A frame pod A sends (from its MAC to its gateway's).
    static func fromA(_ l3: [UInt8], type: UInt16 = Pkt.ethIPv4, srcMAC: MACAddress = podAMAC) -> [UInt8] {
        Pkt.ethernet(dst: gatewayMAC, src: srcMAC, type: type, l3)
    }

    static func udp4(from src: IPAddress = podA4, to dst: IPAddress, sport: UInt16 = 5555, dport: UInt16 = 53,
                     payload: [UInt8] = Array("hello trellis".utf8), tos: UInt8 = 0, df: Bool = true) -> [UInt8] {
        Pkt.ipv4(src: src, dst: dst, proto: Pkt.protoUDP, tos: tos, df: df,
                 Pkt.udp(src: src, dst: dst, sport: sport, dport: dport, payload))
    }

    static func udp6(from src: IPAddress = podA6, to dst: IPAddress, sport: UInt16 = 5555, dport: UInt16 = 53,
                     payload: [UInt8] = Array("hello trellis".utf8)) -> [UInt8] {
        Pkt.ipv6(src: src, dst: dst, nextHeader: Pkt.protoUDP, Pkt.udp(src: src, dst: dst, sport: sport, dport: dport, payload))
    }

    /// The inner frame a remote pod (10.2.0.30 / fd00:2::30) sends to `dst`, as the peer encapsulates it.
    static func remoteInner4(to dst: IPAddress = podA4, l4: [UInt8]? = nil, proto: UInt8 = Pkt.protoTCP) -> [UInt8] {
        let seg = l4 ?? Pkt.tcp(src: remote4, dst: dst, sport: 443, dport: 40001, flags: 0x12, [1, 2, 3, 4, 5])
        return Pkt.ethernet(dst: remoteHostMAC, src: remotePodMAC, type: Pkt.ethIPv4,
                            Pkt.ipv4(src: remote4, dst: dst, proto: proto, ttl: 63, seg))
    }

    static func remoteInner6(to dst: IPAddress = podA6) -> [UInt8] {
        Pkt.ethernet(dst: remoteHostMAC, src: remotePodMAC, type: Pkt.ethIPv6,
                     Pkt.ipv6(src: remote6, dst: dst, nextHeader: Pkt.protoTCP, hopLimit: 63,
                              Pkt.tcp(src: remote6, dst: dst, sport: 443, dport: 40001, flags: 0x12, [9, 8, 7])))
    }

    static func geneveIn(_ inner: [UInt8], from src: IPAddress = peerIP, vni: UInt32 = vni, dport: UInt16 = 6081,
                         version: UInt8 = 0, options: [UInt8] = [], flags: UInt8 = 0) -> [UInt8] {
        Pkt.geneveFrame(outerSrcMAC: peerMAC, outerDstMAC: underlayMAC, src: src, dst: nodeIP, dport: dport,
                        vni: vni, inner: inner, version: version, options: options, flags: flags)
    }
}

extension Datapath {
    /// The entries of a pod no policy selects (what the agent compiles for it): any peer, any
    /// protocol, both directions.
    func openPolicy(endpoint: EndpointID) throws {
        for d in PolicyDirection.allCases {
            try upsertPolicy(PolicyMapKey(endpoint: endpoint, direction: d, peer: ReservedIdentity.any, ports: .anyProtocol))
        }
    }

    /// Removes them: the pod is then isolated both ways with no rule (default deny).
    func closePolicy(endpoint: EndpointID) throws {
        for d in PolicyDirection.allCases {
            try deletePolicy(PolicyMapKey(endpoint: endpoint, direction: d, peer: ReservedIdentity.any, ports: .anyProtocol))
        }
    }
}
