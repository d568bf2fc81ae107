import Foundation
import Testing
import TrellisNet
import TrellisNetlink
import TrellisPlugin
import TrellisTestSupport

extension Integration {
    @Suite("ADD, CHECK, DEL through the binary", .needsRoot)
    struct Lifecycle {
        @Test("bridge mode, dual-stack")
        func bridgeMode() throws { try addCheckDel(.bridge) }

        @Test("ebpf mode, dual-stack")
        func ebpfMode() throws { try addCheckDel(.ebpf) }

        @Test("the binary under test answers VERSION")
        func version() throws {
            try ITLab.with { lab in
                #expect(FileManager.default.isExecutableFile(atPath: IT.trellisBinary),
                        "no plugin binary at \(IT.trellisBinary) (set TRELLIS_BIN)")
                let r = lab.runPlugin(lab.cniEnv("VERSION"), stdin: Data(#"{"cniVersion": "1.0.0"}"#.utf8))
                #expect(r.ok, "\(r)")
                #expect(r.object?["cniVersion"] as? String == "1.0.0", "\(r)")
                #expect(r.object?["supportedVersions"] as? [String] == ["0.3.1", "0.4.0", "1.0.0", "1.1.0"], "\(r)")
            }
        }

        @Test("result encoding per cniVersion; CHECK needs 0.4.0")
        func resultPerVersion() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("p1")
                for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
                    let conf = lab.conf(.bridge, version: version, ranges: IT.dualStack(13))
                    let id = "c-\(version)"
                    let add = lab.add(id, pod: pod, conf: conf)
                    try #require(add.ok, "ADD \(version): \(add)")
                    let result = try #require(add.object)
                    #expect(result["cniVersion"] as? String == version)
                    let legacy = version.hasPrefix("0.")
                    #expect(add.ips.count == 2, "\(version): \(add)")
                    for ip in add.ips {
                        let address = ip["address"] as? String ?? ""
                        if legacy {
                            #expect(ip["version"] as? String == (address.contains(":") ? "6" : "4"), "\(version): \(ip)")
                        } else {
                            #expect(ip["version"] == nil, "\(version) must not tag ips: \(ip)")
                        }
                        #expect(ip["interface"] as? Int == 1, "\(version): \(ip)")
                    }
                    #expect(add.interfaces.count == 2, "\(version): \(add)")
                    for interface in add.interfaces {
                        if version == "1.1.0" {
                            #expect(interface["mtu"] as? Int == 1400, "\(version): \(interface)")
                        } else {
                            #expect(interface["mtu"] == nil, "\(version) has no interface mtu: \(interface)")
                        }
                    }

                    let check = lab.check(id, pod: pod, conf: conf, prevResult: result)
                    if version == "0.3.1" {
                        #expect(!check.ok && check.errorCode == 1, "CHECK in 0.3.1 must be refused: \(check)")
                        #expect(check.object?["cniVersion"] as? String == "0.3.1", "\(check)")
                    } else {
                        #expect(check.ok && check.stdout.isEmpty, "CHECK \(version): \(check)")
                    }

                    var delConf = conf
                    if !legacy || version == "0.4.0" { delConf["prevResult"] = result }
                    let del = lab.del(id, pod: pod, conf: delConf)
                    #expect(del.ok, "DEL \(version): \(del)")
                    #expect(lab.hostVeths().isEmpty, "\(version): host veth left after DEL")
                    #expect(lab.ipamRecords().isEmpty, "\(version): \(lab.ipamRecords())")
                }
            }
        }

        @Test("DEL after the pod's namespace is gone (CNI_NETNS unset or stale); DEL of unknown and repeated DEL")
        func delWithoutNetns() throws {
            try ITLab.with { lab in
                let p1 = try lab.makePod("p1")
                let p2 = try lab.makePod("p2")
                let conf = lab.conf(.bridge, ranges: IT.dualStack(17))
                let veth1 = HostVethName.of(containerID: "c1", ifName: "eth0")

                let add = lab.add("c1", pod: p1, conf: conf)
                try #require(add.ok, "\(add)")
                #expect(lab.hostVeths() == [veth1])
                #expect(lab.ipamRecords().keys.sorted() == ["c1/eth0"])

                // The runtime tore the sandbox down before calling DEL.
                try NetworkNamespace.delete(named: p1)
                let del = lab.del("c1", pod: nil, conf: conf)
                #expect(del.ok, "DEL without CNI_NETNS: \(del)")
                #expect(waitUntil { !lab.hostVeths().contains(veth1) }, "host veth \(veth1) still there")
                #expect(lab.ipamRecords().isEmpty, "address not released: \(lab.ipamRecords())")

                // CNI_NETNS still set, to the path of a namespace that no longer exists.
                let p3 = try lab.makePod("p3")
                let add3 = lab.add("c3", pod: p3, conf: conf)
                try #require(add3.ok, "\(add3)")
                try NetworkNamespace.delete(named: p3)
                let staleDel = lab.del("c3", pod: p3, conf: conf)
                #expect(staleDel.ok, "DEL with a stale CNI_NETNS: \(staleDel)")
                #expect(lab.hostVeths().isEmpty, "\(lab.hostVeths())")
                #expect(lab.ipamRecords().isEmpty, "\(lab.ipamRecords())")

                // A container that was never added.
                let ghost = lab.del("never-added", pod: p2, conf: conf)
                #expect(ghost.ok, "DEL of an unknown container: \(ghost)")
                let ghostNoNetns = lab.del("never-added", pod: nil, conf: conf)
                #expect(ghostNoNetns.ok, "DEL of an unknown container without netns: \(ghostNoNetns)")

                // DEL twice.
                let add2 = lab.add("c2", pod: p2, conf: conf)
                try #require(add2.ok, "\(add2)")
                var delConf = conf
                delConf["prevResult"] = add2.object
                let first = lab.del("c2", pod: p2, conf: delConf)
                let second = lab.del("c2", pod: p2, conf: delConf)
                #expect(first.ok, "first DEL: \(first)")
                #expect(second.ok, "second DEL: \(second)")
                #expect(lab.hostVeths().isEmpty)
                #expect(!lab.linkNames(p2).contains("eth0"))
                #expect(lab.ipamRecords().isEmpty, "\(lab.ipamRecords())")
            }
        }
    }
}

/// Polls `condition` for up to `timeout` seconds.
func waitUntil(timeout: TimeInterval = 3, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(50_000)
    }
}

/// Test 1: one pod through ADD, CHECK, a broken CHECK, DEL, and a second ADD.
private func addCheckDel(_ mode: Mode) throws {
    try ITLab.with { lab in
        let pod = try lab.makePod("p1")
        let conf = lab.conf(mode, ranges: IT.dualStack(11))
        let rootForwarding = (IT.rootSysctl("net.ipv4.ip_forward"), IT.rootSysctl("net.ipv6.conf.all.forwarding"))

        let add = lab.add("c1", pod: pod, conf: conf)
        try #require(add.ok, "ADD: \(add)")
        let result = try #require(add.object)
        let hostVethName = HostVethName.of(containerID: "c1", ifName: "eth0")
        let (v4, v6) = mode == .bridge ? ("10.11.0.2/24", "fd00:11::2/64") : ("10.11.0.2/32", "fd00:11::2/128")

        // The result.
        #expect(result["cniVersion"] as? String == "1.1.0")
        let interfaces = add.interfaces
        try #require(interfaces.count == 2, "\(add)")
        #expect(interfaces[0]["name"] as? String == hostVethName)
        #expect(interfaces[0]["sandbox"] == nil, "the host veth has no sandbox: \(interfaces[0])")
        #expect(interfaces[0]["mtu"] as? Int == 1400)
        #expect(interfaces[1]["name"] as? String == "eth0")
        #expect(interfaces[1]["sandbox"] as? String == lab.netnsPath(pod))
        #expect(interfaces[1]["mtu"] as? Int == 1400)
        let ips = add.ips
        #expect(ips.count == 2, "\(add)")
        let ip4 = ips.first { $0["address"] as? String == v4 }
        let ip6 = ips.first { $0["address"] as? String == v6 }
        #expect(ip4?["gateway"] as? String == "10.11.0.1", "\(add)")
        #expect(ip4?["interface"] as? Int == 1, "\(add)")
        #expect(ip6?["gateway"] as? String == "fd00:11::1", "\(add)")
        #expect(ip6?["interface"] as? Int == 1, "\(add)")
        let routes = add.routes.map { "\($0["dst"] as? String ?? "?") via \($0["gw"] as? String ?? "-")" }
        #expect(routes.contains("0.0.0.0/0 via 10.11.0.1"), "\(routes)")
        #expect(routes.contains("::/0 via fd00:11::1"), "\(routes)")

        // Inside the pod.
        do {
            let nl = try lab.netlink(pod)
            let eth0 = try #require(try nl.link(named: "eth0"), "no eth0 in the pod")
            #expect(eth0.kind == "veth")
            #expect(eth0.isUp)
            #expect(eth0.mtu == 1400)
            #expect(eth0.mac?.description == interfaces[1]["mac"] as? String)
            let addresses = try nl.addresses(index: eth0.index)
            #expect(addresses.contains(IPNetwork(v4)!), "\(addresses)")
            #expect(addresses.contains(IPNetwork(v6)!), "\(addresses)")
            let podRoutes = try nl.routes()
            #expect(podRoutes.contains { $0.destination == IPNetwork("0.0.0.0/0")! && $0.gateway == IPAddress("10.11.0.1")!
                && $0.outputIndex == eth0.index }, "no IPv4 default route: \(podRoutes)")
            #expect(podRoutes.contains { $0.destination == IPNetwork("::/0")! && $0.gateway == IPAddress("fd00:11::1")!
                && $0.outputIndex == eth0.index }, "no IPv6 default route: \(podRoutes)")
            if mode == .ebpf {
                #expect(podRoutes.contains { $0.destination == IPNetwork("10.11.0.1/32")! && $0.gateway == nil
                    && $0.outputIndex == eth0.index }, "no route to the IPv4 gateway: \(podRoutes)")
                #expect(podRoutes.contains { $0.destination == IPNetwork("fd00:11::1/128")! && $0.gateway == nil
                    && $0.outputIndex == eth0.index }, "no route to the IPv6 gateway: \(podRoutes)")
                // The gateways resolve, permanently, to the host veth's MAC.
                let neighbours = lab.exec(pod, "ip", "neigh", "show", "dev", "eth0").stdout
                let hostMAC = (interfaces[0]["mac"] as? String ?? "?").lowercased()
                for gw in ["10.11.0.1", "fd00:11::1"] {
                    let line = neighbours.split(separator: "\n").first { $0.hasPrefix(gw + " ") }.map(String.init) ?? ""
                    #expect(line.contains(hostMAC) && line.contains("PERMANENT"), "neighbour \(gw): \(neighbours)")
                }
            }
        }

        // On the node.
        do {
            let nl = try lab.netlink(lab.node)
            let hostVeth = try #require(try nl.link(named: hostVethName), "no host veth \(hostVethName)")
            #expect(hostVeth.kind == "veth")
            #expect(hostVeth.isUp)
            // GRO on the host veth (its receive path on NAPI: the same-node speed-up).
            let features = lab.exec(lab.node, ["ethtool", "-k", hostVethName])
            #expect(features.stdout.contains("generic-receive-offload: on"), "\(features)")
            #expect(hostVeth.mtu == 1400)
            #expect(hostVeth.mac?.description == interfaces[0]["mac"] as? String)
            switch mode {
            case .bridge:
                let bridge = try #require(try nl.link(named: "trt0"), "no bridge trt0")
                #expect(bridge.kind == "bridge")
                #expect(bridge.isUp)
                #expect(hostVeth.masterIndex == bridge.index, "host veth is not a port of trt0")
                let gateways = try nl.addresses(index: bridge.index)
                #expect(gateways.contains(IPNetwork("10.11.0.1/24")!), "\(gateways)")
                #expect(gateways.contains(IPNetwork("fd00:11::1/64")!), "\(gateways)")
            case .ebpf:
                #expect(try nl.link(named: "trt0") == nil, "ebpf mode must not create a bridge")
                #expect(hostVeth.masterIndex == 0)
                // The hostDevice is one end of a veth pair (docs/cni-config.md), both ends up.
                let device = try #require(try nl.link(named: "trellis_host"), "no hostDevice trellis_host")
                #expect(device.kind == "veth")
                #expect(device.isUp)
                let peer = try #require(try nl.link(named: "trellis_net"), "no hostDevice peer trellis_net")
                #expect(peer.kind == "veth")
                #expect(peer.isUp)
                let gateways = try nl.addresses(index: device.index)
                #expect(gateways.contains(IPNetwork("10.11.0.1/32")!), "\(gateways)")
                #expect(gateways.contains(IPNetwork("fd00:11::1/128")!), "\(gateways)")
                let nodeRoutes = try nl.routes()
                #expect(nodeRoutes.contains { $0.destination == IPNetwork("10.11.0.2/32")! && $0.outputIndex == hostVeth.index },
                        "no /32 route to the pod: \(nodeRoutes)")
                #expect(nodeRoutes.contains { $0.destination == IPNetwork("fd00:11::2/128")! && $0.outputIndex == hostVeth.index },
                        "no /128 route to the pod: \(nodeRoutes)")
            }
        }
        #expect(lab.exec(lab.node, "sysctl", "-n", "net.ipv4.ip_forward").stdout.contains("1"))
        #expect(lab.exec(lab.node, "sysctl", "-n", "net.ipv6.conf.all.forwarding").stdout.contains("1"))
        #expect((IT.rootSysctl("net.ipv4.ip_forward"), IT.rootSysctl("net.ipv6.conf.all.forwarding")) == rootForwarding,
                "the root namespace's forwarding changed")
        let allocated = mode == .bridge ? [v4, v6] : ["10.11.0.2/24", "fd00:11::2/64"]
        #expect(lab.ipamRecords()["c1/eth0"] == allocated, "\(lab.ipamRecords())")

        // CHECK with the result.
        let check = lab.check("c1", pod: pod, conf: conf, prevResult: result)
        #expect(check.ok, "CHECK: \(check)")
        #expect(check.stdout.isEmpty)

        // CHECK after an address was removed inside the pod.
        let removed = lab.exec(pod, "ip", "addr", "del", v4, "dev", "eth0")
        try #require(removed.exitCode == 0, "\(removed)")
        let broken = lab.check("c1", pod: pod, conf: conf, prevResult: result)
        #expect(broken.exitCode != 0)
        #expect(broken.errorCode == 102, "\(broken)")
        #expect(broken.message.contains("10.11.0.2"), "the message should name the address: \(broken)")

        // DEL releases everything.
        var delConf = conf
        delConf["prevResult"] = result
        let del = lab.del("c1", pod: pod, conf: delConf)
        #expect(del.ok, "DEL: \(del)")
        #expect(!lab.linkNames(lab.node).contains(hostVethName), "host veth left: \(lab.linkNames(lab.node))")
        #expect(!lab.linkNames(pod).contains("eth0"))
        #expect(lab.ipamRecords()["c1/eth0"] == nil, "\(lab.ipamRecords())")
        if mode == .ebpf {
            let nodeRoutes = try lab.netlink(lab.node).routes()
            #expect(!nodeRoutes.contains { $0.destination == IPNetwork("10.11.0.2/32")! }, "host route left: \(nodeRoutes)")
        }

        // And the pod can be added again.
        let again = lab.add("c2", pod: pod, conf: conf)
        #expect(again.ok, "second ADD: \(again)")
        #expect(again.host(v6: false)?.hasPrefix("10.11.0.") == true, "\(again)")
        #expect(lab.ipamRecords().keys.sorted() == ["c2/eth0"], "\(lab.ipamRecords())")
    }
}
