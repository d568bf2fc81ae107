import TrellisNet
import TrellisNetlink

/// What the agent needs to know of a network device.
public struct LinkFacts: Sendable, Equatable {
    public var index: Int32
    public var name: String
    public var mtu: Int
    public var mac: MACAddress?

    public init(index: Int32, name: String, mtu: Int, mac: MACAddress? = nil) {
        self.index = index
        self.name = name
        self.mtu = mtu
        self.mac = mac
    }
}

/// Looks devices up in the agent's network namespace. nil means "no such device"; a throw
/// means the question could not be answered (and nothing may be concluded from it).
public protocol LinkInspector: Sendable {
    func link(named name: String) throws -> LinkFacts?
    func link(index: Int32) throws -> LinkFacts?
}

/// The real one: netlink in the namespace the agent runs in. One socket, opened on first use
/// and reopened after a failure, used under a lock (a `Netlink` has one owner at a time).
public final class NetlinkLinkInspector: LinkInspector {
    private let socket = Locked<Netlink?>(nil)

    public init() {}

    public func link(named name: String) throws -> LinkFacts? {
        try withNetlink { try $0.link(named: name) }
    }

    public func link(index: Int32) throws -> LinkFacts? {
        try withNetlink { try $0.link(index: index) }
    }

    private func withNetlink(_ body: (Netlink) throws -> LinkInfo?) throws -> LinkFacts? {
        try socket.withLock { nl in
            do {
                let open = try nl ?? Netlink()
                nl = open
                return try body(open).map { LinkFacts(index: $0.index, name: $0.name, mtu: $0.mtu, mac: $0.mac) }
            } catch {
                nl = nil
                throw error
            }
        }
    }
}
