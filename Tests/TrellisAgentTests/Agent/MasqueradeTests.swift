import Foundation
import Testing
@testable import TrellisAgent
import TrellisNet
import TrellisNetlink
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }
private func mac(_ s: String) -> MACAddress { MACAddress(s)! }


extension AgentSuite {
    @Suite("Agent masquerade")
    struct MasqueradeTests {
        @Test("rules: per family, cluster set collapsed and including our own CIDRs; one atomic replace")
        func script() {
            let s = MasqueradeRules.script(enabled: true, podCIDRs: [net("10.244.1.0/24"), net("fd00:244:1::/64")],
                                           clusterCIDRs: [net("10.244.2.0/24"), net("10.244.0.0/16"), net("10.244.1.0/24"),
                                                          net("fd00:244:2::/64")])
            #expect(s == """
                table inet trellis
                delete table inet trellis
                table inet trellis {
                \tset cluster_v4 {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t\telements = { 10.244.0.0/16 }
                \t}
                \tset cluster_v6 {
                \t\ttype ipv6_addr
                \t\tflags interval
                \t\telements = { fd00:244:1::/64, fd00:244:2::/64 }
                \t}
                \tchain postrouting {
                \t\ttype nat hook postrouting priority srcnat; policy accept;
                \t\tip saddr 10.244.1.0/24 ip daddr != @cluster_v4 masquerade
                \t\tip6 saddr fd00:244:1::/64 ip6 daddr != @cluster_v6 masquerade
                \t}
                }

                """)
        }

        @Test("IPv4 only; disabled removes the table")
        func v4OnlyAndDisabled() {
            let s = MasqueradeRules.script(enabled: true, podCIDRs: [net("10.244.1.0/24")], clusterCIDRs: [])
            #expect(!s.contains("ip6") && !s.contains("cluster_v6"))
            #expect(s.contains("elements = { 10.244.1.0/24 }"))
            #expect(MasqueradeRules.script(enabled: false, podCIDRs: [net("10.244.1.0/24")], clusterCIDRs: [])
                    == "table inet trellis\ndelete table inet trellis\n")
        }

        @Test("collapse drops duplicates and contained networks, keeps adjacent ones")
        func collapse() {
            let c = MasqueradeRules.collapse([net("10.0.0.0/8"), net("10.1.0.0/16"), net("10.0.0.0/8"), net("11.0.0.0/8"),
                                              net("192.168.1.7/24")])
            #expect(c == [net("10.0.0.0/8"), net("11.0.0.0/8"), net("192.168.1.0/24")])
        }

        @Test("applied with nft inside a throw-away network namespace", .needsRoot,
              .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft"), "needs nft (Debian package nftables)"))
        func applyInNamespace() async throws {
            let name = "trlt-\(getpid())-masq-" + String(UInt32.random(in: 0..<UInt32.max), radix: 16)
            try NetworkNamespace.create(named: name)
            defer { try? NetworkNamespace.delete(named: name) }
            let applier = NftApplier(command: ["ip", "netns", "exec", name, "nft"])
            let first = MasqueradeRules.script(enabled: true, podCIDRs: [net("10.244.1.0/24"), net("fd00:244:1::/64")],
                                               clusterCIDRs: [net("10.244.0.0/16"), net("fd00:244::/48")])
            try await applier.apply(script: first)
            // Applied twice: the table is replaced, not duplicated.
            try await applier.apply(script: first)
            let listed = try await ExternalCommand.run(["ip", "netns", "exec", name, "nft", "list", "table", "inet", "trellis"])
            #expect(listed.status == 0, "\(listed.stderrText)")
            let text = listed.stdoutText
            #expect(text.contains("type nat hook postrouting priority srcnat; policy accept;"), "\(text)")
            #expect(text.contains("ip saddr 10.244.1.0/24 ip daddr != @cluster_v4 masquerade"), "\(text)")
            #expect(text.contains("ip6 saddr fd00:244:1::/64 ip6 daddr != @cluster_v6 masquerade"), "\(text)")
            #expect(text.contains("10.244.0.0/16"), "\(text)")
            #expect(text.components(separatedBy: "chain postrouting").count == 2, "\(text)")

            // New pod CIDR: replaced in one transaction.
            try await applier.apply(script: MasqueradeRules.script(enabled: true, podCIDRs: [net("10.244.9.0/24")], clusterCIDRs: []))
            let after = try await ExternalCommand.run(["ip", "netns", "exec", name, "nft", "list", "table", "inet", "trellis"]).stdoutText
            #expect(after.contains("ip saddr 10.244.9.0/24") && !after.contains("10.244.1.0/24") && !after.contains("ip6"), "\(after)")

            // Disabled: the table is gone (and removing it again is fine).
            let off = MasqueradeRules.script(enabled: false, podCIDRs: [], clusterCIDRs: [])
            try await applier.apply(script: off)
            try await applier.apply(script: off)
            let gone = try await ExternalCommand.run(["ip", "netns", "exec", name, "nft", "list", "tables"]).stdoutText
            #expect(!gone.contains("trellis"), "\(gone)")

            // A failing script reports nft's error.
            await #expect(throws: SubprocessError.self) { try await applier.apply(script: "table inet trellis {\n\tbogus\n}\n") }
        }
    }
}
