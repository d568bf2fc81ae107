import Foundation
import Testing
import TrellisNet
@testable import TrellisCNI

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }

@Suite struct CNIResultTests {
    /// Uses every field, including the 1.1-only ones.
    static let full = CNIResult(
        interfaces: [
            .init(name: "veth1a2b", mac: "AA:BB:CC:00:11:22", mtu: 1450),
            .init(name: "eth0", mac: "0a:58:0a:f4:01:05", mtu: 1450, sandbox: "/var/run/netns/cni-1",
                  socketPath: "/run/vhost.sock", pciID: "0000:03:00.1"),
        ],
        ips: [
            .init(address: net("10.244.1.5/24"), gateway: ip("10.244.1.1"), interface: 1),
            .init(address: net("fd00:10::5/64"), gateway: ip("fd00:10::1"), interface: 1),
            .init(address: net("192.168.7.9/32")),
        ],
        routes: [
            .init(dst: net("0.0.0.0/0"), gw: ip("10.244.1.1"), mtu: 1400, advmss: 1360, priority: 100, table: 254, scope: 0),
            .init(dst: net("::/0")),
        ],
        dns: .init(nameservers: ["10.96.0.10"], domain: "cluster.local",
                   search: ["default.svc.cluster.local", "svc.cluster.local"], options: ["ndots:5"]))

    /// What survives a round trip through `version`: 1.1-only fields are not written before 1.1.0.
    static func expectedAfterRoundTrip(_ version: String) -> CNIResult {
        guard version != "1.1.0" else { return full }
        var r = full
        for i in r.interfaces.indices {
            r.interfaces[i].mtu = nil
            r.interfaces[i].socketPath = nil
            r.interfaces[i].pciID = nil
        }
        r.routes = r.routes.map { CNIResult.Route(dst: $0.dst, gw: $0.gw) }
        return r
    }

    @Test(arguments: CNIVersionInfo.supported)
    func roundTrip(version: String) throws {
        let data = try Self.full.json(version: version)
        #expect(try CNIResult.decode(data, version: version) == Self.expectedAfterRoundTrip(version))
    }

    @Test(arguments: CNIVersionInfo.supported)
    func keysPerVersion(version: String) throws {
        let legacy = version.hasPrefix("0.")
        let is11 = version == "1.1.0"
        let o = CNITestSupport.object(try Self.full.json(version: version))
        #expect(Set(o.keys) == ["cniVersion", "interfaces", "ips", "routes", "dns"])
        #expect(o["cniVersion"] as? String == version)

        let interfaces = try #require(o["interfaces"] as? [[String: Any]])
        #expect(Set(interfaces[0].keys) == (is11 ? ["name", "mac", "mtu"] : ["name", "mac"]))
        #expect(Set(interfaces[1].keys) == (is11 ? ["name", "mac", "mtu", "sandbox", "socketPath", "pciID"]
                                                 : ["name", "mac", "sandbox"]))
        #expect(interfaces[0]["mac"] as? String == "AA:BB:CC:00:11:22")
        if is11 {
            #expect(interfaces[1]["mtu"] as? Int == 1450)
            #expect(interfaces[1]["pciID"] as? String == "0000:03:00.1")
        }

        let ips = try #require(o["ips"] as? [[String: Any]])
        let ipKeys: Set<String> = ["address", "gateway", "interface"]
        #expect(Set(ips[0].keys) == (legacy ? ipKeys.union(["version"]) : ipKeys))
        #expect(Set(ips[2].keys) == (legacy ? ["address", "version"] : ["address"]))
        #expect(ips[0]["version"] as? String == (legacy ? "4" : nil))
        #expect(ips[1]["version"] as? String == (legacy ? "6" : nil))
        #expect(ips[0]["address"] as? String == "10.244.1.5/24")
        #expect(ips[1]["gateway"] as? String == "fd00:10::1")
        #expect(ips[0]["interface"] as? Int == 1)

        let routes = try #require(o["routes"] as? [[String: Any]])
        #expect(Set(routes[0].keys) == (is11 ? ["dst", "gw", "mtu", "advmss", "priority", "table", "scope"] : ["dst", "gw"]))
        #expect(Set(routes[1].keys) == ["dst"])
        if is11 {
            #expect(routes[0]["table"] as? Int == 254)
            #expect(routes[0]["scope"] as? Int == 0)
        }

        let dns = try #require(o["dns"] as? [String: Any])
        #expect(Set(dns.keys) == ["nameservers", "domain", "search", "options"])
        #expect(dns["search"] as? [String] == ["default.svc.cluster.local", "svc.cluster.local"])
    }

    @Test func cniVersionComesFirst() throws {
        let text = String(decoding: try Self.full.json(version: "1.0.0"), as: UTF8.self)
        #expect(text.hasPrefix(#"{"cniVersion":"1.0.0","#))
    }

    @Test func emptyPartsAreLeftOut() throws {
        let empty = CNITestSupport.object(try CNIResult().json(version: "1.1.0"))
        #expect(Set(empty.keys) == ["cniVersion"])

        let r = CNIResult(ips: [.init(address: net("10.0.0.2/24"))],
                          dns: .init(nameservers: [], domain: "", search: ["a"], options: nil))
        let o = CNITestSupport.object(try r.json(version: "1.0.0"))
        #expect(Set(o.keys) == ["cniVersion", "ips", "dns"])
        #expect(Set((o["dns"] as? [String: Any])?.keys ?? [:].keys) == ["search"])
        #expect(CNIResult.DNS(nameservers: [], domain: "", search: [], options: []).isEmpty)
        #expect(!CNIResult.DNS(domain: "x").isEmpty)
    }

    @Test func unsupportedVersionIsRefused() {
        #expect(throws: CNIError.self) { try CNIResult().json(version: "0.2.0") }
        do {
            _ = try CNIResult().json(version: "1.2.0")
            Issue.record("accepted 1.2.0")
        } catch {
            #expect(error.code == 1)
            #expect(error.msg.contains("\"1.2.0\""))
        }
        do {
            _ = try CNIResult.decode(Data("{}".utf8), version: "0.1.0")
            Issue.record("accepted 0.1.0")
        } catch {
            #expect(error.code == 1)
        }
    }

    /// Shaped like what the reference bridge plugin (Go, libcni) prints.
    @Test func decodesGoPluginOutput() throws {
        let json = #"""
        {"cniVersion":"0.4.0","interfaces":[{"name":"cni0","mac":"ee:7a:8f:1d:2c:3b"},{"name":"veth3f2e","mac":"4a:1b:3c:7d:8e:9f"},{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/var/run/netns/cni-2b5d"}],"ips":[{"version":"4","interface":2,"address":"10.244.1.5/24","gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"}],"dns":{}}
        """#
        let r = try CNIResult.decode(Data(json.utf8), version: "0.4.0")
        #expect(r.interfaces.map(\.name) == ["cni0", "veth3f2e", "eth0"])
        #expect(r.interfaces[2].sandbox == "/var/run/netns/cni-2b5d")
        #expect(r.ips == [.init(address: net("10.244.1.5/24"), gateway: ip("10.244.1.1"), interface: 2)])
        #expect(r.routes == [.init(dst: net("0.0.0.0/0"), gw: ip("10.244.1.1"))])
        #expect(r.dns.isEmpty)
    }

    @Test func laterFieldsAreReadInAnyVersion() throws {
        let json = #"{"interfaces": [{"name": "eth0", "mtu": 9000}], "routes": [{"dst": "10.0.0.0/8", "priority": 5}]}"#
        let r = try CNIResult.decode(Data(json.utf8), version: "0.3.1")
        #expect(r.interfaces[0].mtu == 9000)
        #expect(r.routes[0].priority == 5)
    }

    @Test func versionTagIsCheckedOnlyWhereItExists() throws {
        let mismatched = Data(#"{"ips": [{"version": "6", "address": "10.0.0.5/24"}]}"#.utf8)
        for version in ["0.3.1", "0.4.0"] {
            do {
                _ = try CNIResult.decode(mismatched, version: version)
                Issue.record("accepted a v6 tag on a v4 address in \(version)")
            } catch {
                #expect(error.code == 6)
                #expect(error.msg.hasPrefix("ips[0].version:"))
            }
        }
        // 1.0.0 has no such field; a stray one is an unknown key.
        #expect(try CNIResult.decode(mismatched, version: "1.0.0").ips.count == 1)
        // Absent tags are fine in 0.x too.
        #expect(try CNIResult.decode(Data(#"{"ips": [{"address": "fd00::5/64"}]}"#.utf8), version: "0.4.0")
            .ips[0].address.family == .v6)
    }

    @Test(arguments: [
        (#"{"ips": [{"address": "10.0.0.5/24", "gateway": "fd00::1"}]}"#, "ips[0].gateway"),
        (#"{"ips": [{"address": "10.0.0.5/24", "interface": 0}]}"#, "ips[0].interface"),
        (#"{"ips": [{"address": "10.0.0.5/24", "interface": -1}], "interfaces": [{"name": "a"}]}"#, "ips[0].interface"),
        (#"{"ips": [{"address": "10.0.0.5/24", "interface": "0"}]}"#, "ips[0].interface"),
        (#"{"ips": [{"address": 5}]}"#, "ips[0].address"),
        (#"{"ips": {}}"#, "ips"),
        (#"{"interfaces": [{"name": "eth0", "mtu": "1500"}]}"#, "interfaces[0].mtu"),
        (#"{"interfaces": [{}]}"#, "interfaces[0].name"),
        (#"{"routes": [{"dst": "10.0.0.0/8", "gw": "nope"}]}"#, "routes[0].gw"),
        (#"{"routes": [{"dst": "10.0.0.0/8", "gw": "fd00::1"}]}"#, "routes[0].gw"),
        (#"{"routes": [{"gw": "10.0.0.1"}]}"#, "routes[0].dst"),
        (#"{"dns": {"nameservers": "10.0.0.10"}}"#, "dns.nameservers"),
        (#"{"dns": {"search": ["a", 1]}}"#, "dns.search[1]"),
        (#"[]"#, "result"),
        (#"{"ips": ["#, "not valid JSON"),
    ])
    func decodeFailures(json: String, mention: String) {
        do {
            _ = try CNIResult.decode(Data(json.utf8), version: "1.1.0")
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == 6)
            #expect(error.msg.contains(mention), "\(error.msg)")
        }
    }
}
