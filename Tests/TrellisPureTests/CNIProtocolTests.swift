import Foundation
import Testing
@testable import TrellisCNI

@Suite struct CNIProtocolTests {
    @Test(arguments: [
        (CNIError.incompatibleVersion("m"), 1), (.unsupportedField("m"), 2), (.unknownContainer("m"), 3),
        (.invalidEnvironment("m"), 4), (.ioFailure("m"), 5), (.decodeFailure("m"), 6), (.invalidConfig("m"), 7),
        (.tryAgainLater("m"), 11), (.pluginNotAvailable("m"), 50), (.limitedConnectivity("m"), 51),
    ])
    func errorCodes(error: CNIError, code: Int) {
        #expect(error.code == code)
        #expect(error.msg == "m")
        #expect(error.details == nil)
    }

    @Test func errorJSON() throws {
        let e = CNIError.tryAgainLater("IPAM store locked", details: "held by pid 42")
        let o = CNITestSupport.object(e.json(cniVersion: "1.0.0"))
        #expect(Set(o.keys) == ["cniVersion", "code", "msg", "details"])
        #expect(o["cniVersion"] as? String == "1.0.0")
        #expect(o["code"] as? Int == 11)
        #expect(o["msg"] as? String == "IPAM store locked")
        #expect(o["details"] as? String == "held by pid 42")

        let bare = CNITestSupport.object(CNIError.ioFailure("x").json(cniVersion: "0.3.1"))
        #expect(Set(bare.keys) == ["cniVersion", "code", "msg"])
        #expect(CNITestSupport.object(CNIError.ioFailure("x").json(cniVersion: ""))["cniVersion"] as? String == "1.1.0")
        #expect(String(decoding: CNIError.ioFailure("x").json(cniVersion: "0.3.1"), as: UTF8.self)
            == #"{"cniVersion":"0.3.1","code":5,"msg":"x"}"#)
    }

    @Test func errorJSONEscapesAnything() throws {
        let msg = "bridge \"br/0\": bad\\name\n\ttab \u{1} \u{e9}\u{1F600}"
        let o = CNITestSupport.object(CNIError.invalidConfig(msg).json(cniVersion: "1.1.0"))
        #expect(o["msg"] as? String == msg)
    }

    @Test func errorDescription() {
        #expect(CNIError.ioFailure("disk", details: "full").description == "CNI error 5: disk (full)")
        #expect(CNIError.ioFailure("disk") == CNIError(code: 5, msg: "disk"))
        #expect(CNIError.ioFailure("disk") != CNIError.ioFailure("disk", details: "x"))
    }

    @Test func versionJSON() throws {
        let o = CNITestSupport.object(CNIVersionInfo().json(requested: "0.4.0"))
        #expect(Set(o.keys) == ["cniVersion", "supportedVersions"])
        #expect(o["cniVersion"] as? String == "0.4.0")
        #expect(o["supportedVersions"] as? [String] == ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        #expect(CNITestSupport.object(CNIVersionInfo().json(requested: ""))["cniVersion"] as? String == "1.1.0")
        #expect(String(decoding: CNIVersionInfo().json(requested: "1.1.0"), as: UTF8.self)
            == #"{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}"#)
    }

    @Test(arguments: [
        ("1.1.0", "1.1.0", true), ("1.0.0", "1.1.0", false), ("0.4.0", "0.4.0", true), ("0.3.1", "0.4.0", false),
        ("1.0.0", "0.4.0", true), ("0.10.0", "0.4.0", true), ("2.0.0", "1.1.0", true), ("1.1.1", "1.1.0", true),
        ("garbage", "0.1.0", false), ("1.1", "1.0.0", false), ("1.1.0", "x", false), ("1.+1.0", "1.0.0", false),
        ("1..0", "0.0.0", false),
    ])
    func atLeast(version: String, minimum: String, expected: Bool) {
        #expect(CNIVersionInfo.atLeast(version, minimum) == expected)
    }

    @Test func commands() {
        #expect(CNICommand.allCases.map(\.rawValue) == ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"])
        #expect(CNICommand.add.isAvailable(in: "0.3.1"))
        #expect(CNICommand.del.isAvailable(in: "0.3.1"))
        #expect(!CNICommand.check.isAvailable(in: "0.3.1"))
        #expect(CNICommand.check.isAvailable(in: "0.4.0"))
        for command in [CNICommand.gc, .status] {
            #expect(!command.isAvailable(in: "1.0.0"))
            #expect(command.isAvailable(in: "1.1.0"))
        }
    }

    @Test func jsonWriterFormatsNumbers() {
        #expect(JSONValue.object([("a", .int(1500)), ("b", .number(1.5)), ("c", .number(-3)), ("d", .null)]).serialized
            == #"{"a":1500,"b":1.5,"c":-3,"d":null}"#)
    }
}

/// Shared helpers for the CNI*Tests suites.
enum CNITestSupport {
    /// A minimal valid config, with extra top-level members and the ipam body replaceable.
    static func conf(_ top: String = "", version: String = "1.1.0",
                     ipam: String = #""ranges": [{"subnet": "10.244.1.0/24"}]"#) -> Data {
        let extra = top.isEmpty ? "" : top + ","
        return Data(#"{"cniVersion": "\#(version)", "name": "net1", "type": "trellis", \#(extra) "ipam": {\#(ipam)}}"#.utf8)
    }

    static func parseError(_ data: Data) -> CNIError? {
        do {
            _ = try NetConf.parse(data)
            return nil
        } catch {
            return error
        }
    }

    static func envError(_ env: [String: String]) -> CNIError? {
        do {
            _ = try CNIEnvironment(env)
            return nil
        } catch {
            return error
        }
    }

    /// Parses JSON output independently of the code under test.
    static func object(_ data: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }
    static func object(_ bytes: [UInt8]) -> [String: Any] { object(Data(bytes)) }
}
