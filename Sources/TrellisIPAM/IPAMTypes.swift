#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TrellisNet

/// One address range of `ipam.ranges`: addresses are handed out from `rangeStart...rangeEnd`
/// inside `subnet`, never the network address, the IPv4 broadcast or the gateway.
public struct IPAMRange: Sendable, Hashable, CustomStringConvertible {
    /// The subnet, host bits cleared.
    public var subnet: IPNetwork
    public var rangeStart: IPAddress
    public var rangeEnd: IPAddress
    public var gateway: IPAddress?

    /// Missing bounds take the defaults of docs/cni-config.md: `rangeStart` is the first address
    /// after the network address, `rangeEnd` the last before the IPv4 broadcast (the last address
    /// for IPv6). IPv4 /31 and /32 and IPv6 /127 and /128 have no network or broadcast address
    /// (RFC 3021, RFC 6164), so there the bounds are the subnet's first and last addresses.
    /// `gateway` has no default here: nil means no gateway.
    public init(subnet: IPNetwork, rangeStart: IPAddress? = nil, rangeEnd: IPAddress? = nil,
                gateway: IPAddress? = nil) {
        let net = subnet.network
        self.subnet = net
        let excludesNetwork = net.prefixLength < net.address.bitWidth - 1
        let defaultStart = excludesNetwork ? (net.first.advanced(by: 1) ?? net.first) : net.first
        let defaultEnd = excludesNetwork && net.family == .v4 ? (net.last.advanced(by: -1) ?? net.last) : net.last
        self.rangeStart = rangeStart ?? defaultStart
        self.rangeEnd = rangeEnd ?? defaultEnd
        self.gateway = gateway
    }

    /// `10.244.1.0/24 (10.244.1.10-10.244.1.200)`
    public var description: String { "\(subnet) (\(rangeStart)-\(rangeEnd))" }

    /// The subnet's network address, unless the prefix is /31, /32, /127 or /128.
    var networkAddress: IPAddress? {
        subnet.prefixLength < subnet.address.bitWidth - 1 ? subnet.first : nil
    }
    /// The IPv4 broadcast address, unless the prefix is /31 or /32.
    var broadcastAddress: IPAddress? {
        subnet.family == .v4 && subnet.prefixLength < 31 ? subnet.last : nil
    }

    /// Throws `invalidRange` when the bounds are of another family, outside the subnet or reversed.
    func validate() throws(IPAMError) {
        for (name, a) in [("rangeStart", rangeStart), ("rangeEnd", rangeEnd)] {
            guard a.family == subnet.family else {
                throw .invalidRange("\(name) \(a) is not of the family of subnet \(subnet)")
            }
            guard subnet.contains(a) else {
                throw .invalidRange("\(name) \(a) is outside subnet \(subnet)")
            }
        }
        guard rangeStart <= rangeEnd else {
            throw .invalidRange("rangeStart \(rangeStart) is after rangeEnd \(rangeEnd) in subnet \(subnet)")
        }
        if let g = gateway, g.family != subnet.family {
            throw .invalidRange("gateway \(g) is not of the family of subnet \(subnet)")
        }
    }
}

/// What an allocation belongs to: one interface of one container (the CNI attachment).
public struct AttachmentKey: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public var containerID: String
    public var ifname: String

    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }

    public static func < (a: AttachmentKey, b: AttachmentKey) -> Bool {
        (a.containerID, a.ifname) < (b.containerID, b.ifname)
    }

    public var description: String { "\(containerID)/\(ifname)" }
}

/// The addresses held by one attachment, one per range, in the order of the ranges.
public struct Allocation: Codable, Sendable, Equatable {
    public var key: AttachmentKey
    /// Each address with its subnet's prefix length, e.g. `10.244.1.5/24`.
    public var addresses: [IPNetwork]
    /// The gateway of each address's range (nil when the range has none); parallel to `addresses`.
    public var gateways: [IPAddress?]

    public init(key: AttachmentKey, addresses: [IPNetwork], gateways: [IPAddress?]) {
        self.key = key
        self.addresses = addresses
        self.gateways = gateways
    }
}

public enum IPAMError: Error, CustomStringConvertible, Equatable {
    /// Every address of the range is allocated or excluded. `inUse` counts the allocated
    /// addresses of the range; `excluded` (decimal, may exceed 64 bits) the addresses of the range
    /// never handed out: reserved, gateway, network and broadcast addresses.
    case exhausted(subnet: IPNetwork, rangeStart: IPAddress, rangeEnd: IPAddress, inUse: Int, excluded: String)
    /// The state file exists but cannot be decoded; it is left untouched.
    case stateCorrupt(path: String, reason: String)
    /// A system call failed.
    case io(path: String, errno: Int32, operation: String)
    /// A range is inconsistent (bounds outside the subnet, reversed, of another family), or no range was given.
    case invalidRange(String)

    public var description: String {
        switch self {
        case .exhausted(let subnet, let start, let end, let inUse, let excluded):
            let more = excluded == "0" ? "" : "; \(excluded) more reserved or excluded"
            return "no free address in \(subnet) (range \(start)-\(end): all \(inUse) assignable addresses in use\(more))"
        case .stateCorrupt(let path, let reason):
            return "IPAM state file \(path) is corrupt: \(reason); it was left untouched, repair or remove it"
        case .io(let path, let code, let operation):
            return "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))"
        case .invalidRange(let reason):
            return "invalid IPAM range: \(reason)"
        }
    }
}
