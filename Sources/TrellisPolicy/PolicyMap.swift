import TrellisNet

// The compiled form of policy for the datapath: entries of two maps, `trellis_ipcache`
// (address -> identities: `IPCacheEntry`) and `trellis_policy` (allow entries: `PolicyMapKey`).
// This file is the model only, what the entries mean. Their bytes are defined once, in C
// (`struct trellis_ipcache_entry`, `struct trellis_policy_key` in bpf/lib/common.h), and written
// by TrellisDatapath (Sources/TrellisDatapath/Layouts.swift) through those very structs: the
// policy compiler stays pure Swift, testable and linkable without the C headers, and the
// layout has no second description here to go stale.

/// A policy endpoint id: the number a local pod's entries are keyed on. Allocated by the engine
/// per local pod (from 1, not reused while the engine lives); the agent stores it with the
/// pod's entry in `trellis_endpoints` for the datapath to read.
public typealias EndpointID = UInt32

/// An aligned block of ports: the ports whose first `bits` bits equal `base`'s.
public struct PortPrefix: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var base: UInt16
    /// 0 (every port) ... 16 (one port).
    public var bits: UInt8

    public init(base: UInt16, bits: UInt8) {
        precondition(bits <= 16)
        self.bits = bits
        let mask: UInt16 = bits == 0 ? 0 : ~UInt16(0) << (16 - bits)
        self.base = base & mask
    }

    public var range: ClosedRange<UInt16> {
        let size = UInt32(1) << (16 - UInt32(bits))
        return base...UInt16(UInt32(base) + size - 1)
    }

    public func contains(_ port: UInt16) -> Bool { range.contains(port) }

    /// The fewest aligned blocks covering exactly `range` (at most 30 for 16-bit ports).
    public static func cover(_ range: ClosedRange<UInt16>) -> [PortPrefix] {
        var out: [PortPrefix] = []
        var lo = UInt32(range.lowerBound)
        let hi = UInt32(range.upperBound)
        while lo <= hi {
            var size: UInt32 = lo == 0 ? 65536 : (lo & (~lo &+ 1))
            while lo + size - 1 > hi { size >>= 1 }
            out.append(PortPrefix(base: UInt16(lo), bits: UInt8(16 - size.trailingZeroBitCount)))
            lo += size
        }
        return out
    }

    public var description: String {
        bits == 16 ? "\(base)" : bits == 0 ? "*" : "\(range.lowerBound)-\(range.upperBound)"
    }

    public static func < (a: Self, b: Self) -> Bool { (a.base, a.bits) < (b.base, b.bits) }
}

/// What a key's port part matches.
public enum PortMatch: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Every protocol and port (also ICMP and other protocols without ports).
    case anyProtocol
    /// The ports of `prefix` (`bits` 0: every port) of one protocol.
    case ports(Proto, PortPrefix)

    public var description: String {
        switch self {
        case .anyProtocol: "any"
        case .ports(let p, let prefix): prefix.bits == 0 ? "\(p)/*" : "\(p)/\(prefix)"
        }
    }

    /// How much of a packet this pins down: 0 for every protocol, then 1 + the port prefix's
    /// bits. Of the entries matching a packet, the LPM trie finds the most specific.
    public var specificity: Int {
        switch self {
        case .anyProtocol: 0
        case .ports(_, let prefix): 1 + Int(prefix.bits)
        }
    }

    public func matches(proto: Proto, port: UInt16) -> Bool {
        switch self {
        case .anyProtocol: true
        case .ports(let p, let prefix): p == proto && prefix.contains(port)
        }
    }

    public static func < (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.anyProtocol, .anyProtocol): false
        case (.anyProtocol, _): true
        case (_, .anyProtocol): false
        case (.ports(let p, let x), .ports(let q, let y)): (p, x) < (q, y)
        }
    }
}

/// One allow entry of `trellis_policy`: traffic of a local pod (its policy endpoint id), in one
/// direction, with one peer identity (`ReservedIdentity.any`: any), on `ports`: every protocol
/// and port, or an aligned block of ports of one protocol (what an LPM trie matches by prefix;
/// an `endPort` range becomes at most 30 blocks, `PortPrefix.cover`; named ports are resolved
/// to numbers at compile time).
///
/// Per packet, at each end that is a local pod (egress at the source, ingress at the
/// destination), with the other end's address `a` (bpf/lib/policy.h, `policy_allows`):
///
/// ```
/// e   = lpm(trellis_ipcache, a)                 // 1 LPM lookup
/// id  = e ? e->identity : WORLD
/// cid = e ? e->cidr_identity : 0
/// key = { endpoint, id, direction, proto, dport } // every bit; dport 0 for portless protocols
/// allow = lookup(trellis_policy, key)
///      || (cid && cid != id && lookup(key with peer = cid))
///      || lookup(key with peer = ANY)           // at most 3 LPM lookups
/// ```
///
/// No entry: drop (`policy_egress` or `policy_ingress`). The map holds only allows, so the
/// verdict is monotone in its content; an endpoint whose direction is not isolated has the
/// single allow-all entry (peer any, any protocol), an isolated one has its allows plus, for
/// ingress, an allow-all from `host`. An endpoint with no entries at all (not programmed yet)
/// drops everything: fail closed.
public struct PolicyMapKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var endpoint: EndpointID
    public var direction: PolicyDirection
    /// The other end's identity; `ReservedIdentity.any` (0) for any.
    public var peer: Identity
    public var ports: PortMatch

    public init(endpoint: EndpointID, direction: PolicyDirection, peer: Identity, ports: PortMatch) {
        self.endpoint = endpoint
        self.direction = direction
        self.peer = peer
        self.ports = ports
    }

    /// Whether this entry allows a packet (the LPM lookup finds some matching entry).
    public func matches(endpoint e: EndpointID, direction d: PolicyDirection, peer p: Identity, proto: Proto, port: UInt16) -> Bool {
        endpoint == e && direction == d && peer == p && ports.matches(proto: proto, port: port)
    }

    public var description: String {
        "ep \(endpoint) \(direction.word) peer \(ReservedIdentity.name(peer) ?? String(peer)) \(ports)"
    }

    public static func < (a: Self, b: Self) -> Bool {
        (a.endpoint, a.direction, a.peer, a.ports) < (b.endpoint, b.direction, b.peer, b.ports)
    }
}

/// The value of a `trellis_ipcache` entry: the identities of an address range (the key, an
/// `IPNetwork`; the longest prefix wins).
///
/// Entries: every pod IP (/32, /128), this node's IPs (`host`), and every prefix an ipBlock
/// names (its `cidr` and each `except`). An address no entry covers is `world`. Because an
/// ipBlock applies to any address, pod addresses included, a pod entry carries both its label
/// identity and the CIDR identity of the ipBlocks around it (the LPM finds the pod's /32 first,
/// which would otherwise hide the prefix).
public struct IPCacheEntry: Sendable, Hashable, CustomStringConvertible {
    public var identity: Identity
    /// 0: no ipBlock contains the address.
    public var cidrIdentity: Identity

    public init(identity: Identity, cidrIdentity: Identity = 0) {
        self.identity = identity
        self.cidrIdentity = cidrIdentity
    }

    public var description: String {
        let id = ReservedIdentity.name(identity) ?? String(identity)
        return cidrIdentity == 0 || cidrIdentity == identity ? id : "\(id) cidr \(cidrIdentity)"
    }
}

/// One write to the datapath's maps, in the order `PolicyDiff.operations` gives.
public enum DatapathOperation: Sendable, Hashable, CustomStringConvertible {
    case upsertPolicy(PolicyMapKey)
    case upsertIPCache(IPNetwork, IPCacheEntry)
    case deleteIPCache(IPNetwork)
    case deletePolicy(PolicyMapKey)

    public var description: String {
        switch self {
        case .upsertPolicy(let k): "policy + \(k)"
        case .upsertIPCache(let n, let e): "ipcache + \(n) -> \(e)"
        case .deleteIPCache(let n): "ipcache - \(n)"
        case .deletePolicy(let k): "policy - \(k)"
        }
    }
}

/// What one change does to the maps.
///
/// ## Order (`operations`)
///
/// 1. policy upserts: new allows, including the allow-all entry of a direction that stops
///    being isolated;
/// 2. ipcache upserts, longest prefix first;
/// 3. ipcache deletes, shortest prefix first;
/// 4. policy deletes: stale allows, including the allow-all entry of a direction that becomes
///    isolated (so a newly isolating policy's allows are in place before isolation starts).
///
/// Why this never opens a window: the policy map only allows, so between steps 1 and 4 it
/// holds the union of the old and the new allows. The ipcache order makes every address
/// resolve, at every moment, to either its old or its new entry. And no identity changes
/// meaning: a label identity is a label set, a CIDR identity a set of ipBlocks; a change moves
/// addresses to other identities instead. So for each direction at each pod, a connection
/// allowed both before and after is allowed throughout, and one denied before and after is
/// denied throughout.
///
/// Limits, inherent to enforcing at two ends: egress (at the source) and ingress (at the
/// destination) are updated independently, on different nodes too, so a change that flips
/// both directions of one connection can let it through between the two updates; and a pod's
/// traffic to itself (hairpin) during its own relabelling may see the union.
///
/// New endpoints (`endpointsAdded`) have their entries among the upserts: write the pod's
/// `trellis_endpoints` entry after step 1. Removed endpoints' entries are among the deletes:
/// remove the pod's `trellis_endpoints` entry before step 4.
public struct PolicyDiff: Sendable, Hashable, CustomStringConvertible {
    public var endpointsAdded: [PodKey: EndpointID] = [:]
    public var endpointsRemoved: [PodKey: EndpointID] = [:]
    /// Sorted.
    public var policyUpserts: [PolicyMapKey] = []
    /// Longest prefix first.
    public var ipcacheUpserts: [(prefix: IPNetwork, entry: IPCacheEntry)] = []
    /// Shortest prefix first.
    public var ipcacheDeletes: [IPNetwork] = []
    /// Sorted.
    public var policyDeletes: [PolicyMapKey] = []
    /// Identities that appeared, with their fingerprints (`trellis_identities`: write them
    /// with the upserts), and those that are gone (remove them after the deletes).
    public var identitiesBorn: [Identity: UInt64] = [:]
    public var identitiesDied: [Identity] = []

    public init() {}

    public var isEmpty: Bool {
        endpointsAdded.isEmpty && endpointsRemoved.isEmpty && policyUpserts.isEmpty
            && ipcacheUpserts.isEmpty && ipcacheDeletes.isEmpty && policyDeletes.isEmpty
            && identitiesBorn.isEmpty && identitiesDied.isEmpty
    }

    /// Every map write, in the order to apply them.
    public var operations: [DatapathOperation] {
        policyUpserts.map { .upsertPolicy($0) }
            + ipcacheUpserts.map { .upsertIPCache($0.prefix, $0.entry) }
            + ipcacheDeletes.map { .deleteIPCache($0) }
            + policyDeletes.map { .deletePolicy($0) }
    }

    public var description: String {
        var parts: [String] = []
        if !endpointsAdded.isEmpty { parts.append("\(endpointsAdded.count) endpoint(s) added") }
        if !endpointsRemoved.isEmpty { parts.append("\(endpointsRemoved.count) endpoint(s) removed") }
        parts.append("policy +\(policyUpserts.count) -\(policyDeletes.count)")
        parts.append("ipcache +\(ipcacheUpserts.count) -\(ipcacheDeletes.count)")
        return parts.joined(separator: ", ")
    }

    public static func == (a: PolicyDiff, b: PolicyDiff) -> Bool {
        a.endpointsAdded == b.endpointsAdded && a.endpointsRemoved == b.endpointsRemoved
            && a.policyUpserts == b.policyUpserts && a.policyDeletes == b.policyDeletes
            && a.ipcacheDeletes == b.ipcacheDeletes
            && a.ipcacheUpserts.map(\.prefix) == b.ipcacheUpserts.map(\.prefix)
            && a.ipcacheUpserts.map(\.entry) == b.ipcacheUpserts.map(\.entry)
    }

    public func hash(into h: inout Hasher) {
        h.combine(policyUpserts)
        h.combine(policyDeletes)
        h.combine(ipcacheDeletes)
        for u in ipcacheUpserts { h.combine(u.prefix); h.combine(u.entry) }
    }

    /// The diff from the maps as they are (`policy`, `ipcache`) to what they should be, in the
    /// same order; for a start-up against pinned maps.
    public static func between(programmedPolicy: Set<PolicyMapKey>, programmedIPCache: [IPNetwork: IPCacheEntry],
                               wantedPolicy: Set<PolicyMapKey>, wantedIPCache: [IPNetwork: IPCacheEntry],
                               programmedIdentities: [Identity: UInt64] = [:],
                               wantedIdentities: [Identity: UInt64] = [:]) -> PolicyDiff {
        var d = PolicyDiff()
        d.identitiesBorn = wantedIdentities.filter { programmedIdentities[$0.key] != $0.value }
        d.identitiesDied = programmedIdentities.keys.filter { wantedIdentities[$0] == nil }.sorted()
        d.policyUpserts = wantedPolicy.subtracting(programmedPolicy).sorted()
        d.policyDeletes = programmedPolicy.subtracting(wantedPolicy).sorted()
        d.ipcacheUpserts = wantedIPCache.filter { programmedIPCache[$0.key] != $0.value }
            .map { (prefix: $0.key, entry: $0.value) }
            .sorted { IPNetwork.specificFirst($0.prefix, $1.prefix) }
        d.ipcacheDeletes = programmedIPCache.keys.filter { wantedIPCache[$0] == nil }.sorted(by: IPNetwork.generalFirst)
        return d
    }
}

extension IPNetwork {
    /// Longer prefixes first; ties in address order.
    static func specificFirst(_ a: IPNetwork, _ b: IPNetwork) -> Bool {
        a.prefixLength != b.prefixLength ? a.prefixLength > b.prefixLength : policyOrder(a, b)
    }
    /// Shorter prefixes first; ties in address order.
    static func generalFirst(_ a: IPNetwork, _ b: IPNetwork) -> Bool {
        a.prefixLength != b.prefixLength ? a.prefixLength < b.prefixLength : policyOrder(a, b)
    }
}
