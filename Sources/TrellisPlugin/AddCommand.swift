import TrellisCNI
import TrellisCore
import TrellisJSON
import TrellisIPAM
import TrellisNet
import TrellisNetlink

/// ADD: allocate addresses, create the veth pair with its peer born inside the pod, configure
/// both ends for the mode, and report the result. Any failure undoes every step already done.
func cmdAdd(env: CNIEnvironment, conf: NetConf, log: @escaping (String) -> Void) throws(CNIError) -> CNIResult {
    let podNS = try env.openPodNamespace()
    let netnsPath = podNS.path

    let undo = Rollback()
    defer { undo.runIfNeeded(log: log) }
    let wiring = wiring(for: conf.mode)
    let hostVethName = HostVethName.of(containerID: env.containerID, ifName: env.ifName)

    return try reportingDatapathErrors {
        let host = try Netlink()
        let pod = try Netlink(namespace: podNS)
        if try pod.link(named: env.ifName) != nil {
            throw CNIError(code: TrellisErrorCode.interfaceExists,
                           msg: "CNI_IFNAME \"\(env.ifName)\" already exists in \(netnsPath)")
        }

        // Addresses first: nothing is created on the node for a pod that cannot get one.
        let store = try conf.openIPAM()
        let allocation: Allocation
        do {
            let (a, isNew) = try store.allocate(env.attachmentKey, ranges: conf.ipamRanges, reserved: conf.reserved)
            allocation = a
            if isNew { undo.onFailure("release addresses") { _ = try store.release(env.attachmentKey) } }
        } catch let e as IPAMError { throw CNIError.ipam(e) }

        try wiring.prepareNode(host, conf: conf)

        do {
            try host.addVethPair(name: hostVethName, peerName: env.ifName, peerNamespace: podNS, mtu: conf.mtu)
        } catch let e as NetlinkError where e.kind == .exists && ((try? host.link(named: hostVethName)) ?? nil) != nil {
            // Only an ADD that died half-way leaves this attachment's host veth: replace it.
            // Handled here, on failure, so the common ADD pays no extra netlink round trip.
            try host.deleteLink(named: hostVethName)
            log("removed stale \(hostVethName) of an earlier ADD")
            try host.addVethPair(name: hostVethName, peerName: env.ifName, peerNamespace: podNS, mtu: conf.mtu)
        }
        undo.onFailure("delete \(hostVethName)") { try host.deleteLink(named: hostVethName) }

        // GRO puts the host veth's receive path on NAPI (+10 % same-node throughput). It is a
        // speed-up, never a condition: a kernel that cannot switch it keeps the slower path.
        do { try Ethtool.setGRO(hostVethName, enabled: true) } catch { log("trellis: \(error); going on without") }

        guard let hostVeth = try host.link(named: hostVethName),
              let podLink = try pod.link(named: env.ifName) else {
            throw NetlinkError("create veth \(hostVethName)", kind: .notFound, reason: "the new veth pair vanished")
        }

        // Pod side: up, addresses, routes, neighbours.
        try pod.setLink(index: podLink.index, up: true)
        var ips: [CNIResult.IPConfig] = []
        var routes: [CNIResult.Route] = []
        let gateways = allocation.gateways.compactMap { $0 }
        for (address, gateway) in zip(allocation.addresses, allocation.gateways) {
            let podAddress = wiring.podAddress(address)
            try pod.addAddress(podAddress, index: podLink.index)
            ips.append(CNIResult.IPConfig(address: podAddress, gateway: gateway, interface: 1))
            guard let gateway else { continue }
            for (route, onLink) in wiring.podRoutes(address, gateway: gateway) {
                var r = route
                r.outputIndex = podLink.index
                try pod.addRoute(r, onLink: onLink)
                if r.gateway != nil { routes.append(CNIResult.Route(dst: r.destination, gw: r.gateway)) }
            }
        }
        try wiring.connectPodSide(pod, podLink: podLink, hostVeth: hostVeth, gateways: gateways)
        try wiring.connectHostSide(host, hostVeth: hostVeth, pod: podLink,
                                   addresses: allocation.addresses, conf: conf)

        // With an agent, the pod starts only once its datapath is programmed (fail closed).
        if let socket = conf.agentSocket {
            guard let request = HandshakeRequest.AddRequest(env: env, netns: netnsPath, hostVeth: hostVeth,
                                                            podLink: podLink, addresses: allocation.addresses) else {
                throw CNIError(code: TrellisErrorCode.datapath,
                               msg: "\(hostVeth.name) or \(env.ifName) has no MAC address: the agent cannot program the pod")
            }
            do {
                try AgentClient(socketPath: socket).call(.add(request))
            } catch let AgentClient.Failure.unreachable(why) {
                throw CNIError.tryAgainLater(why)
            } catch {
                throw CNIError(code: TrellisErrorCode.datapath, msg: "\(error)")
            }
        }

        var result = CNIResult(
            interfaces: [
                CNIResult.Interface(name: hostVeth.name, mac: hostVeth.mac?.description, mtu: conf.mtu, sandbox: nil),
                CNIResult.Interface(name: env.ifName, mac: podLink.mac?.description, mtu: conf.mtu, sandbox: netnsPath),
            ],
            ips: ips, routes: routes, dns: CNIResult.DNS())
        if let prev = conf.prevResult { result = prev.merging(result) }
        undo.commit()
        return result
    }
}

extension CNIResult {
    /// Our result appended to a previous plugin's, as a chained non-first plugin must report:
    /// interface indices of our ips shift past the interfaces already listed.
    func merging(_ ours: CNIResult) -> CNIResult {
        let offset = interfaces.count
        var merged = self
        merged.interfaces += ours.interfaces
        merged.ips += ours.ips.map { ip in
            var ip = ip
            ip.interface = ip.interface.map { $0 + offset }
            return ip
        }
        merged.routes += ours.routes
        return merged
    }
}
