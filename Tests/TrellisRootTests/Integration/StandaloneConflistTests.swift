import Foundation
import Testing
import TrellisTestSupport

extension Integration {
    /// deploy/cni/trellis-standalone.conflist is documented as working with nothing else
    /// running: its plugin entry, handed over as a runtime would (name and cniVersion injected),
    /// must wire two pods that reach each other and their gateway. Only the state folder is
    /// redirected, so the test writes nothing under /var/lib.
    @Suite("The shipped standalone conflist", .needsRoot)
    struct StandaloneConflist {
        @Test("wires pods as shipped")
        func wiresPodsAsShipped() throws {
            let file = URL(fileURLWithPath: #filePath)
                .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("deploy/cni/trellis-standalone.conflist")
            let list = try #require(IT.object(try Data(contentsOf: file)))
            let plugins = try #require(list["plugins"] as? [[String: Any]])
            #expect(plugins.count == 1, "standalone means trellis alone")
            var entry = try #require(plugins.first)
            #expect(entry["type"] as? String == "trellis")
            #expect(entry["agentSocket"] == nil, "the standalone config must not need the agent")
            entry["name"] = list["name"]
            entry["cniVersion"] = list["cniVersion"]

            try ITLab.with { lab in
                var ipam = try #require(entry["ipam"] as? [String: Any])
                ipam["dataDir"] = lab.dataDir
                entry["ipam"] = ipam
                let pods = [try lab.makePod("a"), try lab.makePod("b")]
                var addresses: [String] = []
                for (i, pod) in pods.enumerated() {
                    let run = lab.add("standalone\(i)", pod: pod, conf: entry)
                    try #require(run.ok, "ADD with the shipped conflist: \(run)")
                    addresses.append(try #require(run.host(v6: false)))
                    #expect(run.host(v6: true) != nil, "the shipped conflist is dual-stack")
                }
                #expect(lab.ping(from: pods[0], addresses[1]).exitCode == 0, "pod a -> pod b \(addresses[1])")
                #expect(lab.ping(from: pods[1], "10.244.0.1").exitCode == 0, "pod b -> gateway")
                for (i, pod) in pods.enumerated() {
                    #expect(lab.del("standalone\(i)", pod: pod, conf: entry).ok)
                }
                #expect(lab.hostVeths().isEmpty)
            }
        }
    }
}
