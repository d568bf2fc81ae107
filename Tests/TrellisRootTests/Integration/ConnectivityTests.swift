import Foundation
import Testing
import TrellisPlugin
import TrellisTestSupport

extension Integration {
    @Suite("Connectivity between pods and the node", .needsRoot)
    struct Connectivity {
        @Test("bridge mode, dual-stack")
        func bridgeMode() throws { try connectivity(.bridge) }

        @Test("ebpf mode, dual-stack")
        func ebpfMode() throws { try connectivity(.ebpf) }
    }

    @Suite("Concurrent invocations", .needsRoot)
    struct Concurrency {
        @Test("16 parallel ADDs, then 16 parallel DELs")
        func parallelAddDel() throws {
            try ITLab.with { lab in
                let count = 16
                let ids = (0..<count).map { String(format: "c%02d", $0) }
                var pods: [String] = []
                for i in 0..<count { pods.append(try lab.makePod(String(format: "p%02d", i))) }
                let conf = lab.conf(.bridge, ranges: IT.dualStack(14))

                // All 16 processes are started before the first is waited for.
                let adds = try zip(ids, pods).map { id, pod in
                    try lab.startPlugin(lab.cniEnv("ADD", containerID: id, netns: lab.netnsPath(pod), ifName: "eth0"),
                                        stdin: IT.json(conf))
                }.map { $0.pluginRun() }
                for (id, run) in zip(ids, adds) { #expect(run.ok, "ADD \(id): \(run)") }
                let v4 = adds.compactMap { $0.host(v6: false) }
                let v6 = adds.compactMap { $0.host(v6: true) }
                #expect(v4.count == count && Set(v4).count == count, "IPv4 addresses not distinct: \(v4.sorted())")
                #expect(v6.count == count && Set(v6).count == count, "IPv6 addresses not distinct: \(v6.sorted())")
                let expectedVeths = Set(ids.map { HostVethName.of(containerID: $0, ifName: "eth0") })
                #expect(Set(lab.hostVeths()) == expectedVeths, "\(lab.hostVeths())")
                let records = lab.ipamRecords()
                #expect(records.count == count, "\(records.keys.sorted())")
                #expect(Set(records.values.compactMap { $0.first?.split(separator: "/").first.map(String.init) }) == Set(v4))

                let dels = try zip(ids, pods).map { id, pod in
                    try lab.startPlugin(lab.cniEnv("DEL", containerID: id, netns: lab.netnsPath(pod), ifName: "eth0"),
                                        stdin: IT.json(conf))
                }.map { $0.pluginRun() }
                for (id, run) in zip(ids, dels) { #expect(run.ok, "DEL \(id): \(run)") }
                #expect(lab.hostVeths().isEmpty, "host veths left: \(lab.hostVeths())")
                #expect(lab.ipamRecords().isEmpty, "records left: \(lab.ipamRecords().keys.sorted())")
            }
        }
    }
}

/// Test 2: two pods; pod to pod, pod to gateway, pod to another address of the node.
private func connectivity(_ mode: Mode) throws {
    try ITLab.with { lab in
        let p1 = try lab.makePod("p1")
        let p2 = try lab.makePod("p2")
        let conf = lab.conf(mode, ranges: IT.dualStack(12))
        let a1 = lab.add("c1", pod: p1, conf: conf)
        let a2 = lab.add("c2", pod: p2, conf: conf)
        try #require(a1.ok, "ADD c1: \(a1)")
        try #require(a2.ok, "ADD c2: \(a2)")
        let pod1 = (try #require(a1.host(v6: false)), try #require(a1.host(v6: true)))
        let pod2 = (try #require(a2.host(v6: false)), try #require(a2.host(v6: true)))

        // An address of another interface of the node namespace.
        let ext = lab.addForeignDevice("ext0", in: lab.node, up: true)
        try #require(ext.exitCode == 0, "\(ext)")
        try #require(lab.exec(lab.node, "ip", "addr", "add", "192.168.12.1/32", "dev", "ext0").exitCode == 0)
        try #require(lab.exec(lab.node, "ip", "-6", "addr", "add", "fd00:ffff:12::1/128", "dev", "ext0", "nodad").exitCode == 0)

        let cases: [(String, String, String)] = [
            ("pod1 -> pod2 v4", p1, pod2.0), ("pod1 -> pod2 v6", p1, pod2.1),
            ("pod2 -> pod1 v4", p2, pod1.0), ("pod2 -> pod1 v6", p2, pod1.1),
            ("pod1 -> gateway v4", p1, "10.12.0.1"), ("pod1 -> gateway v6", p1, "fd00:12::1"),
            ("pod2 -> gateway v4", p2, "10.12.0.1"), ("pod2 -> gateway v6", p2, "fd00:12::1"),
            ("pod1 -> node's other interface v4", p1, "192.168.12.1"),
            ("pod1 -> node's other interface v6", p1, "fd00:ffff:12::1"),
        ]
        for (what, from, to) in cases {
            let r = lab.ping(from: from, to)
            #expect(r.exitCode == 0, "\(mode) \(what) (\(to)): \(r)")
        }
    }
}
