import TrellisNet

/// What `trellisctl policy explain` shows for one connection: the reference verdict (which
/// policies isolate which end, which rules allow it) and, for each end that has compiled
/// entries, what the datapath would find: the other end's identities as the ipcache resolves
/// them and the allow entry that matches (or none).
public struct PolicyExplanation: Sendable {
    public var source: Endpoint
    public var destination: Endpoint
    public var port: UInt16
    public var proto: Proto
    public var family: IPAddress.Family
    public var verdict: Verdict
    /// Egress at the source pod, then ingress at the destination pod, for the pods compiled here.
    public var datapath: [DatapathCheck]

    /// Whether the compiled entries decide as the reference does (they always should).
    public var datapathAgrees: Bool {
        datapath.allSatisfy { check in
            let reference = check.direction == .egress ? verdict.egress : verdict.ingress
            return reference.map { $0.allowed == check.allowed } ?? true
        }
    }
}

/// One direction at one local pod, as the datapath's lookups would go.
public struct DatapathCheck: Sendable, Hashable {
    public var direction: PolicyDirection
    public var pod: PodKey
    public var endpoint: EndpointID
    /// The other end's address and what the ipcache says of it.
    public var peerAddress: IPAddress?
    public var peerIdentity: Identity
    public var peerCIDRIdentity: Identity
    /// The entry that allows it; nil: denied.
    public var matchedBy: PolicyMapKey?
    /// Ingress from this pod's own node: always allowed (the reference says so; the entry is
    /// the `host` allow every isolated pod has).
    public var allowed: Bool { matchedBy != nil }
}

extension PolicyEngine {
    /// Explains one connection attempt (its first packet): `port` is the destination port.
    /// `datapath`: also emulate the datapath's lookups at the compiled pods (an agent's engine;
    /// an offline one has no node of its own, so `host` means nothing there).
    public func explain(from source: Endpoint, to destination: Endpoint, port: UInt16, proto: Proto,
                        family: IPAddress.Family? = nil, datapath: Bool = true) -> PolicyExplanation {
        let verdict = cluster.verdict(from: source, to: destination, port: port, proto: proto, family: family)
        let fam = family ?? address(of: source, nil)?.family ?? address(of: destination, nil)?.family ?? .v4
        var checks: [DatapathCheck] = []
        if datapath, let pod = podKey(source), let ep = endpointID(of: pod) {
            checks.append(check(.egress, at: pod, endpoint: ep, peer: address(of: destination, fam), port: port, proto: proto))
        }
        if datapath, let pod = podKey(destination), let ep = endpointID(of: pod) {
            checks.append(check(.ingress, at: pod, endpoint: ep, peer: address(of: source, fam), port: port, proto: proto))
        }
        return PolicyExplanation(source: source, destination: destination, port: port, proto: proto, family: fam,
                                 verdict: verdict, datapath: checks)
    }

    /// The ipcache entry the datapath's longest-prefix lookup finds for an address.
    public func ipcacheLookup(_ ip: IPAddress) -> IPCacheEntry? {
        for length in stride(from: ip.bitWidth, through: 0, by: -1) {
            if let e = ipcache[IPNetwork(address: ip, prefixLength: length)!.network] { return e }
        }
        return nil
    }

    private func check(_ direction: PolicyDirection, at pod: PodKey, endpoint: EndpointID, peer: IPAddress?,
                       port: UInt16, proto: Proto) -> DatapathCheck {
        let entry = peer.flatMap(ipcacheLookup)
        let id = entry?.identity ?? ReservedIdentity.world
        let cid = entry?.cidrIdentity ?? 0
        let entries = compiledPolicy(for: pod)?.entries ?? []
        let dport = proto.hasPorts ? port : 0
        var candidates = [id]
        if cid != 0 && cid != id { candidates.append(cid) }
        candidates.append(ReservedIdentity.any)
        var matched: PolicyMapKey?
        for peerID in candidates where matched == nil {
            // The most specific entry, as the LPM lookup returns it.
            matched = entries.filter { $0.matches(endpoint: endpoint, direction: direction, peer: peerID, proto: proto, port: dport) }
                .max { $0.ports.specificity < $1.ports.specificity }
        }
        return DatapathCheck(direction: direction, pod: pod, endpoint: endpoint, peerAddress: peer, peerIdentity: id,
                             peerCIDRIdentity: cid, matchedBy: matched)
    }

    private func podKey(_ e: Endpoint) -> PodKey? {
        switch e {
        case .pod(let k): return k
        case .address(let a): return cluster.podOwning(a)?.key
        case .node: return nil
        }
    }

    private func address(of e: Endpoint, _ family: IPAddress.Family?) -> IPAddress? {
        let ips: [IPAddress]
        switch e {
        case .pod(let k): ips = cluster.pods[k]?.ips ?? []
        case .node(let n): ips = cluster.nodes[n]?.ips ?? []
        case .address(let a): ips = [a]
        }
        return family.map { f in ips.first { $0.family == f } } ?? ips.first
    }
}

extension PolicyExplanation: CustomStringConvertible {
    /// The text `trellisctl policy explain` prints.
    public var description: String {
        var lines = ["\(source) -> \(destination) \(port)/\(proto): \(verdict.allowed ? "ALLOWED" : "DENIED")"]
        for d in [verdict.egress, verdict.ingress].compactMap({ $0 }) {
            lines.append("  " + d.description)
        }
        if verdict.egress == nil && verdict.ingress == nil { lines.append("  neither end is a pod: no policy applies") }
        for c in datapath {
            let peer = c.peerAddress.map { "\($0)" } ?? "no address"
            var ids = "identity \(c.peerIdentity)"
            if c.peerCIDRIdentity != 0 && c.peerCIDRIdentity != c.peerIdentity { ids += ", CIDR identity \(c.peerCIDRIdentity)" }
            let outcome = c.matchedBy.map { "allowed by entry \($0)" } ?? "no entry matches: denied"
            lines.append("  datapath \(c.direction.word) at \(c.pod) (endpoint \(c.endpoint)): peer \(peer) has \(ids); \(outcome)")
        }
        if !datapathAgrees { lines.append("  WARNING: the compiled entries disagree with the reference verdict") }
        return lines.joined(separator: "\n")
    }
}
