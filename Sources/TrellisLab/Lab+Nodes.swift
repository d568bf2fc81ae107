import TrellisNet
import TrellisNetlink
#if canImport(Glibc)
import Glibc
#endif

/// The lab's machines: the underlay, a bridge in a namespace of its own with one port per
/// node, and each node: a namespace wired to it by a veth (eth0 inside), its folders and its
/// bpffs mount.
extension Lab {
    /// Makes the underlay and the nodes of `state`. Their names are in the saved state before
    /// this runs, so what a failure part-way leaves is found and removed by teardown.
    func makeUnderlayAndNodes(_ state: LabState) throws {
        let underlay = try NetworkNamespace.create(named: state.underlayNetns)
        let unl = try Netlink(namespace: underlay)
        let bridge = try unl.ensureLink(name: Self.underlayBridge, kind: "bridge", mtu: Self.underlayMTU)
        try unl.setLink(index: bridge.index, up: true)
        say("underlay: netns \(state.underlayNetns), bridge \(Self.underlayBridge), 192.168.200.0/\(LabLayout.underlayPrefix)")

        for node in state.nodes {
            try Interrupts.check()
            let ns = try NetworkNamespace.create(named: node.netns)   // lo up
            let mac = MACAddress(bytes: [0x02, 0x00, 0xc0, 0xa8, 0xc8, UInt8(10 + node.index)])
            try unl.addVethPair(name: node.name, peerName: "eth0", peerNamespace: ns, mtu: Self.underlayMTU, peerMAC: mac)
            guard let port = try unl.link(named: node.name) else {
                throw LabError("underlay port \(node.name) vanished after its creation")
            }
            try unl.setLink(index: port.index, up: true, masterIndex: bridge.index)
            let nnl = try Netlink(namespace: ns)
            guard let eth0 = try nnl.link(named: "eth0") else { throw LabError("\(node.name): eth0 missing after its creation") }
            let address = IPNetwork("\(node.nodeIP)/\(LabLayout.underlayPrefix)")!
            try nnl.addAddress(address, index: eth0.index)
            try nnl.setLink(index: eth0.index, up: true)
            // What a real node's default route does for Service addresses: the node's own
            // connections to a cluster IP need a route before kube-proxy's DNAT reroutes them.
            try nnl.addRoute(RouteInfo(destination: LabServices.cidr, outputIndex: eth0.index))

            for dir in [layout.bpffsDir(node.name), layout.cniConfDir(node.name), layout.ipamDir(node.name), layout.logsDir(node.name)] {
                try Sys.makeDirectories(dir)
            }
            let link = layout.nodeDir(node.name) + "/manifests"
            if symlink("../../manifests", link) != 0, errno != EEXIST { throw Sys.fail("create \(link)") }
            try Mounts.mountBPF(at: layout.bpffsDir(node.name))
            say("\(node.name): netns \(node.netns), eth0 \(address), pods \(node.podCIDRs.joined(separator: " ")), bpffs \(layout.bpffsDir(node.name))")
        }
    }
}
