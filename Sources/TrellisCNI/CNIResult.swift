import TrellisNet

/// What ADD reports (and what CHECK and DEL get back as `prevResult`), in one model for every
/// supported spec version; the version only matters when the result is read or written
/// (`CNIResult+JSON.swift`).
public struct CNIResult: Sendable, Equatable {
    public struct Interface: Sendable, Equatable {
        public var name: String
        /// Kept as the text given: a result from another plugin may spell it any way (or
        /// carry a non-Ethernet address), and we only pass it along.
        public var mac: String?
        /// Written only in 1.1.0.
        public var mtu: Int?
        /// The namespace path for container interfaces; nil for host-side ones.
        public var sandbox: String?
        /// Written only in 1.1.0 (vhost-user and SR-IOV plugins fill these).
        public var socketPath: String?
        public var pciID: String?

        public init(name: String, mac: String? = nil, mtu: Int? = nil, sandbox: String? = nil,
                    socketPath: String? = nil, pciID: String? = nil) {
            self.name = name
            self.mac = mac
            self.mtu = mtu
            self.sandbox = sandbox
            self.socketPath = socketPath
            self.pciID = pciID
        }
    }

    public struct IPConfig: Sendable, Equatable {
        /// The interface address with its prefix length, host bits kept (`10.244.1.5/24`).
        public var address: IPNetwork
        public var gateway: IPAddress?
        /// Index into `interfaces`.
        public var interface: Int?

        public init(address: IPNetwork, gateway: IPAddress? = nil, interface: Int? = nil) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }
    }

    public struct Route: Sendable, Equatable {
        public var dst: IPNetwork
        /// nil: the route goes through the default gateway of the matching `ips` entry.
        public var gw: IPAddress?
        // Written only in 1.1.0.
        public var mtu: Int?
        public var advmss: Int?
        public var priority: Int?
        public var table: Int?
        public var scope: Int?

        public init(dst: IPNetwork, gw: IPAddress? = nil, mtu: Int? = nil, advmss: Int? = nil,
                    priority: Int? = nil, table: Int? = nil, scope: Int? = nil) {
            self.dst = dst
            self.gw = gw
            self.mtu = mtu
            self.advmss = advmss
            self.priority = priority
            self.table = table
            self.scope = scope
        }
    }

    public struct DNS: Sendable, Equatable {
        public var nameservers: [String]?
        public var domain: String?
        public var search: [String]?
        public var options: [String]?

        public init(nameservers: [String]? = nil, domain: String? = nil, search: [String]? = nil,
                    options: [String]? = nil) {
            self.nameservers = nameservers
            self.domain = domain
            self.search = search
            self.options = options
        }

        /// Nothing worth writing: the `dns` key is then left out.
        public var isEmpty: Bool {
            (nameservers ?? []).isEmpty && (domain ?? "").isEmpty && (search ?? []).isEmpty
                && (options ?? []).isEmpty
        }
    }

    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]
    public var dns: DNS

    public init(interfaces: [Interface] = [], ips: [IPConfig] = [], routes: [Route] = [], dns: DNS = DNS()) {
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }
}
