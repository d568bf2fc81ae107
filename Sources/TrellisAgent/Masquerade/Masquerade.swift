import Foundation
import Logging
import TrellisNet

/// Source NAT done by the agent: the nftables table `inet trellis` in the node's network
/// namespace, with one `postrouting` nat chain that masquerades
///
/// - packets from this node's pod CIDRs to destinations outside the cluster CIDRs (pod traffic
///   leaving the cluster; the `masquerade` setting), and
/// - packets from outside the cluster CIDRs leaving through the overlay device (always): the
///   node's own traffic to a Service whose backend is a pod on another node has the node IP as
///   source, chosen before kube-proxy's DNAT rerouted it into the overlay; masqueraded onto the
///   overlay device's address (this node's pod gateway), its replies come back through the
///   overlay instead of leaving the other node unencapsulated, masqueraded there.
///
/// The table is replaced as a whole in one `nft -f -` transaction (create-if-missing, delete,
/// define), so there is never a moment without rules, and it is kept when the agent stops:
/// established pod traffic keeps flowing while the agent restarts.
public enum MasqueradeRules {
    public static let table = "trellis"

    /// The nft script that makes the table what it should be. With `enabled` false and no
    /// overlay device it removes the table (if any).
    ///
    /// The cluster set always includes our own pod CIDRs (pod to pod on this node is never
    /// masqueraded) and is reduced to non-overlapping networks, which nft's interval sets need.
    public static func script(enabled: Bool, podCIDRs: [IPNetwork], clusterCIDRs: [IPNetwork],
                              overlayDevice: String? = nil) -> String {
        var out = "table inet \(table)\ndelete table inet \(table)\n"
        guard enabled || overlayDevice != nil, !podCIDRs.isEmpty else { return out }
        let pods = collapse(podCIDRs)
        let cluster = collapse(clusterCIDRs + podCIDRs)
        out += "table inet \(table) {\n"
        for family in [IPAddress.Family.v4, .v6] {
            let elements = cluster.filter { $0.family == family }
            guard pods.contains(where: { $0.family == family }), !elements.isEmpty else { continue }
            let (name, type) = family == .v4 ? ("cluster_v4", "ipv4_addr") : ("cluster_v6", "ipv6_addr")
            out += "\tset \(name) {\n\t\ttype \(type)\n\t\tflags interval\n"
            out += "\t\telements = { " + elements.map(\.description).joined(separator: ", ") + " }\n\t}\n"
        }
        out += "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        if enabled {
            for cidr in pods {
                let (match, set) = cidr.family == .v4 ? ("ip", "cluster_v4") : ("ip6", "cluster_v6")
                out += "\t\t\(match) saddr \(cidr) \(match) daddr != @\(set) masquerade\n"
            }
        }
        if let overlayDevice {
            for family in [IPAddress.Family.v4, .v6] where pods.contains(where: { $0.family == family }) {
                let (match, set) = family == .v4 ? ("ip", "cluster_v4") : ("ip6", "cluster_v6")
                out += "\t\toifname \"\(overlayDevice)\" \(match) saddr != @\(set) masquerade\n"
            }
        }
        out += "\t}\n}\n"
        return out
    }

    /// Networks (masked), without duplicates and without those inside another, sorted.
    static func collapse(_ networks: [IPNetwork]) -> [IPNetwork] {
        let masked = Set(networks.map(\.network))
        let kept = masked.filter { n in
            !masked.contains { other in other != n && other.prefixLength < n.prefixLength && other.contains(n.address) }
        }
        return kept.sorted { a, b in a.address != b.address ? a.address < b.address : a.prefixLength < b.prefixLength }
    }
}

/// Applies an nft script. The real one runs `nft -f -` (in the agent's own network namespace);
/// tests prefix the command with `ip netns exec NAME` or replace the applier.
public protocol MasqueradeApplier: Sendable {
    func apply(script: String) async throws
}

public struct NftApplier: MasqueradeApplier {
    /// The command, ending in `nft`; `-f -` is appended.
    public let command: [String]

    public init(command: [String] = ["nft"]) { self.command = command }

    public func apply(script: String) async throws {
        let result = try await ExternalCommand.run(command + ["-f", "-"], stdin: Array(script.utf8))
        guard result.status == 0 else {
            throw SubprocessError(command: command + ["-f", "-"], status: result.status, stderr: result.stderrText)
        }
    }
}
