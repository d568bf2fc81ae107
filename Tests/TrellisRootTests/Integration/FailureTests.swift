import Foundation
import Testing
import TrellisNet
import TrellisNetlink
import TrellisPlugin
import TrellisTestSupport

extension Integration {
    @Suite("Failures leave nothing behind", .needsRoot)
    struct Failures {
        @Test("exhausted range: the third ADD fails with 101 and leaves nothing")
        func exhaustion() throws {
            try ITLab.with { lab in
                let pods = [try lab.makePod("p1"), try lab.makePod("p2"), try lab.makePod("p3")]
                let conf = lab.conf(.bridge, ranges: [
                    ["subnet": "10.15.0.0/29", "rangeStart": "10.15.0.2", "rangeEnd": "10.15.0.3"],
                    ["subnet": "fd00:15::/64"],
                ])
                let a1 = lab.add("c1", pod: pods[0], conf: conf)
                let a2 = lab.add("c2", pod: pods[1], conf: conf)
                #expect(a1.ok, "\(a1)")
                #expect(a2.ok, "\(a2)")
                #expect(Set([a1.host(v6: false), a2.host(v6: false)]) == ["10.15.0.2", "10.15.0.3"])

                let a3 = lab.add("c3", pod: pods[2], conf: conf)
                #expect(a3.exitCode != 0)
                #expect(a3.errorCode == 101, "\(a3)")
                #expect(a3.message.contains("10.15.0.0/29"), "the message should name the subnet: \(a3)")
                #expect(!lab.hostVeths().contains(HostVethName.of(containerID: "c3", ifName: "eth0")))
                #expect(lab.hostVeths().count == 2, "\(lab.hostVeths())")
                #expect(lab.linkNames(pods[2]) == ["lo"], "\(lab.linkNames(pods[2]))")
                #expect(lab.ipamRecords().keys.sorted() == ["c1/eth0", "c2/eth0"], "\(lab.ipamRecords())")
            }
        }

        @Test("ebpf: a route already holding the pod's address makes ADD fail with 100 and roll back")
        func rollbackAfterHostRouteConflict() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("p1")
                let conf = lab.conf(.ebpf, ranges: onlyDotTwo(16))
                let block = lab.exec(lab.node, "ip", "route", "add", "10.16.0.2/32", "dev", "lo")
                try #require(block.exitCode == 0, "\(block)")

                let add = lab.add("c1", pod: pod, conf: conf)
                #expect(add.exitCode != 0)
                #expect(add.errorCode == 100, "\(add)")
                expectNothingLeft(lab, containerID: "c1", pod: pod)

                try #require(lab.exec(lab.node, "ip", "route", "del", "10.16.0.2/32", "dev", "lo").exitCode == 0)
                let again = lab.add("c1", pod: pod, conf: conf)
                #expect(again.ok, "\(again)")
                #expect(again.address(v6: false) == "10.16.0.2/32", "the address was not released: \(again)")
            }
        }

        @Test("bridge: a pod that already has a default route makes ADD fail with 100 after the veth exists, and roll back")
        func rollbackAfterPodRouteConflict() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("p1")
                let conf = lab.conf(.bridge, ranges: onlyDotTwo(19))
                // Another interface of the pod holds the default route already.
                for args in [["ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1"],
                             ["ip", "link", "set", "x0", "up"], ["ip", "link", "set", "x1", "up"],
                             ["ip", "addr", "add", "172.16.19.1/24", "dev", "x0"],
                             ["ip", "route", "add", "default", "via", "172.16.19.254", "dev", "x0"]] {
                    let r = lab.exec(pod, args)
                    try #require(r.exitCode == 0, "\(args): \(r)")
                }

                let add = lab.add("c1", pod: pod, conf: conf)
                #expect(add.exitCode != 0)
                #expect(add.errorCode == 100, "\(add)")
                expectNothingLeft(lab, containerID: "c1", pod: pod)
                #expect(Set(lab.linkNames(pod)) == ["lo", "x0", "x1"], "the pod's own links must stay: \(lab.linkNames(pod))")

                try #require(lab.exec(pod, "ip", "route", "del", "default").exitCode == 0)
                let again = lab.add("c1", pod: pod, conf: conf)
                #expect(again.ok, "\(again)")
                #expect(again.address(v6: false) == "10.19.0.2/24", "the address was not released: \(again)")
            }
        }

        @Test("bridge: the bridge name taken by another kind of device fails ADD naming it, and releases the address")
        func bridgeNameTaken() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("p1")
                let conf = lab.conf(.bridge, ranges: onlyDotTwo(20))
                try #require(lab.addForeignDevice("trt0", in: lab.node).exitCode == 0)

                let add = lab.add("c1", pod: pod, conf: conf)
                #expect(add.exitCode != 0)
                #expect(add.errorCode == 100, "\(add)")
                #expect(add.message.contains("trt0"), "the message should name the device: \(add)")
                expectNothingLeft(lab, containerID: "c1", pod: pod)

                lab.removeDevice("trt0", in: lab.node)
                let again = lab.add("c1", pod: pod, conf: conf)
                #expect(again.ok, "\(again)")
                #expect(again.address(v6: false) == "10.20.0.2/24", "the address was not released: \(again)")
            }
        }

        @Test("ebpf: the hostDevice name taken by a bridge fails ADD naming it, and releases the address")
        func hostDeviceNameTaken() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("p1")
                let conf = lab.conf(.ebpf, ranges: onlyDotTwo(21))
                try #require(lab.addForeignDevice("trellis_host", in: lab.node, kind: .bridge).exitCode == 0)

                let add = lab.add("c1", pod: pod, conf: conf)
                #expect(add.exitCode != 0)
                #expect(add.errorCode == 100, "\(add)")
                #expect(add.message.contains("trellis_host"), "the message should name the device: \(add)")
                expectNothingLeft(lab, containerID: "c1", pod: pod)

                lab.removeDevice("trellis_host", in: lab.node)
                let again = lab.add("c1", pod: pod, conf: conf)
                #expect(again.ok, "\(again)")
                #expect(again.address(v6: false) == "10.21.0.2/32", "the address was not released: \(again)")
            }
        }

        @Test("errors through the binary: decode, environment, existing interface, unknown mode")
        func errors() throws {
            try ITLab.with { lab in
                let p1 = try lab.makePod("p1")
                let p2 = try lab.makePod("p2")
                let conf = lab.conf(.bridge, ranges: IT.dualStack(22))
                let env = lab.cniEnv("ADD", containerID: "c1", netns: lab.netnsPath(p1), ifName: "eth0")

                let invalid = lab.runPlugin(env, stdin: Data(#"{"cniVersion": "1.1.0", "name": "#.utf8))
                #expect(invalid.exitCode != 0)
                #expect(invalid.errorCode == 6, "invalid JSON: \(invalid)")

                var noID = env
                noID["CNI_CONTAINERID"] = nil
                let missing = lab.runPlugin(noID, conf: conf)
                #expect(missing.exitCode != 0)
                #expect(missing.errorCode == 4, "\(missing)")
                #expect(missing.message.contains("CNI_CONTAINERID"), "\(missing)")

                var badNetns = env
                let gone = lab.netnsPath("\(lab.id)-missing")
                badNetns["CNI_NETNS"] = gone
                let noNetns = lab.runPlugin(badNetns, conf: conf)
                #expect(noNetns.exitCode != 0)
                #expect(noNetns.errorCode == 4, "\(noNetns)")
                #expect(noNetns.message.contains(gone), "\(noNetns)")

                var unknownMode = conf
                unknownMode["mode"] = "vxlan"
                let mode = lab.runPlugin(env, conf: unknownMode)
                #expect(mode.exitCode != 0)
                #expect(mode.errorCode == 2, "\(mode)")
                #expect(mode.message.contains("vxlan"), "\(mode)")

                // The pod already has an eth0 (someone else's).
                try #require(lab.exec(p2, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0").exitCode == 0)
                let exists = lab.add("c2", pod: p2, conf: conf)
                #expect(exists.exitCode != 0)
                #expect(exists.errorCode == 103, "\(exists)")
                #expect(exists.message.contains("eth0"), "\(exists)")
                #expect(Set(lab.linkNames(p2)) == ["lo", "eth0", "peer0"], "the pod's eth0 must be left alone: \(lab.linkNames(p2))")

                // None of these created anything.
                #expect(lab.linkNames(lab.node) == ["lo"], "the node changed: \(lab.linkNames(lab.node))")
                #expect(lab.linkNames(p1) == ["lo"])
                #expect(lab.ipamRecords().isEmpty, "\(lab.ipamRecords())")
            }
        }
    }
}

/// Dual-stack ranges whose IPv4 range holds the single address `10.<n>.0.2`, so a later ADD
/// gets .2 only if a failed one released it.
private func onlyDotTwo(_ n: Int) -> [[String: Any]] {
    [["subnet": "10.\(n).0.0/24", "rangeStart": "10.\(n).0.2", "rangeEnd": "10.\(n).0.2"],
     ["subnet": "fd00:\(n)::/64"]]
}

/// After a failed ADD: no host veth, no interface in the pod, no allocation.
private func expectNothingLeft(_ lab: ITLab, containerID: String, pod: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
    let veth = HostVethName.of(containerID: containerID, ifName: "eth0")
    #expect(!lab.linkNames(lab.node).contains(veth), "host veth \(veth) left", sourceLocation: sourceLocation)
    #expect(!lab.linkNames(pod).contains("eth0"), "eth0 left in the pod", sourceLocation: sourceLocation)
    #expect(lab.ipamRecords().isEmpty, "allocation left: \(lab.ipamRecords())", sourceLocation: sourceLocation)
}
