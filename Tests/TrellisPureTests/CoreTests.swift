import Testing
import TrellisCore
import TrellisJSON
import TrellisNet

/// TrellisCore: the types the plugin, the agent and trellisctl exchange, and the one encoder
/// and decoder of the handshake both sides use.
@Suite struct CoreTests {
    private static func ip(_ s: String) -> IPAddress { IPAddress(s)! }
    private static func mac(_ s: String) -> MACAddress { MACAddress(s)! }

    static let add = HandshakeRequest.AddRequest(
        containerID: "c7", ifname: "eth0", netns: "/var/run/netns/x", podNamespace: "default", podName: "web-1",
        hostIfname: "trl0000000007", hostIfindex: 7, hostMAC: mac("02:00:00:00:00:07"), podMAC: mac("0a:58:0a:f4:01:05"),
        ips: [ip("10.244.1.5"), ip("fd00:244:1::5")])

    /// The add line with one member replaced (or removed, with nil).
    static func addLine(_ key: String, _ value: JSONValue?) -> String {
        guard case .object(let members) = HandshakeRequest.add(add).json else { return "" }
        var out: [(String, JSONValue?)] = members.map { ($0.key, $0.value) }
        if let i = out.firstIndex(where: { $0.0 == key }) { out[i].1 = value } else { out.append((key, value)) }
        return JSONValue.object(out).serialized
    }

    static func decodeError(_ line: [UInt8], otherOperations: [String] = []) -> FieldError? {
        do {
            _ = try HandshakeRequest.decode(line, otherOperations: otherOperations)
            return nil
        } catch {
            return error
        }
    }

    @Test("the datapath mode: its raw values round-trip, and allCases names both")
    func datapathMode() {
        #expect(DatapathMode.allCases == [.bridge, .ebpf])
        for mode in DatapathMode.allCases { #expect(DatapathMode(rawValue: mode.rawValue) == mode) }
        #expect(DatapathMode(rawValue: "routed") == nil)
        #expect(DatapathMode.allowedValues == "bridge, ebpf")
    }

    @Test("every handshake request decodes to what was encoded", arguments: [
        HandshakeRequest.status,
        .add(CoreTests.add),
        .add(HandshakeRequest.AddRequest(containerID: "c8", ifname: "net1", hostIfname: "trl8", hostIfindex: 8,
                                         hostMAC: CoreTests.mac("02:00:00:00:00:08"), podMAC: CoreTests.mac("0a:58:0a:f4:01:06"),
                                         ips: [CoreTests.ip("10.244.1.6")])),
        .del(HandshakeRequest.DelRequest(containerID: "c7", ifname: "eth0", hostIfname: "trl0000000007")),
        .del(HandshakeRequest.DelRequest(containerID: "c7", ifname: "eth0")),
    ])
    func requestRoundTrip(_ request: HandshakeRequest) throws {
        #expect(request.line.last == 0x0A)
        #expect(try HandshakeRequest.decode(Array(request.line.dropLast())) == .handshake(request))
    }

    @Test("add sends the pod's addresses as host prefixes")
    func addWireFormat() {
        #expect(HandshakeRequest.add(Self.add).json["ips"] == .strings(["10.244.1.5/32", "fd00:244:1::5/128"]))
        #expect(HandshakeRequest.add(Self.add).json["op"] == .string("add"))
    }

    @Test("every reply decodes to what was encoded", arguments: [
        HandshakeReply.ok, .status(ready: true), .status(ready: false), .failure("pod default/web-1: \"no\"\nreally"),
    ])
    func replyRoundTrip(_ reply: HandshakeReply) throws {
        #expect(reply.line.last == 0x0A)
        #expect(try HandshakeReply.decode(Array(reply.line.dropLast())) == reply)
    }

    @Test("a reply that is not one names what is wrong")
    func badReplies() throws {
        #expect(throws: FieldError("ok", "missing")) { try HandshakeReply.decode(Array(#"{"ready":true}"#.utf8)) }
        #expect(throws: FieldError.self) { try HandshakeReply.decode(Array("ok".utf8)) }
        #expect(try HandshakeReply.decode(Array(#"{"ok":false}"#.utf8)) == .failure("refused without a reason"))
    }

    @Test("decoder errors name the field", arguments: [
        (CoreTests.addLine("containerID", nil), "containerID: missing"),
        (CoreTests.addLine("containerID", .int(3)), "containerID: expected a string, got 3"),
        (CoreTests.addLine("hostMAC", .string("02:00")), "hostMAC: \"02:00\" is not a MAC address"),
        (CoreTests.addLine("podMAC", nil), "podMAC: missing"),
        (CoreTests.addLine("ips", .strings(["10.244.1.5/32", "banana"])), "ips[1]: \"banana\" is not an address"),
        (CoreTests.addLine("ips", .strings(["10.244.1.5/32", "10.244.1.5"])), "ips[1]: 10.244.1.5 is listed twice"),
        (CoreTests.addLine("ips", .array([])), "ips: missing or empty"),
        (CoreTests.addLine("ips", .string("10.244.1.5/32")), "ips: expected a list"),
        (CoreTests.addLine("hostIfindex", .int(0)), "hostIfindex: 0 is not an interface index"),
        (#"{"op":"del","containerID":"c7"}"#, "ifname: missing"),
        (#"{"containerID":"c7"}"#, "op: missing"),
        (#"{"op":"frobnicate"}"#, "op: \"frobnicate\" is not an operation (add, del or status)"),
        (#"["op"]"#, "expected a mapping"),
        ("not json", "request is not JSON"),
    ])
    func decodeErrors(_ line: String, _ expected: String) throws {
        let error = try #require(Self.decodeError(Array(line.utf8)))
        #expect(error.description.hasPrefix(expected), "\(error)")
    }

    @Test("other operations come back with their document; unknown ones are named with them")
    func otherOperations() throws {
        let line = Array(#"{"op":"explain","from":"a"}"#.utf8)
        let decoded = try HandshakeRequest.decode(line, otherOperations: ["agent", "explain"])
        #expect(decoded == .other(op: "explain", document: .object([("op", .string("explain")), ("from", .string("a"))])))
        let unknown = try #require(Self.decodeError(Array(#"{"op":"x"}"#.utf8), otherOperations: ["agent", "explain"]))
        #expect(unknown == FieldError("op", "\"x\" is not an operation (add, del, status, agent or explain)"))
        // Without the caller's say-so, a local operation is unknown.
        #expect(Self.decodeError(line)?.path == "op")
    }

    @Test("the endpoint entry an add asks for")
    func addEntry() {
        #expect(Self.add.entry(identity: 5, policyID: 9)
            == EndpointEntry(hostIfindex: 7, podMAC: Self.mac("0a:58:0a:f4:01:05"), hostMAC: Self.mac("02:00:00:00:00:07"),
                             identity: 5, policyID: 9))
    }

    @Test("the default gateway is the first address after the network address", arguments: [
        ("10.244.1.0/24", "10.244.1.1"), ("10.244.1.77/24", "10.244.1.1"), ("fd00:244:1::/64", "fd00:244:1::1"),
        ("fd00:244:1::9/64", "fd00:244:1::1"),
    ])
    func defaultGateway(_ subnet: String, _ gateway: String) throws {
        #expect(try #require(IPNetwork(subnet)).defaultGateway == Self.ip(gateway))
    }

    @Test("a unix socket address holds at most 107 bytes of path")
    func unixSocketAddress() {
        #expect(UnixSocketAddress.maxPathBytes == 107)
        #expect(UnixSocketAddress(path: "/run/trellis/agent.sock")?.path == "/run/trellis/agent.sock")
        #expect(UnixSocketAddress(path: "/" + String(repeating: "a", count: 106)) != nil)
        #expect(UnixSocketAddress(path: "/" + String(repeating: "a", count: 107)) == nil)
        #expect(UnixSocketAddress(path: "") == nil)
    }
}
