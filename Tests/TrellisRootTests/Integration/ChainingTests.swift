import Foundation
import Testing
import TrellisPlugin
import TrellisTestSupport

extension Integration {
    @Suite("Chaining with the reference plugins", .needsRoot,
           .enabled(if: FileManager.default.isExecutableFile(atPath: IT.referencePlugins + "/portmap")
                    && FileManager.default.isExecutableFile(atPath: IT.referencePlugins + "/bandwidth"),
                    "needs the reference plugins portmap and bandwidth in /usr/lib/cni"))
    struct Chaining {
        @Test("trellis -> portmap -> bandwidth: ADD, traffic through the host port, CHECK, DEL in reverse")
        func trellisPortmapBandwidth() throws {
            try ITLab.with { lab in
                let pod = try lab.makePod("p1")
                let portmap = IT.referencePlugins + "/portmap"
                let bandwidth = IT.referencePlugins + "/bandwidth"
                let version = "1.0.0"   // the reference plugins 1.1.1 stop at 1.0.0
                let conf = lab.conf(.bridge, version: version, ranges: IT.dualStack(18))
                let hostVeth = HostVethName.of(containerID: "c1", ifName: "eth0")

                let add = lab.add("c1", pod: pod, conf: conf)
                try #require(add.ok, "trellis ADD: \(add)")
                let trellisResult = try #require(add.object)

                let mappings: [[String: Any]] = [["hostPort": 18080, "containerPort": 80, "protocol": "tcp"]]
                var portmapConf: [String: Any] = [
                    "cniVersion": version, "name": lab.network, "type": "portmap",
                    "capabilities": ["portMappings": true],
                    "runtimeConfig": ["portMappings": mappings],
                ]
                portmapConf["prevResult"] = trellisResult
                let pm = lab.add("c1", pod: pod, conf: portmapConf, plugin: portmap)
                try #require(pm.ok, "portmap ADD: \(pm)")
                let portmapResult = try #require(pm.object)

                let rates: [String: Any] = ["ingressRate": 1_000_000, "ingressBurst": 100_000,
                                            "egressRate": 1_000_000, "egressBurst": 100_000]
                var bandwidthConf: [String: Any] = [
                    "cniVersion": version, "name": lab.network, "type": "bandwidth",
                    "capabilities": ["bandwidth": true],
                    "runtimeConfig": ["bandwidth": rates],
                ]
                bandwidthConf["prevResult"] = portmapResult
                let bw = lab.add("c1", pod: pod, conf: bandwidthConf, plugin: bandwidth)
                try #require(bw.ok, "bandwidth ADD: \(bw)")
                let finalResult = try #require(bw.object)

                // A TCP server in the pod, reached through the node's host port.
                let line = "hello from \(lab.id)"
                let server = try lab.startBackground(pod, ["nc", "-l", "-p", "80", "-q", "1"], stdin: Data((line + "\n").utf8))
                defer { server.stop() }
                let listening = waitUntil(timeout: 5) {
                    lab.exec(pod, "cat", "/proc/net/tcp").stdout.split(separator: "\n").contains {
                        $0.contains(":0050 00000000:0000 0A")
                    }
                }
                try #require(listening, "nc is not listening in the pod: \(server.stderr)")
                let client = lab.exec(lab.node, ["nc", "-w", "3", "10.18.0.1", "18080"], timeout: 10)
                #expect(client.stdout.contains(line),
                        "nothing through 10.18.0.1:18080: \(client); nat: \(lab.exec(lab.node, "iptables", "-t", "nat", "-S").stdout)")
                server.stop()

                // bandwidth: a tbf on the host veth.
                let qdiscs = lab.exec(lab.node, "tc", "qdisc", "show", "dev", hostVeth)
                #expect(qdiscs.stdout.contains("tbf"), "\(qdiscs)")

                // CHECK of trellis with the chain's final result.
                let check = lab.check("c1", pod: pod, conf: conf, prevResult: finalResult)
                #expect(check.ok, "CHECK through the chain: \(check)")

                // DEL in reverse order, each with the final result.
                bandwidthConf["prevResult"] = finalResult
                portmapConf["prevResult"] = finalResult
                var trellisDel = conf
                trellisDel["prevResult"] = finalResult
                let delBW = lab.del("c1", pod: pod, conf: bandwidthConf, plugin: bandwidth)
                let delPM = lab.del("c1", pod: pod, conf: portmapConf, plugin: portmap)
                let delTrellis = lab.del("c1", pod: pod, conf: trellisDel)
                #expect(delBW.ok, "bandwidth DEL: \(delBW)")
                #expect(delPM.ok, "portmap DEL: \(delPM)")
                #expect(delTrellis.ok, "trellis DEL: \(delTrellis)")

                let nat = lab.exec(lab.node, "iptables", "-t", "nat", "-S").stdout
                #expect(!nat.contains("18080"), "portmap rules left: \(nat)")
                #expect(!nat.contains("-N CNI-DN-"), "portmap chain left: \(nat)")
                #expect(lab.hostVeths().isEmpty, "host veth left")
                #expect(!lab.linkNames(lab.node).contains { $0.hasPrefix("bwp") }, "bandwidth ifb left: \(lab.linkNames(lab.node))")
                #expect(lab.ipamRecords().isEmpty, "\(lab.ipamRecords())")
            }
        }
    }
}
