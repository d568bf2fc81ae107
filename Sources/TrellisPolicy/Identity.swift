import TrellisNet

/// A security identity: the number the datapath's ipcache gives an address and its policy map
/// keys on. Node-local: each agent numbers the identities itself, and the datapath never carries
/// them between nodes (every node resolves addresses through its own ipcache).
///
/// | range                     | meaning                                                      |
/// |---------------------------|--------------------------------------------------------------|
/// | 0                         | `any`: the wildcard peer of a policy map key, never an address's |
/// | 1                         | `host`: this node's own addresses                            |
/// | 2                         | `world`: an address no ipcache entry covers                  |
/// | 3                         | `unmanaged`: reserved for addresses of pods not known (yet)  |
/// | 256 ..< 0x0100_0000       | label identities: one per distinct label set of pods         |
/// | 0x0100_0000 ...           | CIDR identities: one per distinct ipBlock membership          |
public typealias Identity = UInt32

public enum ReservedIdentity {
    public static let any: Identity = 0
    public static let host: Identity = 1
    public static let world: Identity = 2
    public static let unmanaged: Identity = 3

    public static let labelRange: ClosedRange<Identity> = 256...0x00FF_FFFF
    public static let cidrRange: ClosedRange<Identity> = 0x0100_0000...0xFFFF_FFFE

    public static func name(_ id: Identity) -> String? {
        switch id {
        case any: "any"
        case host: "host"
        case world: "world"
        case unmanaged: "unmanaged"
        default: nil
        }
    }
}

/// The label set of a label identity: pod labels, the namespace's labels (prefixed `ns:`) and
/// name (`ns:name=<namespace>`), and the pod's named ports (`port:<name>/<proto>=<number>`).
///
/// The named ports are part of it so that an egress rule's named port, which resolves at the
/// destination pod, can compile to (identity, port) entries exactly: pods that share an
/// identity share their port numbers. Pods of one workload have the same ports, so this adds
/// identities only where two pods with equal labels name ports differently.
public struct LabelIdentityKey: Sendable, Hashable {
    public let namespace: String
    public let podLabels: Labels
    /// The namespace object's labels, without the implied `kubernetes.io/metadata.name`.
    public let namespaceLabels: Labels
    public let namedPorts: [NamedPort]

    public init(namespace: String, podLabels: Labels, namespaceLabels: Labels, namedPorts: [NamedPort]) {
        self.namespace = namespace
        self.podLabels = podLabels
        var ns = namespaceLabels
        ns[NamespaceInfo.nameLabel] = nil
        self.namespaceLabels = ns
        self.namedPorts = namedPorts.sorted()
        ns[NamespaceInfo.nameLabel] = namespace
        self.effectiveNamespaceLabels = ns
    }

    /// The labels of the set, sorted: `app=web`, `ns:name=x`, `ns:team=a`, `port:http/TCP=8080`.
    public var labels: [String] {
        podLabels.map { "\($0.key)=\($0.value)" }.sorted()
            + (["ns:name=\(namespace)"] + namespaceLabels.map { "ns:\($0.key)=\($0.value)" }).sorted()
            + namedPorts.map { "port:\($0)" }
    }

    /// What namespace selectors see (derived from the above, kept to match selectors cheaply).
    public let effectiveNamespaceLabels: Labels

    /// A 64-bit digest of the label set (see `IdentityFingerprint`).
    public var fingerprint: UInt64 { IdentityFingerprint.of(kind: "label", labels) }
}

/// What a restarted agent recognises an identity by: a digest of its labels, kept beside the
/// maps (`trellis_identities`), so a number found in the maps is reused for the same label set
/// and never given to another one.
public enum IdentityFingerprint {
    /// FNV-1a 64 of the kind and the labels, one per line.
    public static func of(kind: String, _ labels: [String]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in ([kind] + labels).joined(separator: "\n").utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        return h
    }
}

/// What a CIDR identity stands for: the ipBlocks an address lies in (`cidr` and no `except`),
/// plus, for a pod's address, the pod's named ports (see `LabelIdentityKey`).
///
/// Keyed on the membership rather than on the longest prefix, an identity's meaning never
/// changes while it exists: adding or removing an ipBlock moves the affected addresses to
/// other identities instead of changing what an existing one allows. That is what makes the
/// update order of `PolicyDiff` safe.
public struct CIDRIdentityKey: Sendable, Hashable {
    /// Sorted by description, distinct, never empty.
    public var blocks: [IPBlock]
    public var namedPorts: [NamedPort]

    init(blocks: [IPBlock], namedPorts: [NamedPort]) {
        self.blocks = blocks
        self.namedPorts = namedPorts
    }

    public var labels: [String] {
        blocks.map { "cidr:\($0)" } + namedPorts.map { "port:\($0)" }
    }

    public var fingerprint: UInt64 { IdentityFingerprint.of(kind: "cidr", labels) }
}

/// Numbers for keys: the same key keeps its number while anything refers to it; numbers of
/// released keys are reused only after the range is exhausted (oldest first), so a number never
/// changes meaning within one update.
struct IdentityTable<Key: Hashable & Sendable>: Sendable {
    private(set) var ids: [Key: Identity] = [:]
    private(set) var keys: [Identity: Key] = [:]
    private var refs: [Identity: Int] = [:]
    private var next: Identity
    private let range: ClosedRange<Identity>
    private var released: [Identity] = []
    private var releasedHead = 0

    init(range: ClosedRange<Identity>) {
        self.range = range
        self.next = range.lowerBound
    }

    var count: Int { ids.count }

    func id(_ key: Key) -> Identity? { ids[key] }
    func key(_ id: Identity) -> Key? { keys[id] }

    /// Numbers that must not be handed out fresh (a restarted agent finds them in the maps,
    /// maybe with another meaning): new numbers start above the highest of them.
    mutating func avoid(_ used: some Sequence<Identity>) {
        guard let top = used.filter({ range.contains($0) }).max(), top >= next else { return }
        next = top == range.upperBound ? range.lowerBound - 1 : top + 1
    }

    /// One more reference; `born` when the key had none. A new key gets `preferred` when that
    /// number is in the range and free (a restarted agent keeps the number it finds for the
    /// same key).
    mutating func retain(_ key: Key, preferring preferred: Identity? = nil) -> (id: Identity, born: Bool) {
        if let id = ids[key] {
            refs[id, default: 0] += 1
            return (id, false)
        }
        let id: Identity
        if let preferred, range.contains(preferred), keys[preferred] == nil {
            id = preferred
            if let i = released[releasedHead...].firstIndex(of: preferred) { released.remove(at: i) }
        } else if next <= range.upperBound && next >= range.lowerBound {
            id = next
            next = next == range.upperBound ? range.lowerBound - 1 : next + 1
        } else {
            precondition(releasedHead < released.count, "identity range \(range) exhausted")
            id = released[releasedHead]
            releasedHead += 1
            if releasedHead > 1024 && releasedHead * 2 > released.count {
                released.removeFirst(releasedHead)
                releasedHead = 0
            }
        }
        ids[key] = id
        keys[id] = key
        refs[id] = 1
        return (id, true)
    }

    /// One reference less; true when that was the last one (the number is then free).
    @discardableResult
    mutating func release(_ id: Identity) -> Bool {
        guard let n = refs[id] else { return false }
        if n > 1 {
            refs[id] = n - 1
            return false
        }
        refs[id] = nil
        if let key = keys.removeValue(forKey: id) { ids[key] = nil }
        released.append(id)
        return true
    }
}
