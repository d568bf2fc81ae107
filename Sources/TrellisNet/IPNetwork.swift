/// An address with a prefix length, as CNI writes them: `10.244.1.5/24`, `fd00::5/64`.
///
/// The address keeps its host bits (an interface address is `10.244.1.5/24`, not the subnet);
/// `network` gives the masked form when a subnet is meant.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible, Codable {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bitWidth else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `ADDR/LEN`; nil for anything else (a bare address is not a network).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let addr = IPAddress(parts[0]),
              let len = Int(parts[1]), String(len) == parts[1] else { return nil }
        self.init(address: addr, prefixLength: len)
    }

    public var family: IPAddress.Family { address.family }
    public var description: String { "\(address)/\(prefixLength)" }

    /// The subnet: host bits cleared.
    public var network: IPNetwork {
        IPNetwork(address: masked(address, keep: prefixLength), prefixLength: prefixLength)!
    }
    /// The first address of the subnet.
    public var first: IPAddress { masked(address, keep: prefixLength) }
    /// The last address of the subnet (the IPv4 broadcast address).
    public var last: IPAddress {
        switch address {
        case .v4(let v):
            let host: UInt32 = prefixLength == 0 ? .max : (prefixLength == 32 ? 0 : (UInt32.max >> prefixLength))
            return .v4(v | host)
        case .v6(let hi, let lo):
            let (mh, ml) = mask128(prefixLength)
            return .v6(hi | ~mh, lo | ~ml)
        }
    }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && masked(other, keep: prefixLength) == first
    }

    /// True when the two subnets share at least one address.
    public func overlaps(_ other: IPNetwork) -> Bool {
        family == other.family && (contains(other.first) || other.contains(first))
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let n = IPNetwork(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "\"\(text)\" is not an address with a prefix length (e.g. 10.0.0.1/24)"))
        }
        self = n
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

private func mask128(_ len: Int) -> (UInt64, UInt64) {
    let hi: UInt64 = len >= 64 ? .max : (len == 0 ? 0 : ~(UInt64.max >> len))
    let lo: UInt64 = len <= 64 ? 0 : (len >= 128 ? .max : ~(UInt64.max >> (len - 64)))
    return (hi, lo)
}

private func masked(_ a: IPAddress, keep len: Int) -> IPAddress {
    switch a {
    case .v4(let v):
        return .v4(len == 0 ? 0 : v & ~(UInt32.max >> len))
    case .v6(let hi, let lo):
        let (mh, ml) = mask128(len)
        return .v6(hi & mh, lo & ml)
    }
}

extension IPAddress: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPAddress(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "\"\(text)\" is not an IPv4 or IPv6 address"))
        }
        self = a
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
