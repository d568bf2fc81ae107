import Logging
import TrellisCore
import TrellisNet
import TrellisPolicy

/// Owns everything the agent has programmed: node config, overlay, policy (identities,
/// ipcache, the local pods' allow entries), local endpoints. Every call into the
/// `DatapathProgrammer` goes through this actor, one at a time, and none of its programming
/// steps suspends, so each change is atomic with respect to the others (a handshake ADD never
/// interleaves with half a reconcile). The one suspension point is an ADD waiting for its
/// pod's object to arrive from the cluster source; reconciles go on meanwhile.
actor DatapathController {
    let programmer: any DatapathProgrammer
    let links: any LinkInspector
    let board: StatusBoard
    let logger: Logger
    let nodeName: String
    /// How long an ADD waits for its Pod object before failing with "try again later".
    let podWaitTimeout: Duration

    private(set) var overlay = OverlayReconciler()
    private(set) var overlayRoutes = OverlayRoutesReconciler()
    private(set) var services = ServiceReconciler()
    /// The overlay device as last ensured (and what was asked of it), and where `to_overlay` is.
    private var overlayDevice: OverlayDevice?
    private var overlayWanted: (name: String, mtu: Int, addresses: [IPAddress])?
    private var overlayAttached: Int32?
    private(set) var policy: PolicyReconciler
    private(set) var registry = EndpointRegistry()
    private var nodeConfig: (ip: IPAddress, ifindex: Int32, routers: [IPAddress])?
    private var underlayAttached: Int32?
    private let vni: UInt32
    private let mode: DatapathMode
    /// The latest cluster state.
    private var snapshot = ClusterSnapshot.empty
    /// Whether policy has been compiled from a snapshot (until then ADDs wait).
    private var synced = false
    /// Addresses -> names, for the drop monitor's thread (a copy: it never enters the actor).
    nonisolated let names = Locked(NameIndex())

    init(programmer: any DatapathProgrammer, links: any LinkInspector, nodeName: String, vni: UInt32,
         mode: DatapathMode, board: StatusBoard, logger: Logger, podWaitTimeout: Duration = .seconds(10)) {
        self.programmer = programmer
        self.links = links
        self.nodeName = nodeName
        self.vni = vni
        self.mode = mode
        self.board = board
        self.logger = logger
        self.podWaitTimeout = podWaitTimeout
        self.policy = PolicyReconciler(localNode: nodeName)
    }

    /// Reads what the pinned maps hold, so that the first reconcile only corrects differences.
    /// (Policy adopts on its first pass, when it knows the pods.)
    func adopt() -> [ReconcileFailure] {
        var failures: [ReconcileFailure] = []
        do { try overlay.refresh(from: programmer) } catch {
            failures.append(ReconcileFailure(object: "overlay", error: "cannot read the pinned tunnels and peers: \(error)"))
        }
        do { failures += try registry.adopt(programmer: programmer, links: links, logger: logger) } catch {
            failures.append(ReconcileFailure(object: "endpoints", error: "cannot read the pinned endpoints: \(error)"))
        }
        logger.info("adopted the programmed state", metadata: [
            "tunnels": "\(overlay.programmed.tunnels.count)", "peers": "\(overlay.programmed.peers.count)",
            "endpoints": "\(registry.count)"])
        publish(failures)
        return failures
    }

    /// Node-wide config, the underlay program and the overlay device with its program, each
    /// written when it changes (and once per agent start: a new agent brings new programs).
    func programNode(_ node: OwnNode, underlayIfindex: Int32, overlayName: String, podMTU: Int) throws {
        var log = logger
        log[metadataKey: "node.name"] = "\(node.name)"
        let routers = node.routers
        if nodeConfig?.ip != node.nodeIP || nodeConfig?.ifindex != underlayIfindex || nodeConfig?.routers != routers {
            let meta: Logger.Metadata = [
                "node.ip": "\(node.nodeIP)", "underlay.ifindex": "\(underlayIfindex)", "vni": "\(vni)",
                "mode": "\(mode.rawValue)", "routers": "\(routers.map(\.description).joined(separator: ","))"]
            log.debug("programming: set node config", metadata: meta)
            try programmer.setNodeConfig(nodeIP: node.nodeIP, underlayIfindex: underlayIfindex, vni: vni, mode: mode,
                                         routers: routers)
            log.info("node config programmed", metadata: meta)
            nodeConfig = (node.nodeIP, underlayIfindex, routers)
        }
        if underlayAttached != underlayIfindex {
            log.debug("programming: attach underlay", metadata: ["underlay.ifindex": "\(underlayIfindex)"])
            try programmer.attachUnderlay(ifindex: underlayIfindex)
            log.info("underlay program attached", metadata: ["underlay.ifindex": "\(underlayIfindex)"])
            underlayAttached = underlayIfindex
        }
        // The device is looked at (a dozen netlink requests) when what it should be changes;
        // the sweep makes sure it is still there in between.
        let wanted = overlayWanted
        if overlayDevice == nil || wanted?.name != overlayName || wanted?.mtu != podMTU || wanted?.addresses != routers {
            overlayWanted = (overlayName, podMTU, routers)
            try ensureOverlay(log)
        }
    }

    /// Whether the overlay device no longer exists under its name (a failed look-up says nothing).
    private func overlayIsGone(_ device: OverlayDevice) -> Bool {
        let found: LinkFacts?
        do { found = try links.link(index: device.ifindex) } catch { return false }
        return found?.name != device.name
    }

    /// The overlay device as `overlayWanted` says, with `to_overlay` on it.
    private func ensureOverlay(_ log: Logger) throws {
        guard let wanted = overlayWanted else { return }
        let device = try programmer.ensureOverlayDevice(name: wanted.name, mtu: wanted.mtu, addresses: wanted.addresses)
        if device != overlayDevice {
            log.info("overlay device ready", metadata: ["overlay.device": "\(device.name)", "overlay.ifindex": "\(device.ifindex)",
                                                        "mtu": "\(wanted.mtu)"])
            overlayDevice = device
        }
        if overlayAttached != device.ifindex {
            log.debug("programming: attach overlay", metadata: ["overlay.ifindex": "\(device.ifindex)"])
            try programmer.attachOverlay(device)
            log.info("overlay program attached", metadata: ["overlay.device": "\(device.name)"])
            overlayAttached = device.ifindex
        }
    }

    /// Overlay (tunnels, peers, the node's routes into it), Service addresses and policy to the
    /// snapshot, by difference.
    func reconcile(_ snapshot: ClusterSnapshot) -> [ReconcileFailure] {
        self.snapshot = snapshot
        let intent = OverlayIntent.from(snapshot, selfNode: nodeName)
        var failures = overlay.reconcile(to: intent, programmer: programmer, logger: logger)
        if let device = overlayDevice {
            // Routes follow the tunnels the datapath has: a route without its tunnel would drop.
            failures += overlayRoutes.reconcile(tunnels: overlay.programmed.tunnels, routers: nodeConfig?.routers ?? [],
                                                device: device, programmer: programmer, logger: logger)
        }
        failures += services.reconcile(to: snapshot.serviceAddresses, programmer: programmer, logger: logger)
        nameAdoptedEndpoints()
        failures += reprogramPolicy()
        synced = true
        publish(failures)
        return failures
    }

    // MARK: handshake

    func handle(_ request: AgentRequest) async -> AgentAnswer {
        board.add(AgentMetrics.handshakes)
        switch request {
        case .handshake(.status):
            return .status(ready: board.isReady)
        case .agentStatus:
            return .document(status().jsonMembers)
        case .explain(let req):
            return .document(req.answer(policy.engine))
        case .monitor:
            return .failure("monitor streams: it is served by the socket server, not answered")
        case .handshake(.add(let req)):
            do {
                try await add(req)
                publish([])
                return .ok
            } catch {
                publish([ReconcileFailure(object: "endpoint", error: error.description)])
                return .failure(error.description)
            }
        case .handshake(.del(let req)):
            do {
                try registry.delete(req, programmer: programmer, links: links, logger: logger)
                // An endpoint the agent only knows from the maps (adopted) is found by the sweep.
                var failures = registry.sweep(programmer: programmer, links: links, logger: logger)
                failures += reprogramPolicy()
                publish(failures)
                return .ok
            } catch {
                publish([ReconcileFailure(object: "endpoint", error: error.description)])
                return .failure(error.description)
            }
        }
    }

    /// ADD: the pod's policy entries and ipcache entries first, then its programs and endpoint
    /// entries, so the pod never sends or receives a packet before its policy is in place.
    private func add(_ req: HandshakeRequest.AddRequest) async throws(EndpointFailure) {
        guard let namespace = req.podNamespace, let name = req.podName else {
            throw EndpointFailure("container \(req.containerID): the request names no pod (K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS): NetworkPolicy cannot be applied to it")
        }
        let key = PodKey(namespace, name)
        try EndpointRegistry.checkDevice(req, links: links)
        guard await waitForPod(key) else {
            throw EndpointFailure("pod \(key): the agent has not seen its Pod object (or its own policy state) yet; try again")
        }
        do throws(EndpointFailure) {
            var addresses = localAddresses()
            addresses[key] = req.ips
            let inputs = PolicyInputs.from(snapshot, localNode: nodeName, localAddresses: addresses, routers: nodeConfig?.routers ?? [])
            let (failures, _) = policy.reconcile(to: inputs, programmer: programmer, logger: logger, between: { _ in [] })
            if let f = failures.first {
                throw EndpointFailure("pod \(key): cannot program its policy: \(f)")
            }
            guard let policyID = policy.engine.endpointID(of: key) else {
                throw EndpointFailure("pod \(key): not a pod of node \(nodeName) on the pod network (spec.nodeName, hostNetwork or phase say otherwise)")
            }
            let identity = policy.engine.identity(of: key) ?? 0
            try registry.add(req, identity: identity, policyID: policyID, programmer: programmer, links: links, logger: logger)
        } catch {
            // The pod's addresses go back to what the cluster says of them.
            for f in reprogramPolicy() { logger.error("after a failed add: \(f)") }
            throw error
        }
    }

    /// Waits (letting reconciles run) until the snapshot holds the pod, or the timeout passes.
    private func waitForPod(_ key: PodKey) async -> Bool {
        let deadline = ContinuousClock.now + podWaitTimeout
        var waited = false
        while !(synced && snapshot.pods[ClusterPod.Key(namespace: key.namespace, name: key.name)] != nil) {
            guard ContinuousClock.now < deadline else { return false }
            if !waited {
                logger.info("add waits for its Pod object", metadata: ["pod.namespace": "\(key.namespace)", "pod.name": "\(key.name)"])
                waited = true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Endpoints whose host veth went away, and the overlay device (recreated and routed again
    /// if someone deleted it).
    func sweep() {
        let endpoints = registry.count
        var failures = registry.sweep(programmer: programmer, links: links, logger: logger)
        if synced && registry.count != endpoints { failures += reprogramPolicy() }
        // One look at the overlay device: only a missing (or renamed) one costs more.
        if let device = overlayDevice, overlayIsGone(device) {
            logger.warning("overlay device \(device.name) is gone; making it again")
            do {
                try ensureOverlay(logger)
                if let now = overlayDevice {
                    failures += overlayRoutes.reconcile(tunnels: overlay.programmed.tunnels, routers: nodeConfig?.routers ?? [],
                                                        device: now, programmer: programmer, logger: logger)
                }
            } catch {
                failures.append(ReconcileFailure(object: "overlay device", error: "\(error)"))
            }
        }
        for f in failures { logger.error("endpoint sweep: \(f)") }
        publish(failures)
    }

    // MARK: policy

    /// The pods' addresses as this node's endpoints hold them.
    private func localAddresses() -> [PodKey: [IPAddress]] {
        var out: [PodKey: [IPAddress]] = [:]
        for ep in registry.endpoints.values {
            if let ns = ep.podNamespace, let name = ep.podName { out[PodKey(ns, name), default: []] += ep.ips }
        }
        return out
    }

    /// Endpoints adopted from the pinned maps know their addresses, not their pod: find it.
    private func nameAdoptedEndpoints() {
        for ep in registry.endpoints.values where ep.podName == nil {
            guard let pod = snapshot.pods.values.first(where: {
                $0.nodeName == nodeName && $0.ownsPodIPs && !Set($0.podIPs).isDisjoint(with: ep.ips)
            }) else { continue }
            registry.name(endpoint: ep.hostIfindex, namespace: pod.namespace, pod: pod.name)
        }
    }

    /// Policy to the snapshot and the endpoints as they are now.
    private func reprogramPolicy() -> [ReconcileFailure] {
        let inputs = PolicyInputs.from(snapshot, localNode: nodeName, localAddresses: localAddresses(),
                                       routers: nodeConfig?.routers ?? [])
        let (failures, _) = policy.reconcile(to: inputs, programmer: programmer, logger: logger,
                                             between: { engine in syncEndpointIdentities(engine) })
        names.withLock { $0 = NameIndex(policy.engine.cluster) }
        if failures.isEmpty, let revision = snapshot.revision { board.setAppliedRevision(revision) }
        return failures
    }

    /// Endpoint entries carry their pod's identity and policy id: rewrite those that changed.
    private func syncEndpointIdentities(_ engine: PolicyEngine) -> [ReconcileFailure] {
        var failures: [ReconcileFailure] = []
        for ep in registry.endpoints.values.sorted(by: { $0.hostIfindex < $1.hostIfindex }) {
            guard let ns = ep.podNamespace, let name = ep.podName else { continue }
            let key = PodKey(ns, name)
            let identity = engine.identity(of: key) ?? 0
            let policyID = engine.endpointID(of: key) ?? 0
            do {
                try registry.setIdentity(identity, policyID: policyID, onEndpoint: ep.hostIfindex,
                                         programmer: programmer, logger: logger)
            } catch {
                failures.append(ReconcileFailure(object: ep.label, error: error.description))
            }
        }
        return failures
    }

    // MARK: observation

    func status() -> AgentStatus {
        AgentStatus(node: nodeName, ready: board.isReady, reason: board.report.reason,
                    appliedRevision: board.appliedRevision, endpoints: registry.endpoints.values.sorted { $0.hostIfindex < $1.hostIfindex },
                    engine: policy.engine, tunnels: overlay.programmed.tunnels.count, peers: overlay.programmed.peers.count,
                    serviceAddresses: services.programmed?.count ?? 0, overlayRoutes: overlayRoutes.programmed?.count ?? 0,
                    policyWrites: policy.writes)
    }

    private func publish(_ failures: [ReconcileFailure]) {
        board.set(AgentMetrics.endpoints, Double(registry.count))
        board.set(AgentMetrics.tunnels, Double(overlay.programmed.tunnels.count))
        board.set(AgentMetrics.peers, Double(overlay.programmed.peers.count))
        board.set(AgentMetrics.ipcacheEntries, Double(policy.engine.ipcache.count))
        board.set(AgentMetrics.policyEntries, Double(policy.engine.policyEntryCount))
        board.set(AgentMetrics.policies, Double(policy.engine.cluster.policies.count))
        let ids = policy.engine.identityCount
        board.set(AgentMetrics.identities, Double(ids.label + ids.cidr))
        if !failures.isEmpty { board.add(AgentMetrics.reconcileFailures, Double(failures.count)) }
    }
}
