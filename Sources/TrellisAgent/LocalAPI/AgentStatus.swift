import TrellisJSON
import TrellisNet
import TrellisPolicy

/// `{"op":"agent"}`: what `trellisctl status` shows of one agent: readiness, the revision of
/// the cluster state programmed, counts, and every local endpoint with its identity and policy.
struct AgentStatus {
    var node: String
    var ready: Bool
    var reason: String
    var appliedRevision: String?
    var endpoints: [LocalEndpoint]
    var engine: PolicyEngine
    var tunnels: Int
    var peers: Int
    /// Service addresses in the datapath, routes into the overlay device.
    var serviceAddresses: Int = 0
    var overlayRoutes: Int = 0
    var policyWrites: Int

    var jsonMembers: [JSONMember] {
        let ids = engine.identityCount
        let counts: JSONValue = .object([
            ("endpoints", .int(endpoints.count)), ("tunnels", .int(tunnels)), ("peers", .int(peers)),
            ("serviceAddresses", .int(serviceAddresses)), ("overlayRoutes", .int(overlayRoutes)),
            ("networkPolicies", .int(engine.cluster.policies.count)), ("pods", .int(engine.cluster.pods.count)),
            ("labelIdentities", .int(ids.label)), ("cidrIdentities", .int(ids.cidr)),
            ("policyEntries", .int(engine.policyEntryCount)), ("ipcacheEntries", .int(engine.ipcache.count)),
            ("policyWrites", .int(policyWrites)),
        ])
        let eps: [JSONValue] = endpoints.map { ep in
            var pod: String?
            var compiled: EndpointPolicy?
            if let ns = ep.podNamespace, let name = ep.podName {
                pod = "\(ns)/\(name)"
                compiled = engine.compiledPolicy(for: PodKey(ns, name))
            }
            func isolation(_ isolated: Bool?) -> JSONValue {
                guard let isolated else { return .string("unknown") }
                return .string(isolated ? "isolated" : "open")
            }
            return .object([
                ("pod", pod.map(JSONValue.string)), ("containerID", ep.containerID.map(JSONValue.string)),
                ("hostIfname", ep.hostIfname.map(JSONValue.string)), ("hostIfindex", .int(Int(ep.hostIfindex))),
                ("ips", .strings(ep.ips.map(\.description))), ("identity", .int(Int(ep.identity))),
                ("identityLabels", .strings(engine.labels(of: ep.identity) ?? [])),
                ("policyID", .int(Int(ep.policyID))),
                ("ingress", isolation(compiled?.isolatedIngress)), ("egress", isolation(compiled?.isolatedEgress)),
                ("policyEntries", .int(compiled?.entries.count ?? 0)),
            ])
        }
        return [
            JSONMember(key: "node", value: .string(node)), JSONMember(key: "ready", value: .bool(ready)),
            JSONMember(key: "reason", value: .string(reason)),
            JSONMember(key: "revision", value: appliedRevision.map(JSONValue.string) ?? .null),
            JSONMember(key: "counts", value: counts), JSONMember(key: "endpoints", value: .array(eps)),
        ]
    }
}
