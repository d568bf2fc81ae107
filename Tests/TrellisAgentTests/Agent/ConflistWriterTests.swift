import Foundation
import Testing
@testable import TrellisAgent
import TrellisCNI
import TrellisJSON
import TrellisNet
import TrellisTestSupport

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }


extension AgentSuite {
    @Suite("Agent conflist")
    struct ConflistWriterTests {
        static func render(_ cidrs: [String] = ["10.244.1.0/24", "fd00:244:1::/64"], mtu: Int = 1450) -> JSONValue {
            ConflistWriter.render(mode: .ebpf, mtu: mtu, agentSocket: "/run/trellis/agent.sock",
                                  podCIDRs: cidrs.map(net), ipamDataDir: "/var/lib/cni/trellis")
        }

        @Test("content: exactly the documented shape, accepted by NetConf.parse")
        func content() throws {
            let c = Self.render()
            #expect(c.serialized == #"{"cniVersion":"1.1.0","name":"trellis","plugins":[{"type":"trellis","mode":"ebpf","mtu":1450,"agentSocket":"/run/trellis/agent.sock","ipam":{"ranges":[{"subnet":"10.244.1.0/24"},{"subnet":"fd00:244:1::/64"}],"dataDir":"/var/lib/cni/trellis"}}]}"#)
            let confs = try ConflistWriter.validate(c)
            #expect(confs.count == 1)
            let conf = confs[0]
            #expect(conf.cniVersion == "1.1.0" && conf.name == "trellis")
            #expect(conf.mode == .ebpf && conf.mtu == 1450)
            #expect(conf.agentSocket == "/run/trellis/agent.sock")
            #expect(conf.ranges.map(\.subnet) == [net("10.244.1.0/24"), net("fd00:244:1::/64")])
            #expect(conf.dataDir == "/var/lib/cni/trellis")
            let bridge = ConflistWriter.render(mode: .bridge, mtu: 1400, agentSocket: "/s", podCIDRs: [net("10.1.0.0/16")], ipamDataDir: "/d")
            #expect(try ConflistWriter.validate(bridge)[0].mode == .bridge)
        }

        @Test("writes atomically, re-writes only on change, and the file parses")
        func write() async throws {
            try await withTempDir("conflist") { dir in
                let writer = ConflistWriter(directory: dir.path + "/net.d", fileName: "10-trellis.conflist")
                #expect(try writer.write(Self.render()) == .written)
                let text = try #require(FileManager.default.contents(atPath: writer.path))
                #expect(try JSONValue.parse(Array(text)) == Self.render())
                var st = stat()
                #expect(stat(writer.path, &st) == 0 && st.st_mode & 0o777 == 0o644)
                let inode = st.st_ino

                #expect(try writer.write(Self.render()) == .unchanged)
                #expect(stat(writer.path, &st) == 0 && st.st_ino == inode)

                // A pod CIDR change: a new file replaces the old by rename (new inode), no temp left.
                #expect(try writer.write(Self.render(["10.244.7.0/24"])) == .written)
                #expect(stat(writer.path, &st) == 0 && st.st_ino != inode)
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/net.d") == ["10-trellis.conflist"])
                let now = try JSONValue.parse(Array(FileManager.default.contents(atPath: writer.path)!))
                #expect(try ConflistWriter.validate(now)[0].ranges.map(\.subnet) == [net("10.244.7.0/24")])
            }
        }

        @Test("an invalid conflist is never written")
        func invalidNotWritten() async throws {
            try await withTempDir("conflist") { dir in
                let writer = ConflistWriter(directory: dir.path, fileName: "10-trellis.conflist")
                // An MTU too small for IPv6.
                do {
                    try writer.write(Self.render(mtu: 1000))
                    Issue.record("wrote an invalid conflist")
                } catch let e as CNIError {
                    #expect(e.msg.contains("mtu"), "\(e)")
                }
                // Two IPv4 ranges.
                #expect(throws: CNIError.self) { try writer.write(Self.render(["10.1.0.0/24", "10.2.0.0/24"])) }
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
            }
        }
    }
}
