import TrellisNet
import TrellisNetlink

/// The overlay device and its routes on netlink, in the agent's network namespace: the host
/// side of the real datapath (`BPFDatapathProgrammer` delegates to it).
///
/// Why a veth pair and not a dummy device: many kernels ship without the dummy driver (this
/// one included), veth is always there. Only the first end is used: the stack transmits into it
/// (the datapath's tc egress program takes every packet), and decapsulated replies are
/// redirected to its ingress. The device has no ARP, so the kernel sends on its routes without
/// resolving a neighbour, and holds the pods' gateway addresses (host prefixes), so that its
/// routes have a source the other nodes route back here and a masquerade onto it picks one.
public final class OverlayDeviceNetlink: @unchecked Sendable {
    // One netlink socket, opened on first use, reopened after a failure; used under the lock.
    private let socket = Locked<Netlink?>(nil)

    public init() {}

    /// The peer of the overlay device: `NAME_p` (cut so that it fits IFNAMSIZ).
    public static func peerName(of name: String) -> String { String(name.prefix(13)) + "_p" }

    public func ensure(name: String, mtu: Int, addresses: [IPAddress]) throws -> OverlayDevice {
        try withNetlink { nl in
            var device = try nl.ensureVethPair(name: name, peerName: Self.peerName(of: name))
            if !device.noARP || device.mtu != mtu {
                try nl.setLink(index: device.index, mtu: mtu, noARP: true)
                device.mtu = mtu
            }
            let wanted = Set(addresses.map { IPNetwork(address: $0, prefixLength: $0.bitWidth)! })
            let present = try nl.addresses(index: device.index)
            for address in wanted.sorted(by: { $0.address < $1.address }) where !present.contains(address) {
                try nl.addAddress(address, index: device.index, existingIsFine: true)
            }
            // A gateway of a pod CIDR the node no longer has; the kernel's link-local stays.
            for address in present where !wanted.contains(address) && !address.address.isLinkLocal {
                try nl.deleteAddress(address, index: device.index)
            }
            guard let mac = device.mac else {
                throw NetlinkError("use \(name) as the overlay device", kind: .other, reason: "it has no MAC address")
            }
            return OverlayDevice(ifindex: device.index, name: name, mac: mac)
        }
    }

    public func routes(_ device: OverlayDevice) throws -> [IPNetwork: IPAddress] {
        try withNetlink { nl in
            var out: [IPNetwork: IPAddress] = [:]
            for r in try nl.routes() where r.outputIndex == device.ifindex && r.proto == RouteInfo.protocolTrellis {
                if let source = r.preferredSource { out[r.destination] = source }
            }
            return out
        }
    }

    public func upsertRoute(_ destination: IPNetwork, source: IPAddress, device: OverlayDevice) throws {
        try withNetlink { nl in
            try nl.addRoute(RouteInfo(destination: destination, outputIndex: device.ifindex, preferredSource: source,
                                      proto: RouteInfo.protocolTrellis), replace: true)
        }
    }

    public func deleteRoute(_ destination: IPNetwork, device: OverlayDevice) throws {
        try withNetlink { nl in
            _ = try nl.deleteRoute(RouteInfo(destination: destination, outputIndex: device.ifindex))
        }
    }

    private func withNetlink<T>(_ body: (Netlink) throws -> T) throws -> T {
        try socket.withLock { nl in
            do {
                let open = try nl ?? Netlink()
                nl = open
                return try body(open)
            } catch {
                nl = nil
                throw error
            }
        }
    }
}
