import TrellisNet

/// An IP protocol number. Policy ports name TCP, UDP or SCTP; a verdict may be asked for any
/// protocol (ICMP is matched only by rules without ports).
public struct Proto: RawRepresentable, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let icmp = Proto(rawValue: 1)
    public static let tcp = Proto(rawValue: 6)
    public static let udp = Proto(rawValue: 17)
    public static let icmpv6 = Proto(rawValue: 58)
    public static let sctp = Proto(rawValue: 132)

    /// The protocols a NetworkPolicy port (and a container port) can name.
    public static let policyProtocols: [Proto] = [.tcp, .udp, .sctp]

    /// `TCP`, `UDP`, `SCTP` as the API spells them.
    public init?(name: String) {
        switch name {
        case "TCP": self = .tcp
        case "UDP": self = .udp
        case "SCTP": self = .sctp
        default: return nil
        }
    }

    /// Whether packets of this protocol have ports a policy can match.
    public var hasPorts: Bool { self == .tcp || self == .udp || self == .sctp }

    public var description: String {
        switch self {
        case .tcp: "TCP"
        case .udp: "UDP"
        case .sctp: "SCTP"
        case .icmp: "ICMP"
        case .icmpv6: "ICMPv6"
        default: "proto-\(rawValue)"
        }
    }

    public static func < (a: Proto, b: Proto) -> Bool { a.rawValue < b.rawValue }
}

/// Which way traffic goes, seen from the pod a policy selects.
public enum PolicyDirection: String, Sendable, Hashable, CaseIterable, Comparable, CustomStringConvertible {
    case ingress = "Ingress"
    case egress = "Egress"

    public var description: String { rawValue }
    /// For messages: "ingress", "egress".
    public var word: String { self == .ingress ? "ingress" : "egress" }
    public static func < (a: Self, b: Self) -> Bool { a == .ingress && b == .egress }
}

/// namespace/name of a namespaced object.
public struct ObjectKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var name: String
    public init(_ namespace: String, _ name: String) {
        self.namespace = namespace
        self.name = name
    }
    public var description: String { "\(namespace)/\(name)" }
    public static func < (a: Self, b: Self) -> Bool { (a.namespace, a.name) < (b.namespace, b.name) }
}

public typealias PodKey = ObjectKey
public typealias PolicyKey = ObjectKey

// MARK: - NetworkPolicy

/// A `networking.k8s.io/v1` NetworkPolicy, validated (see `NetworkPolicy.init(parsing:)`).
public struct NetworkPolicy: Sendable, Hashable {
    public var namespace: String
    public var name: String
    /// Selects the pods of `namespace` this policy applies to; `{}` selects all of them.
    public var podSelector: LabelSelector
    /// As written; nil (or empty) means the API default, see `effectivePolicyTypes`.
    public var policyTypes: [PolicyDirection]?
    public var ingress: [PolicyRule]
    public var egress: [PolicyRule]

    public init(namespace: String, name: String, podSelector: LabelSelector = .everything,
                policyTypes: [PolicyDirection]? = nil, ingress: [PolicyRule] = [], egress: [PolicyRule] = []) {
        self.namespace = namespace
        self.name = name
        self.podSelector = podSelector
        self.policyTypes = policyTypes
        self.ingress = ingress
        self.egress = egress
    }

    public var key: PolicyKey { PolicyKey(namespace, name) }

    /// The API server's defaulting: without `policyTypes`, Ingress always, and Egress when the
    /// policy has at least one egress rule.
    public var effectivePolicyTypes: Set<PolicyDirection> {
        if let types = policyTypes, !types.isEmpty { return Set(types) }
        return egress.isEmpty ? [.ingress] : [.ingress, .egress]
    }

    /// Whether the policy isolates the pods it selects in `direction`.
    public func applies(to direction: PolicyDirection) -> Bool { effectivePolicyTypes.contains(direction) }

    public func rules(_ direction: PolicyDirection) -> [PolicyRule] {
        direction == .ingress ? ingress : egress
    }
}

/// One ingress rule (`from` peers) or egress rule (`to` peers). Traffic matches when it matches
/// one of the peers (no peers: any source or destination, in the cluster or not) and one of the
/// ports (no ports: every port of every protocol).
public struct PolicyRule: Sendable, Hashable {
    public var peers: [PolicyPeer]
    public var ports: [PolicyPort]
    public init(peers: [PolicyPeer] = [], ports: [PolicyPort] = []) {
        self.peers = peers
        self.ports = ports
    }
}

/// A `NetworkPolicyPeer`: pods by selectors, or addresses by `ipBlock` (never both).
public struct PolicyPeer: Sendable, Hashable {
    /// Pods of the policy's namespace (without `namespaceSelector`) or of the selected
    /// namespaces (with it). nil: not given.
    public var podSelector: LabelSelector?
    /// Namespaces whose pods (all of them, or those `podSelector` selects) match. nil: not given.
    public var namespaceSelector: LabelSelector?
    public var ipBlock: IPBlock?

    public init(podSelector: LabelSelector? = nil, namespaceSelector: LabelSelector? = nil, ipBlock: IPBlock? = nil) {
        self.podSelector = podSelector
        self.namespaceSelector = namespaceSelector
        self.ipBlock = ipBlock
    }

    public static func pods(_ selector: LabelSelector) -> PolicyPeer { PolicyPeer(podSelector: selector) }
    public static func namespaces(_ selector: LabelSelector) -> PolicyPeer { PolicyPeer(namespaceSelector: selector) }
    public static func block(_ block: IPBlock) -> PolicyPeer { PolicyPeer(ipBlock: block) }
}

/// `cidr` minus every `except`. Both kept as networks (host bits cleared), excepts sorted.
public struct IPBlock: Sendable, Hashable, CustomStringConvertible {
    public let cidr: IPNetwork
    public let except: [IPNetwork]

    /// Nil unless every except lies strictly inside `cidr` (same family, longer prefix).
    public init?(cidr: IPNetwork, except: [IPNetwork] = []) {
        let c = cidr.network
        var ex: [IPNetwork] = []
        for e in except {
            let n = e.network
            guard n.family == c.family, n.prefixLength > c.prefixLength, c.contains(n.first) else { return nil }
            if !ex.contains(n) { ex.append(n) }
        }
        self.cidr = c
        self.except = ex.sorted(by: IPNetwork.policyOrder)
    }

    public func contains(_ address: IPAddress) -> Bool {
        cidr.contains(address) && !except.contains { $0.contains(address) }
    }

    public var description: String {
        except.isEmpty ? "\(cidr)" : "\(cidr) except \(except.map(\.description).joined(separator: ", "))"
    }
}

/// A `NetworkPolicyPort`.
public struct PolicyPort: Sendable, Hashable, CustomStringConvertible {
    public enum Port: Sendable, Hashable {
        case number(UInt16)
        /// A container port name, resolved per destination pod.
        case named(String)
    }

    public var proto: Proto
    /// nil: every port of `proto`.
    public var port: Port?
    /// With a numeric `port`: the last port of the range `port...endPort`.
    public var endPort: UInt16?

    public init(_ proto: Proto = .tcp, _ port: Port? = nil, endPort: UInt16? = nil) {
        self.proto = proto
        self.port = port
        self.endPort = endPort
    }

    public static func tcp(_ port: UInt16, endPort: UInt16? = nil) -> PolicyPort { PolicyPort(.tcp, .number(port), endPort: endPort) }
    public static func udp(_ port: UInt16, endPort: UInt16? = nil) -> PolicyPort { PolicyPort(.udp, .number(port), endPort: endPort) }
    public static func sctp(_ port: UInt16, endPort: UInt16? = nil) -> PolicyPort { PolicyPort(.sctp, .number(port), endPort: endPort) }
    public static func named(_ name: String, _ proto: Proto = .tcp) -> PolicyPort { PolicyPort(proto, .named(name)) }

    /// The numeric range this port matches regardless of the destination; nil for a named port.
    public var numericRange: ClosedRange<UInt16>? {
        switch port {
        case nil: 0...UInt16.max
        case .number(let p): p...max(p, endPort ?? p)
        case .named: nil
        }
    }

    /// Whether a packet to `port`/`proto` at a destination with `destinationPorts` matches.
    public func matches(port p: UInt16, proto q: Proto, destinationPorts: [NamedPort]) -> Bool {
        guard q == proto else { return false }
        switch port {
        case nil: return true
        case .number(let n): return p >= n && p <= max(n, endPort ?? n)
        case .named(let name): return destinationPorts.contains { $0.name == name && $0.proto == q && $0.port == p }
        }
    }

    public var description: String {
        switch port {
        case nil: "\(proto) (all ports)"
        case .number(let p): endPort.map { "\(p)-\($0)/\(proto)" } ?? "\(p)/\(proto)"
        case .named(let n): "\(n)/\(proto)"
        }
    }
}

// MARK: - Cluster objects as the policy engine sees them

/// A named container port of a pod (`containers[].ports[]` with a `name`).
public struct NamedPort: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var name: String
    public var port: UInt16
    public var proto: Proto
    public init(_ name: String, _ port: UInt16, _ proto: Proto = .tcp) {
        self.name = name
        self.port = port
        self.proto = proto
    }
    public var description: String { "\(name)/\(proto)=\(port)" }
    public static func < (a: Self, b: Self) -> Bool { (a.name, a.proto, a.port) < (b.name, b.proto, b.port) }
}

/// A pod on the pod network. The agent maps its own pod type to this (leaving out host-network
/// and finished pods, whose IPs are not theirs).
public struct PodInfo: Sendable, Hashable {
    public var namespace: String
    public var name: String
    public var labels: Labels
    /// `status.podIPs`; empty while pending.
    public var ips: [IPAddress]
    /// `spec.nodeName`; nil while unscheduled.
    public var node: String?
    /// The containers' named ports; unnamed ones do not matter to policy.
    public var namedPorts: [NamedPort]

    public init(namespace: String, name: String, labels: Labels = [:], ips: [IPAddress] = [],
                node: String? = nil, namedPorts: [NamedPort] = []) {
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.ips = ips
        self.node = node
        self.namedPorts = namedPorts.sorted()
    }

    public var key: PodKey { PodKey(namespace, name) }
}

public struct NamespaceInfo: Sendable, Hashable {
    public var name: String
    public var labels: Labels
    public init(name: String, labels: Labels = [:]) {
        self.name = name
        self.labels = labels
    }

    /// The label every namespace carries (set by the API server since 1.21).
    public static let nameLabel = "kubernetes.io/metadata.name"

    /// The labels selectors see: the object's, plus `kubernetes.io/metadata.name=<name>`.
    public var effectiveLabels: Labels {
        var l = labels
        l[Self.nameLabel] = name
        return l
    }
}

/// A node: its host is always allowed to reach the pods on it; its addresses are otherwise
/// like any address outside the pod network (an ipBlock may match them).
public struct NodeInfo: Sendable, Hashable {
    public var name: String
    public var ips: [IPAddress]
    public init(name: String, ips: [IPAddress] = []) {
        self.name = name
        self.ips = ips
    }
}

extension IPNetwork {
    /// Family, then address, then prefix length: a stable order for output.
    static func policyOrder(_ a: IPNetwork, _ b: IPNetwork) -> Bool {
        if a.address != b.address { return a.address < b.address }
        return a.prefixLength < b.prefixLength
    }

    /// The host prefix of an address (/32, /128).
    static func host(_ a: IPAddress) -> IPNetwork { IPNetwork(address: a, prefixLength: a.bitWidth)! }

    /// Whether `other` lies inside this network (or equals it).
    func covers(_ other: IPNetwork) -> Bool {
        family == other.family && prefixLength <= other.prefixLength && contains(other.first)
    }
}
