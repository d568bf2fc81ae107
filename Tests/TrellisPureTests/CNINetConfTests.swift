import Foundation
import Testing
import TrellisNet
@testable import TrellisCNI

private func conf(_ top: String = "", version: String = "1.1.0",
                  ipam: String = #""ranges": [{"subnet": "10.244.1.0/24"}]"#) -> Data {
    CNITestSupport.conf(top, version: version, ipam: ipam)
}

private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
private func net(_ s: String) -> IPNetwork { IPNetwork(s)! }

@Suite struct CNINetConfTests {
    // MARK: Defaults and accepted values

    @Test func minimalConfigGetsTheDocumentedDefaults() throws {
        let c = try NetConf.parse(conf())
        #expect(c.cniVersion == "1.1.0")
        #expect(c.name == "net1")
        #expect(c.mode == .bridge)
        #expect(c.bridgeName == "trellis0")
        #expect(c.hostDevice == "trellis_host")
        #expect(c.mtu == 1500)
        #expect(c.reserved == [])
        #expect(c.dataDir == "/var/lib/cni/trellis")
        #expect(c.networkDataDir == "/var/lib/cni/trellis/net1")
        #expect(c.agentSocket == nil)
        #expect(c.prevResult == nil)
        #expect(c.validAttachments == nil)
        #expect(c.ranges == [IPRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.1.1"),
                                     rangeEnd: ip("10.244.1.254"), gateway: ip("10.244.1.1"))])
    }

    @Test func ipv6DefaultsRunToTheLastAddress() throws {
        let c = try NetConf.parse(conf(ipam: #""ranges": [{"subnet": "fd00:10::/64"}]"#))
        let r = try #require(c.range(for: .v6))
        #expect(r.subnet == net("fd00:10::/64"))
        #expect(r.rangeStart == ip("fd00:10::1"))
        #expect(r.rangeEnd == ip("fd00:10::ffff:ffff:ffff:ffff"))
        #expect(r.gateway == ip("fd00:10::1"))
        #expect(c.range(for: .v4) == nil)
    }

    @Test func subnetHostBitsAreMasked() throws {
        let c = try NetConf.parse(conf(ipam: #""ranges": [{"subnet": "10.244.1.77/24"}]"#))
        #expect(c.ranges[0].subnet.description == "10.244.1.0/24")
        #expect(c.ranges[0].gateway == ip("10.244.1.1"))
    }

    @Test func everyKeySet() throws {
        let c = try NetConf.parse(conf(#"""
            "mode": "ebpf", "bridge": "br-pods", "hostDevice": "tr_host", "mtu": 9000,
            "agentSocket": "/run/trellis/agent.sock"
            """#, version: "0.4.0", ipam: #"""
            "type": "trellis",
            "ranges": [
                {"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.200", "gateway": "10.244.1.20"},
                {"subnet": "fd00::/120", "rangeStart": "fd00::10", "rangeEnd": "fd00::ff", "gateway": "fd00::1"}
            ],
            "reserved": ["10.244.1.7", "10.244.1.17/28", "fd00::5", "fd00::80/121"],
            "dataDir": "/var/lib/trellis"
            """#))
        #expect(c.cniVersion == "0.4.0")
        #expect(c.mode == .ebpf)
        #expect(c.bridgeName == "br-pods")
        #expect(c.hostDevice == "tr_host")
        #expect(c.mtu == 9000)
        #expect(c.agentSocket == "/run/trellis/agent.sock")
        #expect(c.dataDir == "/var/lib/trellis")
        #expect(c.networkDataDir == "/var/lib/trellis/net1")
        // The gateway may sit inside the range: the allocator skips it.
        #expect(c.ranges == [
            IPRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.1.10"), rangeEnd: ip("10.244.1.200"),
                    gateway: ip("10.244.1.20")),
            IPRange(subnet: net("fd00::/120"), rangeStart: ip("fd00::10"), rangeEnd: ip("fd00::ff"),
                    gateway: ip("fd00::1")),
        ])
        #expect(c.ranges[0].contains(c.ranges[0].gateway))
        #expect(c.reserved == [net("10.244.1.7/32"), net("10.244.1.16/28"), net("fd00::5/128"), net("fd00::80/121")])
    }

    @Test func rangeEdgesAreAccepted() throws {
        let c = try NetConf.parse(conf(ipam: #"""
            "ranges": [{"subnet": "10.0.0.0/30", "rangeStart": "10.0.0.2", "rangeEnd": "10.0.0.2"},
                       {"subnet": "fd00::/126", "rangeEnd": "fd00::3"}]
            """#))
        #expect(c.ranges[0].rangeStart == ip("10.0.0.2"))
        #expect(c.ranges[0].rangeEnd == ip("10.0.0.2"))
        #expect(c.ranges[1].rangeEnd == ip("fd00::3"))
    }

    @Test(arguments: CNIVersionInfo.supported)
    func everySupportedVersionIsAccepted(version: String) throws {
        #expect(try NetConf.parse(conf(version: version)).cniVersion == version)
    }

    @Test func unknownKeysAndNullsAreIgnored() throws {
        let c = try NetConf.parse(conf(#"""
            "runtimeConfig": {"portMappings": []}, "args": {"cni": {"ips": ["10.0.0.1"]}},
            "capabilities": {"portMappings": true}, "somethingElse": [1, 2, {"x": null}],
            "mtu": null, "bridge": null, "agentSocket": null
            """#, ipam: #""ranges": [{"subnet": "10.0.0.0/16", "gateway": null, "extra": 1}], "reserved": null"#))
        #expect(c.mtu == 1500)
        #expect(c.bridgeName == "trellis0")
        #expect(c.agentSocket == nil)
        #expect(c.ranges[0].gateway == ip("10.0.0.1"))
        #expect(c.reserved == [])
    }

    @Test func mtuBounds() throws {
        #expect(try NetConf.parse(conf(#""mtu": 576"#)).mtu == 576)
        #expect(try NetConf.parse(conf(#""mtu": 65535"#)).mtu == 65535)
        #expect(try NetConf.parse(conf(#""mtu": 1280"#, ipam: #""ranges": [{"subnet": "fd00::/64"}]"#)).mtu == 1280)
        // 1000 is fine without an IPv6 range.
        #expect(try NetConf.parse(conf(#""mtu": 1000"#)).mtu == 1000)
    }

    @Test func validAttachments() throws {
        let c = try NetConf.parse(conf(#"""
            "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}, {"containerID": "def", "ifname": "net1"}]
            """#))
        #expect(c.validAttachments == [Attachment(containerID: "abc", ifname: "eth0"),
                                       Attachment(containerID: "def", ifname: "net1")])
        #expect(try NetConf.parse(conf(#""cni.dev/valid-attachments": []"#)).validAttachments == [])
    }

    // MARK: prevResult

    @Test(arguments: [
        ("0.3.1", #"{"cniVersion": "0.3.1", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/var/run/netns/x"}], "ips": [{"version": "4", "address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}"#),
        ("0.4.0", #"{"cniVersion": "0.4.0", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/var/run/netns/x"}], "ips": [{"version": "4", "address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}"#),
        ("1.0.0", #"{"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/var/run/netns/x"}], "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}"#),
        ("1.1.0", #"{"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/var/run/netns/x"}], "ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}"#),
    ])
    func prevResultInEachVersion(version: String, prev: String) throws {
        let c = try NetConf.parse(conf(#""prevResult": \#(prev)"#, version: version))
        let expected = CNIResult(
            interfaces: [.init(name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/var/run/netns/x")],
            ips: [.init(address: net("10.244.1.5/24"), gateway: ip("10.244.1.1"), interface: 0)],
            routes: [.init(dst: net("0.0.0.0/0"))])
        #expect(c.prevResult == expected)
    }

    // MARK: Errors

    struct Case: Sendable, CustomTestStringConvertible {
        let json: Data
        let code: Int
        let mentions: [String]
        let label: String
        var testDescription: String { label }

        init(_ label: String, _ json: Data, _ code: Int, _ mentions: String...) {
            self.label = label
            self.json = json
            self.code = code
            self.mentions = mentions
        }
    }

    static let failures: [Case] = [
        // 6: not JSON, or not a config object at all, or prevResult not a result
        Case("empty input", Data(), 6, "empty"),
        Case("truncated", Data(#"{"cniVersion": "1.1.0", "name": "#.utf8), 6, "not valid JSON"),
        Case("bad literal", Data(#"{"cniVersion": tru}"#.utf8), 6, "not valid JSON"),
        Case("top-level array", Data("[1, 2]".utf8), 6, "expected a JSON object", "[1,2]"),
        Case("prevResult not an object", conf(#""prevResult": 5"#), 6, "prevResult"),
        Case("prevResult bare ip address", conf(#""prevResult": {"ips": [{"address": "10.0.0.5"}]}"#), 6,
             "prevResult.ips[0].address", "10.0.0.5"),
        Case("prevResult ip without address", conf(#""prevResult": {"ips": [{"gateway": "10.0.0.1"}]}"#), 6,
             "prevResult.ips[0].address", "missing"),
        Case("prevResult interface without name", conf(#""prevResult": {"interfaces": [{"mac": "x"}]}"#), 6,
             "prevResult.interfaces[0].name"),
        Case("prevResult wrong family tag", conf(#""prevResult": {"ips": [{"version": "6", "address": "10.0.0.5/24"}]}"#,
                                                 version: "0.4.0"), 6, "prevResult.ips[0].version"),
        Case("prevResult bad interface index", conf(#""prevResult": {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/24", "interface": 1}]}"#),
             6, "prevResult.ips[0].interface"),
        Case("prevResult bad route", conf(#""prevResult": {"routes": [{"dst": "default"}]}"#), 6, "prevResult.routes[0].dst"),
        Case("prevResult dns not object", conf(#""prevResult": {"dns": []}"#), 6, "prevResult.dns"),

        // 1: a version we do not speak
        Case("old version", conf(version: "0.2.0"), 1, "cniVersion", "\"0.2.0\"", "0.3.1, 0.4.0, 1.0.0, 1.1.0"),
        Case("future version", conf(version: "2.0.0"), 1, "\"2.0.0\""),
        Case("0.3.0", conf(version: "0.3.0"), 1, "\"0.3.0\""),

        // 2: a feature we do not have
        Case("unknown mode", conf(#""mode": "vxlan""#), 2, "mode", "\"vxlan\"", "bridge, ebpf"),
        Case("delegated ipam", conf(ipam: #""type": "host-local", "ranges": [{"subnet": "10.0.0.0/24"}]"#), 2,
             "ipam.type", "\"host-local\"", "allocates addresses itself"),

        // 7: missing or wrong
        Case("missing cniVersion", Data(#"{"name": "n", "ipam": {"ranges": [{"subnet": "10.0.0.0/24"}]}}"#.utf8), 7,
             "cniVersion: required"),
        Case("numeric cniVersion", Data(#"{"cniVersion": 1.1, "name": "n"}"#.utf8), 7, "cniVersion", "expected a string", "1.1"),
        Case("missing name", Data(#"{"cniVersion": "1.1.0", "ipam": {"ranges": [{"subnet": "10.0.0.0/24"}]}}"#.utf8), 7,
             "name: required"),
        Case("name with slash", Data(#"{"cniVersion": "1.1.0", "name": "a/b", "ipam": {}}"#.utf8), 7, "name \"a/b\": a network name", "'/'"),
        Case("name starting with dot", Data(#"{"cniVersion": "1.1.0", "name": "..", "ipam": {}}"#.utf8), 7, "name", "\"..\""),
        Case("empty name", Data(#"{"cniVersion": "1.1.0", "name": "", "ipam": {}}"#.utf8), 7, "name", "empty"),
        Case("numeric type", Data(#"{"cniVersion": "1.1.0", "name": "n", "type": 3, "ipam": {"ranges": [{"subnet": "10.0.0.0/24"}]}}"#.utf8), 7, "type", "expected a string"),
        Case("numeric mode", conf(#""mode": 1"#), 7, "mode", "expected a string"),
        Case("bridge with slash", conf(#""bridge": "br/0""#), 7, "bridge \"br/0\"", "cannot contain '/'"),
        Case("bridge too long", conf(#""bridge": "abcdefghijklmnop""#), 7, "bridge", "at most 15 bytes"),
        Case("empty bridge", conf(#""bridge": """#), 7, "bridge", "empty"),
        Case("hostDevice with space", conf(#""hostDevice": "a b""#), 7, "hostDevice \"a b\"", "whitespace"),
        Case("hostDevice with colon", conf(#""hostDevice": "a:1""#), 7, "hostDevice", "':'"),
        Case("hostDevice dot", conf(#""hostDevice": ".""#), 7, "hostDevice"),
        Case("mtu too small", conf(#""mtu": 575"#), 7, "mtu", "575", "576...65535"),
        Case("mtu too large", conf(#""mtu": 65536"#), 7, "mtu", "65536"),
        Case("mtu as string", conf(#""mtu": "1500""#), 7, "mtu", "expected an integer"),
        Case("mtu fractional", conf(#""mtu": 1500.5"#), 7, "mtu", "expected an integer"),
        Case("mtu too small for IPv6", conf(#""mtu": 1279"#, ipam: #""ranges": [{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]"#),
             7, "mtu", "1279", "1280", "fd00::/64"),
        Case("missing ipam", Data(#"{"cniVersion": "1.1.0", "name": "n"}"#.utf8), 7, "ipam: required"),
        Case("ipam not an object", Data(#"{"cniVersion": "1.1.0", "name": "n", "ipam": "x"}"#.utf8), 7, "ipam", "expected an object"),
        Case("missing ranges", conf(ipam: #""reserved": []"#), 7, "ipam.ranges: required"),
        Case("empty ranges", conf(ipam: #""ranges": []"#), 7, "ipam.ranges", "at least one"),
        Case("ranges not an array", conf(ipam: #""ranges": {"subnet": "10.0.0.0/24"}"#), 7, "ipam.ranges", "expected an array"),
        Case("range not an object", conf(ipam: #""ranges": ["10.0.0.0/24"]"#), 7, "ipam.ranges[0]", "expected an object"),
        Case("range without subnet", conf(ipam: #""ranges": [{"gateway": "10.0.0.1"}]"#), 7, "ipam.ranges[0].subnet: required"),
        Case("subnet bare address", conf(ipam: #""ranges": [{"subnet": "10.0.0.0"}]"#), 7, "ipam.ranges[0].subnet", "is not a subnet"),
        Case("subnet out of range prefix", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/33"}]"#), 7, "ipam.ranges[0].subnet"),
        Case("subnet /31", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/31"}]"#), 7, "ipam.ranges[0].subnet", "/30"),
        Case("subnet /127", conf(ipam: #""ranges": [{"subnet": "fd00::/127"}]"#), 7, "ipam.ranges[0].subnet", "/126"),
        Case("two IPv4 ranges", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24"}, {"subnet": "10.1.0.0/24"}]"#), 7,
             "ipam.ranges[1]", "second IPv4", "10.1.0.0/24"),
        Case("two IPv6 ranges", conf(ipam: #""ranges": [{"subnet": "fd00::/64"}, {"subnet": "10.0.0.0/24"}, {"subnet": "fd01::/64"}]"#),
             7, "ipam.ranges[2]", "second IPv6"),
        Case("rangeStart outside", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]"#), 7,
             "ipam.ranges[0].rangeStart", "10.0.1.5", "outside"),
        Case("rangeStart other family", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "rangeStart": "fd00::5"}]"#), 7,
             "ipam.ranges[0].rangeStart", "IPv6", "IPv4"),
        Case("rangeStart not an address", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.x"}]"#), 7,
             "ipam.ranges[0].rangeStart", "\"10.0.0.x\""),
        Case("rangeStart network address", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.0"}]"#), 7,
             "ipam.ranges[0].rangeStart", "network address"),
        Case("rangeEnd broadcast", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.255"}]"#), 7,
             "ipam.ranges[0].rangeEnd", "broadcast"),
        Case("rangeEnd outside IPv6", conf(ipam: #""ranges": [{"subnet": "fd00::/64", "rangeEnd": "fd01::5"}]"#), 7,
             "ipam.ranges[0].rangeEnd", "outside"),
        Case("gateway outside", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "gateway": "10.9.0.1"}]"#), 7,
             "ipam.ranges[0].gateway", "outside"),
        Case("gateway other family", conf(ipam: #""ranges": [{"subnet": "fd00::/64", "gateway": "10.0.0.1"}]"#), 7,
             "ipam.ranges[0].gateway"),
        Case("start after end", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100", "rangeEnd": "10.0.0.50"}]"#),
             7, "ipam.ranges[0]", "rangeStart 10.0.0.100", "rangeEnd 10.0.0.50"),
        Case("reserved garbage", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24"}], "reserved": ["10.0.0.5", "nope"]"#), 7,
             "ipam.reserved[1]", "\"nope\""),
        Case("reserved number", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24"}], "reserved": [5]"#), 7, "ipam.reserved[0]"),
        Case("reserved not array", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24"}], "reserved": "10.0.0.5""#), 7, "ipam.reserved"),
        Case("relative dataDir", conf(ipam: #""ranges": [{"subnet": "10.0.0.0/24"}], "dataDir": "state""#), 7,
             "ipam.dataDir", "absolute"),
        Case("relative agentSocket", conf(#""agentSocket": "agent.sock""#), 7, "agentSocket", "absolute"),
        Case("attachments not an array", conf(#""cni.dev/valid-attachments": {}"#), 7, "cni.dev/valid-attachments"),
        Case("attachment without ifname", conf(#""cni.dev/valid-attachments": [{"containerID": "a"}]"#), 7,
             "cni.dev/valid-attachments[0].ifname: required"),
    ]

    @Test(arguments: failures)
    func rejected(_ c: Case) {
        let error = CNITestSupport.parseError(c.json)
        #expect(error?.code == c.code, "\(error?.msg ?? "accepted")")
        for text in c.mentions {
            #expect(error?.msg.contains(text) == true, "\(error?.msg ?? "accepted") should mention \(text)")
        }
    }

    @Test func subnetErrorMessageIsExact() {
        let error = CNITestSupport.parseError(conf(ipam: #""ranges": [{"subnet": "fd00::/64"}, {"subnet": "10.0.0/24"}]"#))
        #expect(error == .invalidConfig(#"ipam.ranges[1].subnet: "10.0.0/24" is not a subnet (ADDR/LEN)"#))
    }

    @Test func versionIsCheckedBeforeTheRest() {
        // A config in an unknown version may legitimately look different; say "version", not "field".
        let error = CNITestSupport.parseError(Data(#"{"cniVersion": "9.9.9", "name": "n"}"#.utf8))
        #expect(error?.code == 1)
    }
}
