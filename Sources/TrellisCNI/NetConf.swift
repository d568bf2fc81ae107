import TrellisCore
import TrellisNet

/// The plugin's network configuration (docs/cni-config.md), with every default resolved and
/// every value validated, so the plugin never has to re-check it.
public struct NetConf: Sendable, Equatable {
    public static let defaultBridgeName = "trellis0"
    public static let defaultHostDevice = "trellis_host"
    public static let defaultMTU = 1500
    public static let defaultDataDir = "/var/lib/cni/trellis"
    public static let ipamType = "trellis"
    /// The smallest MTU Linux lets an interface carry IPv4 on (RFC 791's 576-byte datagram).
    public static let minimumMTU = 576
    /// RFC 8200: an IPv6 link must carry 1280-byte packets.
    public static let minimumIPv6MTU = 1280
    public static let maximumMTU = 65535

    /// The version the runtime speaks; results and errors are written in it.
    public let cniVersion: String
    public let name: String
    public let mode: DatapathMode
    public let bridgeName: String
    public let hostDevice: String
    public let mtu: Int
    /// At most one per family, in config order.
    public let ranges: [IPRange]
    /// Never handed out; single addresses as /32 or /128, subnets masked.
    public let reserved: [IPNetwork]
    public let dataDir: String
    /// When nil the plugin runs standalone.
    public let agentSocket: String?
    /// The previous plugin's result in a chain (CHECK and DEL get ours back here).
    public let prevResult: CNIResult?
    /// `cni.dev/valid-attachments`, which the runtime sends with GC: everything not listed
    /// may be released.
    public let validAttachments: [Attachment]?

    /// Where this network's allocations persist: `<dataDir>/<name>`.
    public var networkDataDir: String { dataDir + "/" + name }

    /// Takes the values as they are, without the checks `parse` makes: for callers (tests
    /// mostly) that build a config in code.
    public init(cniVersion: String, name: String, mode: DatapathMode = .bridge,
                bridgeName: String = NetConf.defaultBridgeName,
                hostDevice: String = NetConf.defaultHostDevice, mtu: Int = NetConf.defaultMTU,
                ranges: [IPRange], reserved: [IPNetwork] = [], dataDir: String = NetConf.defaultDataDir,
                agentSocket: String? = nil, prevResult: CNIResult? = nil,
                validAttachments: [Attachment]? = nil) {
        self.cniVersion = cniVersion
        self.name = name
        self.mode = mode
        self.bridgeName = bridgeName
        self.hostDevice = hostDevice
        self.mtu = mtu
        self.ranges = ranges
        self.reserved = reserved
        self.dataDir = dataDir
        self.agentSocket = agentSocket
        self.prevResult = prevResult
        self.validAttachments = validAttachments
    }

    /// The range for one family, if configured.
    public func range(for family: IPAddress.Family) -> IPRange? {
        ranges.first { $0.family == family }
    }
}

/// One subnet the plugin allocates from. The gateway may fall inside [rangeStart, rangeEnd];
/// the allocator skips it rather than forcing operators to carve it out.
public struct IPRange: Sendable, Equatable, Hashable {
    /// Host bits cleared.
    public let subnet: IPNetwork
    public let rangeStart: IPAddress
    public let rangeEnd: IPAddress
    public let gateway: IPAddress

    public init(subnet: IPNetwork, rangeStart: IPAddress, rangeEnd: IPAddress, gateway: IPAddress) {
        self.subnet = subnet
        self.rangeStart = rangeStart
        self.rangeEnd = rangeEnd
        self.gateway = gateway
    }

    public var family: IPAddress.Family { subnet.family }

    public func contains(_ address: IPAddress) -> Bool {
        address.family == family && rangeStart <= address && address <= rangeEnd
    }
}

/// A container interface the runtime still uses, as `cni.dev/valid-attachments` lists them.
public struct Attachment: Hashable, Codable, Sendable {
    public let containerID: String
    public let ifname: String

    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }
}
