import Foundation
import Testing
import TrellisNetlink
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `trellisctl lab` end to end, on the real binaries, without the real agent (`--no-agent`, or a
/// stand-in agent script that keeps the agent's side of the contract: config read, conflist
/// written, SIGTERM honoured). Each test has its own state directory, so they run in parallel.
@Suite("Lab", .needsRoot)
struct LabTests {
    static let pods = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop, labels: {team: a}}
    ---
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Pod
      metadata: {name: web-1, labels: {app: web}}
      spec:
        nodeName: node-1
        containers:
        - name: srv
          ports: [{name: http, containerPort: 80}, {name: dns, containerPort: 53, protocol: UDP}]
    - apiVersion: v1
      kind: Pod
      metadata: {name: web-2, namespace: default, labels: {app: web}}
      spec:
        nodeName: node-1
        containers:
        - name: srv
          ports: [{name: http, containerPort: 80, protocol: TCP}, {name: dns, containerPort: 53, protocol: UDP}]
    ---
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "namespace": "shop"},
     "spec": {"nodeName": "node-2", "containers": [{"name": "db", "ports": [{"containerPort": 5432}]}]}}
    """

    /// Lines of the root namespace's `ip -o addr` and `ip -o link` that would be the lab's.
    static func rootFootprint() -> [String] {
        let ip = HostTools.ip
        var out: [String] = []
        for args in [["-o", "addr"], ["-o", "link"]] {
            let prefix = "/tmp/trlab-test-root-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let p = try? ITProcess(executable: ip, arguments: args, environment: ["PATH": IT.searchPath], stdin: nil,
                                   outputPrefix: prefix)
            p?.wait()
            let text = String(decoding: p?.stdout ?? Data(), as: UTF8.self)
            out += text.split(separator: "\n").map(String.init).filter {
                $0.contains("192.168.200.") || $0.contains("10.244.") || $0.contains("fd00:10:244") || $0.contains(" br0") || $0.contains("trellis")
            }
            for suffix in [".out", ".err"] { try? FileManager.default.removeItem(atPath: prefix + suffix) }
        }
        return out
    }

    @Test("up, apply, probe, status, delete, down: two nodes without agents")
    func lifecycleWithoutAgent() throws {
        let rootBefore = Self.rootFootprint()
        try LabRun.with { lab in
            let up = lab.ctl("lab", "up", "--nodes", "2", "--no-agent")
            try #require(up.exitCode == 0, "lab up: \(up)")
            #expect(up.stdout.contains("lab up: 2 nodes"))
            let id = try #require(lab.labID, "up names the lab: \(up.stdout)")
            #expect(lab.labNamespaces() == ["\(id)-node-1", "\(id)-node-2", "\(id)-underlay"])

            // The node: eth0 on the underlay, its address and MTU, a bpffs of its own.
            let eth0 = lab.exec("\(id)-node-1", [HostTools.ip, "-o", "addr", "show", "dev", "eth0"])
            #expect(eth0.stdout.contains("192.168.200.11/24"), "\(eth0)")
            let link = lab.exec("\(id)-node-2", [HostTools.ip, "link", "show", "eth0"])
            #expect(link.stdout.contains("mtu 1500"), "\(link)")
            let ping = lab.exec("\(id)-node-1", ["ping", "-c", "1", "-W", "2", "192.168.200.12"])
            #expect(ping.exitCode == 0, "node-1 reaches node-2 on the underlay: \(ping)")
            let bpffs = LabTest.mountInfo().split(separator: "\n").filter { $0.contains(lab.state + "/nodes/") && $0.contains(" - bpf ") }
            #expect(bpffs.count == 2, "\(bpffs)")
            let nodes = try String(contentsOfFile: lab.state + "/manifests/nodes.yaml", encoding: .utf8)
            #expect(nodes.contains("InternalIP") && nodes.contains("10.244.2.0/24") && nodes.contains("fd00:10:244:2::/64"))

            let manifest = try lab.writeManifest("pods.yaml", Self.pods)
            let apply = lab.ctl("lab", "apply", "-f", manifest)
            try #require(apply.exitCode == 0, "lab apply: \(apply)")
            #expect(apply.stdout.contains("namespace/shop created"))
            #expect(apply.stdout.contains("pod/default/web-1 created on node-1"))
            #expect(apply.stdout.contains("pod/shop/db created on node-2"))

            // Same node: TCP and UDP, IPv4 and IPv6, by number and by port name.
            let tcp = lab.ctl("lab", "probe", "default/web-1", "default/web-2", "80/TCP")
            #expect(tcp.exitCode == 0, "\(tcp)")
            #expect(tcp.stdout.hasPrefix("default/web-1 -> default/web-2 10.244.1."), "\(tcp)")
            #expect(tcp.stdout.contains(":80/TCP: connected ("), "\(tcp)")
            let udp = lab.ctl("lab", "probe", "web-2", "web-1", "53/udp")
            #expect(udp.exitCode == 0, "\(udp)")
            #expect(udp.stdout.contains(":53/UDP: connected ("), "\(udp)")
            let v6 = lab.ctl("lab", "probe", "web-1", "web-2", "http", "--ipv6")
            #expect(v6.exitCode == 0 && v6.stdout.contains("[fd00:10:244:1::"), "\(v6)")

            // A closed port is refused at once; across nodes nothing passes without agents.
            let started = Date()
            let closed = lab.ctl("lab", "probe", "default/web-1", "default/web-2", "8080")
            let elapsed = Date().timeIntervalSince(started)
            #expect(closed.exitCode == 1, "\(closed)")
            #expect(closed.stdout.hasSuffix(":8080/TCP: refused\n"), "\(closed)")
            #expect(elapsed < 0.9, "refused must not wait for the timeout: \(elapsed) s")
            let across = lab.ctl("lab", "probe", "default/web-1", "shop/db", "5432", "--timeout", "0.5")
            #expect(across.exitCode == 1, "\(across)")
            let unknown = lab.ctl("lab", "probe", "default/web-1", "default/nope", "80")
            #expect(unknown.exitCode == 2 && unknown.stderr.contains("pod default/nope: not in the lab"), "\(unknown)")

            let matrix = lab.ctl("lab", "probe", "--matrix", "80/TCP", "53/UDP", "--timeout", "0.5")
            #expect(matrix.exitCode == 0, "\(matrix)")
            let rows = matrix.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
            #expect(rows.contains("FROM \\ TO default/web-1 default/web-2 shop/db"), "\(matrix.stdout)")
            #expect(rows.contains("default/web-1 self ok ok -- --"), "\(matrix.stdout)")
            #expect(rows.contains("default/web-2 ok ok self -- --"), "\(matrix.stdout)")
            #expect(rows.contains("shop/db -- -- -- -- self"), "\(matrix.stdout)")

            // Without ports, each cell probes the destination's own declared ports (its column
            // header lists them), so no cell reports a port its pod does not serve.
            let own = lab.ctl("lab", "probe", "--matrix", "--timeout", "0.5")
            let ownRows = own.stdout.split(separator: "\n").map(String.init)
            #expect(ownRows.contains { $0.hasPrefix("FROM \\ TO") && $0.contains("default/web-1 80/TCP,53/UDP") }, "\(own.stdout)")
            #expect(ownRows.contains { $0.hasPrefix("default/web-1") && $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().joined(separator: " ").hasPrefix("self ok ok") }, "\(own.stdout)")

            // status -o json: the contract's keys.
            let status = try #require(lab.status())
            let nodeList = try #require(status["nodes"] as? [[String: Any]])
            #expect(nodeList.map { $0["name"] as? String } == ["node-1", "node-2"])
            #expect(nodeList[0]["nodeIP"] as? String == "192.168.200.11")
            #expect(nodeList[1]["podCIDRs"] as? [String] == ["10.244.2.0/24", "fd00:10:244:2::/64"])
            #expect(nodeList.allSatisfy { $0["ready"] as? Bool == true && $0["agentPID"] is NSNull })
            let podList = try #require(status["pods"] as? [[String: Any]])
            #expect(podList.map { "\($0["namespace"]!)/\($0["name"]!)" } == ["default/web-1", "default/web-2", "shop/db"])
            let web1 = try #require(podList.first { $0["name"] as? String == "web-1" })
            let ips = try #require(web1["ips"] as? [String])
            #expect(web1["node"] as? String == "node-1")
            #expect(ips.count == 2 && ips[0].hasPrefix("10.244.1.") && ips[1].hasPrefix("fd00:10:244:1::"), "\(ips)")
            let underlay = status["underlay"] as? [String: Any]
            #expect(underlay?["netns"] as? String == "\(id)-underlay")

            // Pod status written back for the agents.
            let podsYAML = try String(contentsOfFile: lab.state + "/manifests/pods.yaml", encoding: .utf8)
            #expect(podsYAML.contains("podIP: \(ips[0])") && podsYAML.contains("hostIP: 192.168.200.11"), "\(podsYAML)")
            #expect(podsYAML.contains("- ip: \(ips[1])"))

            // Re-applying is a no-op.
            let again = lab.ctl("lab", "apply", "-f", manifest)
            #expect(again.exitCode == 0 && again.stdout.contains("pod/default/web-1 unchanged"), "\(again)")
            #expect((lab.status()?["pods"] as? [[String: Any]])?.count == 3)

            // delete: one pod goes, with its namespace and its server.
            let web2 = try #require(podList.first { $0["name"] as? String == "web-2" })
            let web2NS = try #require(web2["netns"] as? String)
            let web2Server = try #require(web2["serverPID"] as? Int)
            let one = try lab.writeManifest("web-2.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2}\nspec: {nodeName: node-1}\n")
            let del = lab.ctl("lab", "delete", "-f", one)
            #expect(del.exitCode == 0 && del.stdout.contains("pod/default/web-2 deleted"), "\(del)")
            #expect(!LabTest.netnsList().contains(web2NS))
            #expect(LabTest.processGone(web2Server), "server of web-2 still runs")
            #expect((lab.status()?["pods"] as? [[String: Any]])?.count == 2)
            #expect(!((try? String(contentsOfFile: lab.state + "/manifests/pods.yaml", encoding: .utf8)) ?? "").contains("name: web-2"))
            let gone = lab.ctl("lab", "delete", "-f", one)
            #expect(gone.exitCode == 1 && gone.stderr.contains("pod default/web-2: not found"), "\(gone)")

            let down = lab.ctl("lab", "down")
            #expect(down.exitCode == 0, "\(down)")
            lab.expectNothingLeft("after down")
            let twice = lab.ctl("lab", "down")
            #expect(twice.exitCode == 0 && twice.stdout.contains("nothing to do"), "\(twice)")
        }
        #expect(Self.rootFootprint() == rootBefore, "the root namespace changed")
    }

    @Test("invalid manifests change nothing; two labs side by side do not collide")
    func invalidManifestsAndTwoLabs() throws {
        try LabRun.with { a in
            try LabRun.with { b in
                try #require(a.ctl("lab", "up", "--nodes", "1", "--no-agent", "--datapath", "bridge").exitCode == 0)
                try #require(b.ctl("lab", "up", "--nodes", "1", "--no-agent").exitCode == 0)
                let idA = try #require(a.labID), idB = try #require(b.labID)
                #expect(idA != idB)
                #expect(a.labNamespaces().count == 2 && b.labNamespaces().count == 2)

                let notANode = try a.writeManifest("bad-node.yaml", """
                apiVersion: v1
                kind: Pod
                metadata: {name: web-1}
                spec: {nodeName: node-9}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: ok, namespace: default}
                spec: {nodeName: node-1}
                """)
                let r1 = a.ctl("lab", "apply", "-f", notANode)
                #expect(r1.exitCode == 1, "\(r1)")
                #expect(r1.stderr.contains("pod default/web-1: spec.nodeName \"node-9\" is not a lab node"), "\(r1)")

                let invalid = try a.writeManifest("invalid.yaml", """
                apiVersion: v1
                kind: Pod
                metadata: {name: x, namespace: shop}
                spec:
                  containers:
                  - name: c
                    ports: [{containerPort: 70000}, {containerPort: 9, protocol: SCTP}]
                ---
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web}
                ---
                kind: Pod
                metadata: {name: Bad_Name}
                spec: {nodeName: node-1}
                """)
                let r2 = a.ctl("lab", "apply", "-f", invalid)
                #expect(r2.exitCode == 1, "\(r2)")
                for fragment in ["pod shop/x: spec.nodeName is required",
                                 "pod shop/x: spec.containers[0].ports[0].containerPort \"70000\" is not a port number",
                                 "pod shop/x: spec.containers[0].ports[1].protocol \"SCTP\" is not supported",
                                 "document 2 (Deployment web): kind Deployment is not supported",
                                 "pod default/Bad_Name: metadata.name"] {
                    #expect(r2.stderr.contains(fragment), "missing \(fragment) in: \(r2.stderr)")
                }
                let garbage = try a.writeManifest("garbage.yaml", "kind: Pod\nmetadata: [unclosed\n")
                let r3 = a.ctl("lab", "apply", "-f", garbage)
                #expect(r3.exitCode == 1 && r3.stderr.contains("not valid YAML"), "\(r3)")
                // Nothing was made by any of them.
                #expect((a.status()?["pods"] as? [[String: Any]])?.isEmpty == true)
                #expect(a.labNamespaces().count == 2)
                #expect(!((try? String(contentsOfFile: a.state + "/manifests/namespaces.yaml", encoding: .utf8)) ?? "").contains("shop"))

                // JSON, kind: List.
                let json = try a.writeManifest("pods.json", """
                {"apiVersion": "v1", "kind": "List", "items": [
                  {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "p"}},
                   "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}]}
                """)
                let r4 = a.ctl("lab", "apply", "-f", json)
                #expect(r4.exitCode == 0 && r4.stdout.contains("pod/default/p created on node-1: 10.244.1."), "\(r4)")

                // The same pod names in the other lab live in other namespaces.
                let r5 = b.ctl("lab", "apply", "-f", json)
                #expect(r5.exitCode == 0, "\(r5)")
                #expect(a.labNamespaces().contains("\(idA)-default-p") && b.labNamespaces().contains("\(idB)-default-p"))

                let upAgain = a.ctl("lab", "up", "--nodes", "1", "--no-agent")
                #expect(upAgain.exitCode == 1 && upAgain.stderr.contains("already"), "\(upAgain)")

                #expect(a.ctl("lab", "down").exitCode == 0)
                a.expectNothingLeft("after down of lab A")
                #expect(b.labNamespaces().count == 3, "lab B must be intact: \(b.labNamespaces())")
                let probeB = b.ctl("lab", "probe", "--matrix")
                #expect(probeB.exitCode == 0, "\(probeB)")
            }
        }
    }

    /// A stand-in `trellis-agent` (bash) beside a link to the real `trellis`; STUB_MODE picks
    /// its behaviour: `ready` (writes the conflist, runs until SIGTERM), `fail`, `hang`.
    static func stubBinDir(_ lab: LabRun) throws -> String {
        let dir = lab.folder + "/bin"
        try FileManager.default.createDirectory(atPath: dir + "/markers", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/trellis", withDestinationPath: LabTest.trellis)
        let script = #"""
        #!/bin/bash
        # Stand-in trellis-agent for the lab tests.
        set -u
        [ "${1:-}" = --config ] && [ -n "${2:-}" ] || { echo "usage: trellis-agent --config FILE" >&2; exit 2; }
        cfg=$2
        get() { sed -n "s/^$1: //p" "$cfg"; }
        node=$(get nodeName)
        m=$STUB_MARKERS
        echo "$*" > "$m/$node.args"
        stat -L -c %i /proc/self/ns/net > "$m/$node.netns"
        cp "$cfg" "$m/$node.yaml"
        case "${STUB_MODE:-ready}" in
          fail) echo "stub agent: cannot load the datapath from /nowhere" >&2; exit 1 ;;
          hang) exec sleep 600 ;;
        esac
        trap 'echo term >> "$m/$node.term"; exit 0' TERM
        dir=$(get cniConfDir)
        printf '{"cniVersion":"1.1.0","name":"trellis","plugins":[{"type":"trellis","mode":"%s","mtu":1450,"ipam":{"ranges":[{"subnet":"10.244.%s.0/24"}],"dataDir":"%s"}}]}\n' \
          "$(get datapathMode)" "${node#node-}" "$(get ipamDataDir)" > "$dir/.conflist.tmp"
        mv "$dir/.conflist.tmp" "$dir/$(get cniConfName)"
        echo "stub agent $node ready"
        while :; do sleep 0.1 & wait $!; done
        """#
        let agent = dir + "/trellis-agent"
        try script.write(toFile: agent, atomically: true, encoding: .utf8)
        chmod(agent, 0o755)
        return dir
    }

    @Test("a failed up leaves nothing (bad --bpf-dir, agent dies, agent never ready)")
    func failedUp() throws {
        try LabRun.with { lab in
            let bad = lab.ctl("lab", "up", "--nodes", "2", "--no-agent", "--bpf-dir", lab.folder + "/no-such-dir")
            #expect(bad.exitCode == 1 && bad.stderr.contains("--bpf-dir \(lab.folder)/no-such-dir: no such directory"), "\(bad)")
            lab.expectNothingLeft("after a bad --bpf-dir")

            let bin = try Self.stubBinDir(lab)
            let env = ["STUB_MARKERS": bin + "/markers"]
            // The agent dies: up shows its log and removes everything itself.
            var failEnv = env
            failEnv["STUB_MODE"] = "fail"
            let dies = lab.ctl(["lab", "up", "--nodes", "2", "--bin-dir", bin], environment: failEnv)
            #expect(dies.exitCode == 1, "\(dies)")
            #expect(dies.stderr.contains("trellis-agent (pid ") && dies.stderr.contains("exited before writing"), "\(dies)")
            #expect(dies.stderr.contains("stub agent: cannot load the datapath from /nowhere"), "the log tail: \(dies)")
            #expect(lab.labID != nil)
            lab.expectNothingLeft("after up removed its own failure")
            let down = lab.ctl("lab", "down")
            #expect(down.exitCode == 0 && down.stdout.contains("nothing to do"), "\(down)")

            // The agent never gets ready: kept for inspection, then `down` removes it all,
            // agents (still running) included.
            var hangEnv = env
            hangEnv["STUB_MODE"] = "hang"
            let hangs = lab.ctl(["lab", "up", "--nodes", "2", "--bin-dir", bin, "--timeout", "1", "--keep-on-failure"], environment: hangEnv)
            #expect(hangs.exitCode == 1 && hangs.stderr.contains("did not write"), "\(hangs)")
            let id = try #require(lab.labID)
            #expect(lab.labNamespaces() == ["\(id)-node-1", "\(id)-node-2", "\(id)-underlay"])
            #expect(LabTest.mountInfo().contains(lab.state + "/nodes/node-1/bpf"))
            let status = try #require(lab.status())
            #expect(status["phase"] as? String == "starting")
            let agents = (status["nodes"] as? [[String: Any]] ?? []).compactMap { $0["agentPID"] as? Int }
            #expect(agents.count == 2 && agents.allSatisfy { !LabTest.processGone($0) }, "\(status)")
            let apply = lab.ctl("lab", "apply", "-f", try lab.writeManifest("p.yaml", "kind: Pod\nmetadata: {name: p}\nspec: {nodeName: node-1}\n"))
            #expect(apply.exitCode == 1 && apply.stderr.contains("is not up"), "\(apply)")
            let downAfter = lab.ctl("lab", "down")
            #expect(downAfter.exitCode == 0, "\(downAfter)")
            lab.expectNothingLeft("after down of a half-built lab")

            // Ctrl-C while the agents start: up undoes everything itself.
            let interrupted = try ITProcess(
                executable: LabTest.trellisctl, arguments: ["lab", "up", "--nodes", "2", "--bin-dir", bin, "--state", lab.state],
                environment: ["PATH": IT.searchPath, "STUB_MARKERS": bin + "/markers", "STUB_MODE": "hang"], stdin: nil,
                outputPrefix: lab.folder + "/interrupted")
            let deadline = Date().addingTimeInterval(20)
            while !String(decoding: interrupted.stdout, as: UTF8.self).contains("node-2: trellis-agent pid"), Date() < deadline {
                usleep(10_000)
            }
            kill(interrupted.pid, SIGINT)
            #expect(interrupted.wait(timeout: 20) == 1)
            #expect(interrupted.stderr.contains("interrupted by SIGINT"), "\(interrupted.stderr)")
            for line in String(decoding: interrupted.stdout, as: UTF8.self).split(separator: "\n") where line.contains("trellis-agent pid ") {
                let pid = Int(line.split(separator: " ")[3]) ?? 0
                #expect(pid > 0 && LabTest.processGone(pid), "agent \(pid) left after the interrupted up")
            }
            lab.expectNothingLeft("after an interrupted up")

            // A --state holding files of someone else is refused, and never emptied by down.
            try FileManager.default.createDirectory(atPath: lab.state, withIntermediateDirectories: true)
            try "mine".write(toFile: lab.state + "/notes.txt", atomically: true, encoding: .utf8)
            let foreign = lab.ctl("lab", "up", "--nodes", "1", "--no-agent")
            #expect(foreign.exitCode == 1 && foreign.stderr.contains("holds files that are not a lab's (notes.txt)"), "\(foreign)")
            #expect(lab.ctl("lab", "down").exitCode == 0)
            #expect(FileManager.default.fileExists(atPath: lab.state + "/notes.txt"))
            try FileManager.default.removeItem(atPath: lab.state)
        }
    }

    @Test("the agent's side: started in its node's namespace with its config, ready = conflist, SIGTERM on down")
    func agentContract() throws {
        try LabRun.with { lab in
            let bin = try Self.stubBinDir(lab)
            let markers = bin + "/markers"
            let up = lab.ctl(["lab", "up", "--nodes", "2", "--datapath", "bridge", "--bin-dir", bin], environment: ["STUB_MARKERS": markers])
            try #require(up.exitCode == 0, "\(up)")
            #expect(up.stdout.contains("node-1: ready") && up.stdout.contains("node-2: ready"), "\(up)")
            let id = try #require(lab.labID)

            for (i, node) in ["node-1", "node-2"].enumerated() {
                let dir = lab.state + "/nodes/\(node)"
                let args = try String(contentsOfFile: "\(markers)/\(node).args", encoding: .utf8)
                #expect(args == "--config \(dir)/agent.yaml\n")
                // Inside the node's namespace.
                var st = stat()
                #expect(stat("/var/run/netns/\(id)-\(node)", &st) == 0)
                let inode = try String(contentsOfFile: "\(markers)/\(node).netns", encoding: .utf8)
                #expect(inode == "\(st.st_ino)\n", "the agent of \(node) runs in another namespace")
                // The config: the keys of docs/agent.md.
                let config = try String(contentsOfFile: "\(markers)/\(node).yaml", encoding: .utf8)
                var keys: [String: String] = [:]
                for line in config.split(separator: "\n") where !line.hasPrefix("#") {
                    let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if kv.count == 2 { keys[kv[0]] = kv[1] }
                }
                var expected = [
                    "nodeName": node, "source": "manifests", "manifestsDir": lab.state + "/manifests",
                    "bpffsDir": dir + "/bpf", "socketPath": dir + "/agent.sock", "cniConfDir": dir + "/net.d",
                    "cniConfName": "10-trellis.conflist", "ipamDataDir": dir + "/ipam", "underlayDevice": "eth0",
                    "datapathMode": "bridge", "healthAddress": "127.0.0.1:9876",
                ]
                if let bpf = keys["bpfObjectDir"] { expected["bpfObjectDir"] = bpf }   // present when .build/bpf exists
                #expect(keys == expected)
                #expect(LabTest.mountInfo().contains(dir + "/bpf "), "bpffs of \(node)")
                _ = i
            }

            let status = try #require(lab.status())
            let nodes = try #require(status["nodes"] as? [[String: Any]])
            let pids = nodes.compactMap { $0["agentPID"] as? Int }
            #expect(pids.count == 2 && nodes.allSatisfy { $0["agentAlive"] as? Bool == true && $0["ready"] as? Bool == true }, "\(nodes)")

            let apply = lab.ctl("lab", "apply", "-f", try lab.writeManifest("p.yaml", """
            kind: Pod
            apiVersion: v1
            metadata: {name: p}
            spec: {nodeName: node-2, containers: [{name: c, ports: [{containerPort: 7}]}]}
            """))
            #expect(apply.exitCode == 0 && apply.stdout.contains("created on node-2: 10.244.2."), "\(apply)")

            let restart = lab.ctl(["lab", "restart-agents", "--node", "node-1"], environment: ["STUB_MARKERS": markers])
            #expect(restart.exitCode == 0 && restart.stdout.contains("node-1: ready"), "\(restart)")
            let after = (lab.status()?["nodes"] as? [[String: Any]] ?? []).compactMap { $0["agentPID"] as? Int }
            #expect(after.count == 2 && after[0] != pids[0] && after[1] == pids[1], "\(pids) -> \(after)")
            #expect(LabTest.processGone(pids[0]), "the old agent of node-1 still runs")
            #expect(FileManager.default.fileExists(atPath: "\(markers)/node-1.term"), "the old agent got no SIGTERM")

            let down = lab.ctl("lab", "down")
            #expect(down.exitCode == 0, "\(down)")
            #expect(FileManager.default.fileExists(atPath: "\(markers)/node-2.term"), "agents are stopped with SIGTERM")
            lab.expectNothingLeft("after down")
        }
    }
}
