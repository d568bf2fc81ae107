import Foundation
import Testing
import TrellisPlugin
import TrellisTestSupport

extension Integration {
    @Suite("GC and STATUS (CNI 1.1)", .needsRoot)
    struct GCAndStatus {
        @Test("GC releases every attachment not listed and removes its host veth")
        func gc() throws {
            try ITLab.with { lab in
                let ids = ["c1", "c2", "c3"]
                var pods: [String] = []
                for i in 1...3 { pods.append(try lab.makePod("p\(i)")) }
                let conf = lab.conf(.bridge, ranges: IT.dualStack(23))
                var results: [[String: Any]] = []
                for (id, pod) in zip(ids, pods) {
                    let add = lab.add(id, pod: pod, conf: conf)
                    try #require(add.ok, "ADD \(id): \(add)")
                    results.append(try #require(add.object))
                }
                #expect(lab.hostVeths().count == 3)

                let gcEnv = lab.cniEnv("GC", withPath: false)
                #expect(gcEnv.keys.sorted() == ["CNI_COMMAND", "CNI_PATH"])
                var gcConf = conf
                gcConf["cni.dev/valid-attachments"] = [["containerID": "c2", "ifname": "eth0"]]
                let gc = lab.runPlugin(gcEnv, conf: gcConf)
                #expect(gc.ok, "GC: \(gc)")
                #expect(gc.stdout.isEmpty, "\(gc)")
                #expect(lab.ipamRecords().keys.sorted() == ["c2/eth0"], "\(lab.ipamRecords())")
                #expect(lab.hostVeths() == [HostVethName.of(containerID: "c2", ifName: "eth0")], "\(lab.hostVeths())")
                #expect(!lab.linkNames(pods[0]).contains("eth0"), "c1's pod end must go with its host veth")
                #expect(!lab.linkNames(pods[2]).contains("eth0"), "c3's pod end must go with its host veth")

                // The kept attachment is intact.
                let check = lab.check("c2", pod: pods[1], conf: conf, prevResult: results[1])
                #expect(check.ok, "CHECK of the kept attachment: \(check)")
                #expect(lab.ping(from: pods[1], "10.23.0.1").exitCode == 0, "the kept pod lost its network")

                // Without the list GC refuses to guess.
                let noList = lab.runPlugin(gcEnv, conf: conf)
                #expect(noList.exitCode != 0)
                #expect(noList.errorCode == 7, "\(noList)")
                #expect(noList.message.contains("cni.dev/valid-attachments"), "\(noList)")
                #expect(lab.ipamRecords().keys.sorted() == ["c2/eth0"], "a refused GC must not release anything")

                // GC is a 1.1.0 command.
                var old = gcConf
                old["cniVersion"] = "1.0.0"
                let oldGC = lab.runPlugin(gcEnv, conf: old)
                #expect(oldGC.errorCode == 1, "\(oldGC)")
                #expect(lab.ipamRecords().keys.sorted() == ["c2/eth0"])
            }
        }

        @Test("STATUS: ready, full range, bridge name taken, old version")
        func status() throws {
            try ITLab.with { lab in
                let statusEnv = lab.cniEnv("STATUS", withPath: false)
                let conf = lab.conf(.bridge, ranges: [
                    ["subnet": "10.24.0.0/29", "rangeStart": "10.24.0.2", "rangeEnd": "10.24.0.3"],
                    ["subnet": "fd00:24::/64"],
                ])

                let ready = lab.runPlugin(statusEnv, conf: conf)
                #expect(ready.ok, "STATUS on a fresh node: \(ready)")
                #expect(ready.stdout.isEmpty)

                let p1 = try lab.makePod("p1")
                let p2 = try lab.makePod("p2")
                try #require(lab.add("c1", pod: p1, conf: conf).ok)
                let halfFull = lab.runPlugin(statusEnv, conf: conf)
                #expect(halfFull.ok, "one address left: \(halfFull)")
                try #require(lab.add("c2", pod: p2, conf: conf).ok)

                let full = lab.runPlugin(statusEnv, conf: conf)
                #expect(full.exitCode != 0)
                #expect(full.errorCode == 50, "full range: \(full)")
                #expect(full.message.contains("10.24.0.0/29"), "\(full)")

                #expect(lab.del("c1", pod: p1, conf: conf).ok)
                let freed = lab.runPlugin(statusEnv, conf: conf)
                #expect(freed.ok, "after a DEL: \(freed)")

                // The bridge name taken by another kind of device.
                try #require(lab.addForeignDevice("trt9", in: lab.node).exitCode == 0)
                var taken = conf
                taken["bridge"] = "trt9"
                let blocked = lab.runPlugin(statusEnv, conf: taken)
                #expect(blocked.exitCode != 0)
                #expect(blocked.errorCode == 50, "bridge name taken: \(blocked)")
                #expect(blocked.message.contains("trt9"), "\(blocked)")

                // ebpf mode: the hostDevice name taken by a bridge.
                try #require(lab.addForeignDevice("trt_host", in: lab.node, kind: .bridge).exitCode == 0)
                var ebpf = lab.conf(.ebpf, ranges: IT.dualStack(25))
                ebpf["name"] = lab.network + "-ebpf"
                ebpf["hostDevice"] = "trt_host"
                let ebpfBlocked = lab.runPlugin(statusEnv, conf: ebpf)
                #expect(ebpfBlocked.exitCode != 0)
                #expect(ebpfBlocked.errorCode == 50, "hostDevice name taken: \(ebpfBlocked)")
                #expect(ebpfBlocked.message.contains("trt_host"), "\(ebpfBlocked)")
                lab.removeDevice("trt_host", in: lab.node)
                let ebpfReady = lab.runPlugin(statusEnv, conf: ebpf)
                #expect(ebpfReady.ok, "ebpf STATUS once the name is free: \(ebpfReady)")

                // STATUS is a 1.1.0 command.
                var old = conf
                old["cniVersion"] = "1.0.0"
                let oldStatus = lab.runPlugin(statusEnv, conf: old)
                #expect(oldStatus.exitCode != 0)
                #expect(oldStatus.errorCode == 1, "\(oldStatus)")
            }
        }
    }
}
