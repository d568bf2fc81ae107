import TrellisCNI
import TrellisIPAM
import TrellisNet
import TrellisNetlink

/// CHECK: the attachment still looks as prevResult says: the interface exists in the pod with
/// its MAC and MTU, up, holding every address, with every route; the host side is connected
/// for the mode; the addresses are still allocated to this attachment.
func cmdCheck(env: CNIEnvironment, conf: NetConf) throws(CNIError) {
    guard let prev = conf.prevResult else {
        throw .invalidConfig("prevResult: CHECK needs the result of the ADD it verifies")
    }
    let podNS = try env.openPodNamespace()
    let netnsPath = podNS.path

    guard let podIndex = prev.interfaces.firstIndex(where: { $0.name == env.ifName && $0.sandbox != nil }) else {
        throw .mismatch("prevResult lists no interface \(env.ifName) inside a sandbox")
    }
    let expected = prev.interfaces[podIndex]
    let ours = prev.ips.filter { $0.interface == podIndex }
    let hostVethName = HostVethName.of(containerID: env.containerID, ifName: env.ifName)
    let wiring = wiring(for: conf.mode)

    try reportingDatapathErrors {
        let pod = try Netlink(namespace: podNS)
        guard let link = try pod.link(named: env.ifName) else {
            throw CNIError.mismatch("interface \(env.ifName) does not exist in \(netnsPath)")
        }
        if let mac = expected.mac, link.mac?.description != mac.lowercased() {
            throw CNIError.mismatch("interface \(env.ifName) has MAC \(link.mac?.description ?? "none"), prevResult says \(mac)")
        }
        if link.mtu != conf.mtu {
            throw CNIError.mismatch("interface \(env.ifName) has MTU \(link.mtu), the config says \(conf.mtu)")
        }
        if !link.isUp { throw CNIError.mismatch("interface \(env.ifName) is down") }
        let present = try pod.addresses(index: link.index)
        for ip in ours where !present.contains(ip.address) {
            throw CNIError.mismatch("interface \(env.ifName) lacks address \(ip.address)")
        }
        let podRoutes = try pod.routes()
        for r in prev.routes {
            let found = podRoutes.contains { $0.destination == r.dst.network && $0.gateway == r.gw }
            if !found { throw CNIError.mismatch("pod has no route to \(r.dst)\(r.gw.map { " via \($0)" } ?? "")") }
        }

        let host = try Netlink()
        guard let hostVeth = try host.link(named: hostVethName) else {
            throw CNIError.mismatch("host veth \(hostVethName) does not exist")
        }
        if !hostVeth.isUp { throw CNIError.mismatch("host veth \(hostVethName) is down") }
        let allocated = ours.map { ip in
            conf.ranges.first { $0.subnet.contains(ip.address.address) }
                .map { IPNetwork(address: ip.address.address, prefixLength: $0.subnet.prefixLength)! } ?? ip.address
        }
        if let difference = try wiring.checkHostSide(host, hostVeth: hostVeth, addresses: allocated, conf: conf) {
            throw CNIError.mismatch(difference)
        }

        let store = try conf.openIPAM()
        let allocation: Allocation?
        do { allocation = try store.allocation(for: env.attachmentKey) } catch let e as IPAMError { throw CNIError.ipam(e) }
        guard let allocation else {
            throw CNIError.mismatch("no addresses are allocated to \(env.containerID)/\(env.ifName)")
        }
        let held = Set(allocation.addresses.map(\.address))
        for ip in ours where !held.contains(ip.address.address) {
            throw CNIError.mismatch("address \(ip.address.address) is not allocated to \(env.containerID)/\(env.ifName)")
        }
    }
}
