import Foundation
import Testing
@testable import TrellisCNI

@Suite struct CNIEnvironmentTests {
    static let full: [String: String] = [
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "0123abcd", "CNI_NETNS": "/var/run/netns/cni-1",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/libexec/cni",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=0123abcd",
    ]

    func env(_ command: String, without: [String] = [], _ overrides: [String: String] = [:]) -> [String: String] {
        var e = Self.full
        e["CNI_COMMAND"] = command
        for key in without { e[key] = nil }
        e.merge(overrides) { $1 }
        return e
    }

    @Test func addReadsEveryVariable() throws {
        let e = try CNIEnvironment(Self.full)
        #expect(e.command == .add)
        #expect(e.containerID == "0123abcd")
        #expect(e.netns == "/var/run/netns/cni-1")
        #expect(e.ifName == "eth0")
        #expect(e.path == ["/opt/cni/bin", "/usr/libexec/cni"])
        #expect(e.podNamespace == "default")
        #expect(e.podName == "web-0")
        #expect(e.args["IgnoreUnknown"] == "1")
        #expect(e.args.count == 4)
    }

    @Test(arguments: ["ADD", "CHECK"], ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
    func addAndCheckRequire(command: String, variable: String) {
        for environment in [env(command, without: [variable]), env(command, [variable: ""])] {
            let error = CNITestSupport.envError(environment)
            #expect(error?.code == 4)
            #expect(error?.msg == "\(variable) is required for \(command) but is not set")
        }
    }

    @Test(arguments: ["CNI_CONTAINERID", "CNI_IFNAME"])
    func delRequires(variable: String) {
        let error = CNITestSupport.envError(env("DEL", without: [variable]))
        #expect(error?.code == 4)
        #expect(error?.msg.contains(variable) == true)
    }

    @Test func delAcceptsAMissingOrEmptyNetns() throws {
        #expect(try CNIEnvironment(env("DEL", without: ["CNI_NETNS"])).netns == nil)
        #expect(try CNIEnvironment(env("DEL", ["CNI_NETNS": ""])).netns == nil)
        #expect(try CNIEnvironment(env("DEL")).netns == "/var/run/netns/cni-1")
    }

    @Test(arguments: ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"])
    func cniPathMayBeMissing(command: String) throws {
        let e = try CNIEnvironment(env(command, without: ["CNI_PATH"]))
        #expect(e.path == [])
        #expect(e.command.rawValue == command)
    }

    @Test(arguments: ["GC", "STATUS", "VERSION"])
    func commandsWithoutAnAttachmentNeedOnlyTheCommand(command: String) throws {
        let e = try CNIEnvironment(["CNI_COMMAND": command])
        #expect(e.containerID == "")
        #expect(e.ifName == "")
        #expect(e.netns == nil)
        #expect(e.args.isEmpty)
        // Garbage in variables these commands do not use is not their problem.
        #expect(CNITestSupport.envError(["CNI_COMMAND": command, "CNI_IFNAME": "a/b",
                                         "CNI_CONTAINERID": "-x"]) == nil)
    }

    @Test func commandIsRequiredAndMustBeKnown() {
        #expect(CNITestSupport.envError([:]) == .invalidEnvironment("CNI_COMMAND is not set"))
        #expect(CNITestSupport.envError(["CNI_COMMAND": ""])?.msg == "CNI_COMMAND is not set")
        for bad in ["add", "DELETE", "ADD "] {
            let error = CNITestSupport.envError(env(bad))
            #expect(error?.code == 4)
            #expect(error?.msg.hasPrefix("CNI_COMMAND \"\(bad)\"") == true)
        }
    }

    @Test func validContainerIDs() throws {
        for id in ["a", "0", "abc_1.2-3", "K8S-pod.1_x", String(repeating: "f", count: 64)] {
            #expect(try CNIEnvironment(env("ADD", ["CNI_CONTAINERID": id])).containerID == id)
        }
    }

    @Test(arguments: [
        ("-abc", "must start with a letter or digit"),
        ("_abc", "must start with a letter or digit"),
        (".abc", "must start with a letter or digit"),
        ("ab/c", "'/'"),
        ("ab c", "U+20"),
        ("abc;d", "';'"),
        ("caf\u{e9}", "'\u{e9}'"),
    ])
    func invalidContainerID(id: String, reason: String) {
        let error = CNITestSupport.envError(env("ADD", ["CNI_CONTAINERID": id]))
        #expect(error?.code == 4)
        #expect(error?.msg.hasPrefix("CNI_CONTAINERID \"\(id)\": a container ID") == true)
        #expect(error?.msg.contains(reason) == true)
    }

    @Test func validInterfaceNames() throws {
        for name in ["eth0", "net1", "a", "x.y", String(repeating: "a", count: 15), "\u{e9}\u{e9}\u{e9}"] {
            #expect(try CNIEnvironment(env("ADD", ["CNI_IFNAME": name])).ifName == name)
        }
    }

    @Test func interfaceNameWithSlashNamesVariableAndValue() {
        #expect(CNITestSupport.envError(env("ADD", ["CNI_IFNAME": "eth0/1"]))
            == .invalidEnvironment("CNI_IFNAME \"eth0/1\": an interface name cannot contain '/'"))
    }

    @Test(arguments: [
        (".", "cannot be \".\" or \"..\""),
        ("..", "cannot be \".\" or \"..\""),
        ("a:b", "cannot contain ':'"),
        ("a b", "cannot contain whitespace"),
        ("a\tb", "cannot contain whitespace"),
        ("a\u{a0}b", "cannot contain whitespace"),
        (String(repeating: "a", count: 16), "at most 15 bytes"),
        // 8 characters, but 16 bytes: the kernel limit is in bytes.
        (String(repeating: "\u{e9}", count: 8), "at most 15 bytes"),
    ])
    func invalidInterfaceName(name: String, reason: String) {
        for command in ["ADD", "DEL", "CHECK"] {
            let error = CNITestSupport.envError(env(command, ["CNI_IFNAME": name]))
            #expect(error?.code == 4)
            #expect(error?.msg.hasPrefix("CNI_IFNAME \"\(name)\": an interface name") == true)
            #expect(error?.msg.contains(reason) == true)
        }
    }

    @Test func argsParsing() throws {
        #expect(try CNIEnvironment.parseArgs(nil) == [:])
        #expect(try CNIEnvironment.parseArgs("A=1;B=2;") == ["A": "1", "B": "2"])
        #expect(try CNIEnvironment.parseArgs("A=b=c") == ["A": "b=c"])
        #expect(try CNIEnvironment.parseArgs("A=;B=x") == ["A": "", "B": "x"])
        #expect(try CNIEnvironment.parseArgs("A=1;A=2") == ["A": "2"])
        let e = try CNIEnvironment(env("ADD", ["CNI_ARGS": "K8S_POD_NAME=db-1"]))
        #expect(e.podName == "db-1")
        #expect(e.podNamespace == nil)
        #expect(try CNIEnvironment(env("ADD", without: ["CNI_ARGS"])).args.isEmpty)
    }

    @Test(arguments: ["FOO", "A=1;FOO;B=2", "=value", "A=1;=2"])
    func malformedArgs(raw: String) {
        let error = CNITestSupport.envError(env("ADD", ["CNI_ARGS": raw]))
        #expect(error?.code == 4)
        #expect(error?.msg.hasPrefix("CNI_ARGS \"\(raw)\"") == true)
        #expect(error?.msg.contains("KEY=VALUE") == true)
    }
}
