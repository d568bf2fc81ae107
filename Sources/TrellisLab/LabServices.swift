import Foundation
import TrellisNet
import Yams

// Services in the lab (manifests mode): the Service objects the agents read (their cluster IPs
// go into the datapath's Service set), and a stand-in for kube-proxy in every node's network
// namespace, which translates them as kube-proxy's nftables mode would, so that a pod's
// connection to a ClusterIP really is DNATed by the node's stack to a backend on the same node
// or on another one, and comes back through the stack.

/// One port of a Service: `port` on the cluster IP, forwarded to `targetPort` of the backends
/// (a number, or the name of a port the pods declare).
public struct ServicePortSpec: Codable, Sendable, Hashable {
    public var name: String?
    public var port: Int
    public var targetPort: String
    public var proto: PortProtocol
    /// `5432/TCP`
    public var label: String { "\(port)/\(proto.rawValue)" }
}

/// A Service as a lab manifest declares it (v1, type ClusterIP, a selector).
public struct ServiceSpec: Sendable {
    public var namespace: String
    public var name: String
    public var selector: [String: String]
    public var ports: [ServicePortSpec]
    /// As given; nil: the lab picks one from `LabServices.cidr`.
    public var clusterIP: String?
    public var id: String { "\(namespace)/\(name)" }
}

/// A Service the lab holds, with its cluster IP.
public struct ServiceRecord: Codable, Sendable, Equatable {
    public var namespace: String
    public var name: String
    public var selector: [String: String]
    public var ports: [ServicePortSpec]
    public var clusterIP: String
    public var id: String { "\(namespace)/\(name)" }
}

/// A backend of a Service port: a running pod's IPv4 and the port its `targetPort` names.
struct ServiceBackend: Equatable {
    var pod: String
    var ip: String
    var port: Int
}

enum LabServices {
    /// Where cluster IPs come from (kubeadm's default range; .1 to .9 are left alone, as a real
    /// cluster has the kubernetes and kube-dns Services there).
    static let cidr = IPNetwork("10.96.0.0/16")!

    /// The lowest free cluster IP from .10 on.
    static func allocate(taken: Set<String>) -> String? {
        guard case .v4(let base) = cidr.network.address else { return nil }
        for offset in UInt32(10)..<UInt32(1 << (32 - cidr.prefixLength)) - 1 {
            let ip = IPAddress.v4(base + offset).description
            if !taken.contains(ip) { return ip }
        }
        return nil
    }

    /// The backends of one port: running pods of the Service's namespace whose labels match its
    /// selector and that declare the target port (a named target port resolves per pod).
    static func backends(_ service: ServiceRecord, _ port: ServicePortSpec, pods: [PodRecord]) -> [ServiceBackend] {
        pods.filter { pod in
            pod.phase == .running && pod.namespace == service.namespace && !service.selector.isEmpty
                && service.selector.allSatisfy { pod.labels[$0.key] == $0.value }
        }
        .sorted { $0.id < $1.id }
        .compactMap { pod in
            guard let ip = pod.ips.first(where: { IPAddress($0)?.family == .v4 }) else { return nil }
            if let number = Int(port.targetPort) { return ServiceBackend(pod: pod.id, ip: ip, port: number) }
            guard let named = pod.ports.first(where: { $0.name == port.targetPort && $0.proto == port.proto }) else { return nil }
            return ServiceBackend(pod: pod.id, ip: ip, port: named.port)
        }
    }

    static let table = "trellis_lab_proxy"

    /// The nftables table that plays kube-proxy on a node: DNAT of each cluster IP and port to
    /// one of its backends, chosen at random per connection; a port without backends is
    /// rejected (ICMP port unreachable, as kube-proxy does). Replaces the table as a whole.
    static func proxyScript(_ services: [ServiceRecord], pods: [PodRecord]) -> String {
        var out = "table ip \(table)\ndelete table ip \(table)\n"
        guard !services.isEmpty else { return out }
        var dispatch: [String] = [], chains: [String] = [], rejects: [String] = []
        for (si, service) in services.sorted(by: { $0.id < $1.id }).enumerated() {
            for (pi, port) in service.ports.enumerated() {
                let l4 = port.proto == .tcp ? "tcp" : "udp"
                let match = "ip daddr \(service.clusterIP) \(l4) dport \(port.port)"
                let backends = backends(service, port, pods: pods)
                guard !backends.isEmpty else {
                    rejects.append("\t\t\(match) reject")
                    continue
                }
                let chain = "svc_\(si)_\(pi)"
                dispatch.append("\t\t\(match) jump \(chain)")
                let jumps = backends.indices.map { "\($0) : jump \(chain)_\($0)" }.joined(separator: ", ")
                chains.append("\tchain \(chain) {\n\t\tnumgen random mod \(backends.count) vmap { \(jumps) }\n\t}")
                for (bi, b) in backends.enumerated() {
                    // A pod reaching itself through its Service (hairpin) is masqueraded, as
                    // kube-proxy does (mark 0x4000), or its reply would not come back the same way.
                    chains.append("\tchain \(chain)_\(bi) {\n\t\tip saddr \(b.ip) meta mark set mark | 0x4000\n"
                                  + "\t\tmeta l4proto \(l4) dnat to \(b.ip):\(b.port)\n\t}")
                }
            }
        }
        out += "table ip \(table) {\n"
        out += "\tchain services {\n" + dispatch.map { $0 + "\n" }.joined() + "\t}\n"
        out += "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n"
        out += "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n"
        out += "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            + "\t\tmeta mark & 0x4000 == 0x4000 masquerade\n\t}\n"
        out += "\tchain no_endpoints {\n" + rejects.map { $0 + "\n" }.joined() + "\t}\n"
        out += "\tchain forward {\n\t\ttype filter hook forward priority -10; policy accept;\n\t\tjump no_endpoints\n\t}\n"
        out += "\tchain local_out {\n\t\ttype filter hook output priority -10; policy accept;\n\t\tjump no_endpoints\n\t}\n"
        for c in chains { out += c + "\n" }
        out += "}\n"
        return out
    }
}

extension Lab {
    /// Programs every node's kube-proxy stand-in for the lab's Services and pods (`nft -f`
    /// inside the node's namespace).
    func programServiceProxies(_ state: LabState) throws(LabError) {
        let script = LabServices.proxyScript(state.services ?? [], pods: state.pods)
        let path = layout.serviceProxyScript
        // Most publishes (a pod's Pending, then Running) change no backend: nothing to do.
        if Sys.readFile(path) == Data(script.utf8) { return }
        // The applied script keeps its name only once every node took it (a failure is retried).
        let next = path + ".next"
        try Sys.writeAtomically(Data(script.utf8), to: next)
        for node in state.nodes {
            let out = layout.stateDir + "/nodes/\(node.name)/logs/service-proxy.log"
            let ref = try Processes.spawn(selfExecutable, ["lab", "exec", "--netns", LabLayout.netnsPath(node.netns), "--",
                                                           "nft", "-f", next],
                                          environment: ["PATH": Self.searchPath], stdout: out)
            let code = Processes.wait(ref.pid, timeout: 30)
            guard code == 0 else {
                throw LabError("\(node.name): nft could not program the Services (exit \(code)): "
                               + Sys.tail(out, lines: 3).joined(separator: " | "))
            }
        }
        guard rename(next, path) == 0 else { throw Sys.fail("rename \(next)") }
    }
}

extension ManifestWriter {
    static func service(_ r: ServiceRecord, revision: String) -> Node {
        map([
            ("apiVersion", s("v1")), ("kind", s("Service")),
            ("metadata", map([("name", s(r.name)), ("namespace", s(r.namespace)), ("resourceVersion", s(revision))])),
            ("spec", map([
                ("type", s("ClusterIP")),
                ("clusterIP", s(r.clusterIP)),
                ("clusterIPs", list([s(r.clusterIP)])),
                ("selector", labels(r.selector)),
                ("ports", list(r.ports.map { p in
                    var pairs: [(String, Node)] = []
                    if let name = p.name { pairs.append(("name", s(name))) }
                    pairs += [("port", n(p.port)), ("protocol", s(p.proto.rawValue)),
                              ("targetPort", Int(p.targetPort).map(n) ?? s(p.targetPort))]
                    return map(pairs)
                })),
            ])),
        ])
    }
}
