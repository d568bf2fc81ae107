import Testing
@testable import TrellisAgent
import TrellisNet
import TrellisTestSupport

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }


extension AgentSuite {
    @Suite("Agent config")
    struct AgentConfigTests {
        @Test("an empty file gives every documented default")
        func defaults() throws {
            for text in ["", "# nothing\n", "---\n"] {
                let c = try AgentConfig.parse(yaml: text)
                #expect(c == AgentConfig.defaults)
            }
            let c = AgentConfig.defaults
            #expect(c.nodeName == Posix.hostname().lowercased())
            #expect(c.source == .manifests)
            #expect(c.manifestsDir == "/etc/trellis/manifests")
            #expect(c.bpfObjectDir == nil)
            #expect(c.bpfObjectSearchPath.last == "/usr/lib/trellis/bpf")
            #expect(c.bpfObjectSearchPath.count == 2)
            #expect(c.bpffsDir == "/sys/fs/bpf/trellis")
            #expect(c.socketPath == "/run/trellis/agent.sock")
            #expect(c.cniConfDir == "/etc/cni/net.d")
            #expect(c.cniConfName == "10-trellis.conflist")
            #expect(c.conflistPath == "/etc/cni/net.d/10-trellis.conflist")
            #expect(c.ipamDataDir == "/var/lib/cni/trellis")
            #expect(c.underlayDevice == "eth0")
            #expect(c.datapathMode == .ebpf)
            #expect(c.vni == 1)
            #expect(c.mtu == 0)
            #expect(c.clusterCIDRs.isEmpty)
            #expect(c.masquerade == true)
            #expect(c.healthAddress.description == "127.0.0.1:9876")
            #expect(c.logLevel == .info)
        }

        @Test("the printed default config parses back to the defaults and names every key")
        func defaultYAMLRoundTrip() throws {
            #expect(try AgentConfig.parse(yaml: AgentConfig.defaultYAML) == AgentConfig.defaults)
            for key in AgentConfig.keys {
                #expect(AgentConfig.defaultYAML.contains("\(key):"), "default config lacks \(key)")
            }
        }

        @Test("every key set")
        func everyKey() throws {
            let c = try AgentConfig.parse(yaml: """
                nodeName: node-a.example
                source: kubernetes
                manifestsDir: /tmp/m/
                bpfObjectDir: /opt/trellis/bpf
                bpffsDir: /sys/fs/bpf/lab-a
                socketPath: /tmp/lab-a/agent.sock
                cniConfDir: /tmp/lab-a/net.d
                cniConfName: 05-trellis.conflist
                ipamDataDir: /tmp/lab-a/ipam
                underlayDevice: ul0
                datapathMode: bridge
                vni: 16777215
                mtu: 1400
                clusterCIDRs: [10.244.0.0/16, "fd00:244::/48"]
                masquerade: false
                healthAddress: "[::1]:19876"
                logLevel: debug
                """)
            #expect(c.nodeName == "node-a.example")
            #expect(c.source == .kubernetes)
            #expect(c.manifestsDir == "/tmp/m")
            #expect(c.bpfObjectDir == "/opt/trellis/bpf")
            #expect(c.bpfObjectSearchPath == ["/opt/trellis/bpf"])
            #expect(c.bpffsDir == "/sys/fs/bpf/lab-a")
            #expect(c.socketPath == "/tmp/lab-a/agent.sock")
            #expect(c.cniConfDir == "/tmp/lab-a/net.d")
            #expect(c.cniConfName == "05-trellis.conflist")
            #expect(c.ipamDataDir == "/tmp/lab-a/ipam")
            #expect(c.underlayDevice == "ul0")
            #expect(c.datapathMode == .bridge)
            #expect(c.vni == 16_777_215)
            #expect(c.mtu == 1400)
            #expect(c.clusterCIDRs == [net("10.244.0.0/16"), net("fd00:244::/48")])
            #expect(c.masquerade == false)
            #expect(c.healthAddress == AgentConfig.ListenAddress(host: ip("::1"), port: 19876))
            #expect(c.logLevel == .debug)
        }

        @Test("pod MTU: configured, or underlay minus 50")
        func podMTU() throws {
            #expect(AgentConfig.defaults.podMTU(underlayMTU: 1500) == 1450)
            #expect(try AgentConfig.parse(yaml: "mtu: 1300").podMTU(underlayMTU: 9000) == 1300)
        }

        @Test("each bad value is an error naming the key and the value", arguments: [
            ("nodeName: Node_A", "nodeName", "\"Node_A\""),
            ("nodeName: \"\"", "nodeName", "empty"),
            ("nodeName: 12", "nodeName", "expected a string, got 12"),
            ("source: etcd", "source", "\"etcd\""),
            ("manifestsDir: etc/trellis", "manifestsDir", "\"etc/trellis\" is not an absolute path"),
            ("bpfObjectDir: bpf", "bpfObjectDir", "\"bpf\" is not an absolute path"),
            ("bpffsDir: [a]", "bpffsDir", "expected a string, got a list"),
            ("socketPath: /" + String(repeating: "s", count: 120), "socketPath", "at most 107"),
            ("cniConfDir: net.d", "cniConfDir", "\"net.d\""),
            ("cniConfName: 10-trellis.conf", "cniConfName", "\"10-trellis.conf\""),
            ("cniConfName: a/b.conflist", "cniConfName", "\"a/b.conflist\""),
            ("ipamDataDir: ./ipam", "ipamDataDir", "\"./ipam\""),
            ("underlayDevice: a-very-long-device-name", "underlayDevice", "at most 15 bytes"),
            ("underlayDevice: \"eth 0\"", "underlayDevice", "whitespace"),
            ("datapathMode: vxlan", "datapathMode", "\"vxlan\" is not a datapath mode"),
            ("vni: 16777216", "vni", "16777216 is out of range"),
            ("vni: -1", "vni", "-1 is out of range"),
            ("vni: one", "vni", "expected an integer, got \"one\""),
            ("vni: 1.5", "vni", "expected an integer, got 1.5"),
            ("mtu: 100", "mtu", "100 is out of range"),
            ("mtu: 70000", "mtu", "70000 is out of range"),
            ("clusterCIDRs: 10.0.0.0/8", "clusterCIDRs", "expected a list"),
            ("clusterCIDRs: [10.0.0.0/8, banana]", "clusterCIDRs[1]", "\"banana\" is not a CIDR"),
            ("clusterCIDRs: [10.1.2.3/8]", "clusterCIDRs[0]", "host bits set; the network is 10.0.0.0/8"),
            ("masquerade: sometimes", "masquerade", "expected true or false, got \"sometimes\""),
            ("healthAddress: localhost:9876", "healthAddress", "\"localhost:9876\""),
            ("healthAddress: \"::1:9876\"", "healthAddress", "\"::1:9876\""),
            ("healthAddress: 127.0.0.1:99999", "healthAddress", "\"127.0.0.1:99999\""),
            ("logLevel: verbose", "logLevel", "\"verbose\" is not a log level"),
            ("nodename: a", "nodename", "unknown key; did you mean nodeName?"),
            ("colour: blue", "colour", "unknown key"),
        ])
        func badValue(_ yaml: String, _ key: String, _ fragment: String) {
            do {
                let c = try AgentConfig.parse(yaml: yaml)
                Issue.record("accepted \(yaml): \(c)")
            } catch {
                #expect(error.key == key, "\(error)")
                #expect(error.description.contains(fragment), "\(error)")
                #expect(error.description.hasPrefix("config: \(key): "), "\(error)")
            }
        }

        @Test("not a mapping, not YAML")
        func notAMapping() {
            #expect(throws: AgentConfigError.self) { try AgentConfig.parse(yaml: "- a\n- b\n") }
            do {
                _ = try AgentConfig.parse(yaml: "nodeName: [unclosed\n")
                Issue.record("accepted broken YAML")
            } catch {
                #expect(error.description.contains("not valid YAML"), "\(error)")
            }
        }

        @Test("load names the file; a missing file is an error")
        func loadNamesFile() async throws {
            try await withTempDir { dir in
                dir.write("agent.yaml", "vni: 7\nunderlayDevice: ul0\n")
                let c = try AgentConfig.load(path: dir.file("agent.yaml"))
                #expect(c.vni == 7 && c.underlayDevice == "ul0")
                dir.write("bad.yaml", "mtu: 10\n")
                do {
                    _ = try AgentConfig.load(path: dir.file("bad.yaml"))
                    Issue.record("accepted mtu 10")
                } catch {
                    #expect("\(error)".hasPrefix("config \(dir.file("bad.yaml")): mtu: 10 is out of range"), "\(error)")
                }
                #expect(throws: AgentConfigError.self) { try AgentConfig.load(path: dir.file("missing.yaml")) }
            }
        }

        @Test("listen addresses")
        func listenAddresses() {
            #expect(AgentConfig.ListenAddress("0.0.0.0:80")?.description == "0.0.0.0:80")
            #expect(AgentConfig.ListenAddress("[fd00::1]:9876")?.description == "[fd00::1]:9876")
            #expect(AgentConfig.ListenAddress("127.0.0.1:0")?.port == 0)
            for bad in ["127.0.0.1", ":80", "[::1]80", "127.0.0.1:+80", "127.0.0.1:08x"] {
                #expect(AgentConfig.ListenAddress(bad) == nil, "\(bad)")
            }
        }
    }
}
