import Logging
import TrellisNet

/// Owns everything the agent has programmed: node config, overlay, ipcache, local endpoints.
/// Every call into the `DatapathProgrammer` goes through this actor, one at a time, and
/// none of its methods suspends while programming, so each change is atomic with respect to
/// the others (a handshake ADD never interleaves with half a reconcile).
actor DatapathController {
    let programmer: any DatapathProgrammer
    let links: any LinkInspector
    let identities: any IdentityAllocator
    let board: StatusBoard
    let logger: Logger

    private(set) var overlay = OverlayReconciler()
    private(set) var ipcache = IPCacheReconciler()
    private(set) var registry = EndpointRegistry()
    private var nodeConfig: (ip: IPAddress, ifindex: Int32, routers: [IPAddress])?
    private var underlayAttached: Int32?
    private let vni: UInt32
    private let mode: DatapathMode
    /// The latest cluster state, for the identities of new endpoints.
    private var snapshot = ClusterSnapshot.empty

    init(programmer: any DatapathProgrammer, links: any LinkInspector, identities: any IdentityAllocator,
         vni: UInt32, mode: DatapathMode, board: StatusBoard, logger: Logger) {
        self.programmer = programmer
        self.links = links
        self.identities = identities
        self.vni = vni
        self.mode = mode
        self.board = board
        self.logger = logger
    }

    /// Reads what the pinned maps hold, so that the first reconcile only corrects differences.
    func adopt() -> [ReconcileFailure] {
        var failures: [ReconcileFailure] = []
        do { try overlay.refresh(from: programmer) } catch {
            failures.append(ReconcileFailure(object: "overlay", error: "cannot read the pinned tunnels and peers: \(error)"))
        }
        do { try ipcache.refresh(from: programmer) } catch {
            failures.append(ReconcileFailure(object: "ipcache", error: "cannot read the pinned entries: \(error)"))
        }
        do { failures += try registry.adopt(programmer: programmer, links: links, logger: logger) } catch {
            failures.append(ReconcileFailure(object: "endpoints", error: "cannot read the pinned endpoints: \(error)"))
        }
        logger.info("adopted the programmed state", metadata: [
            "tunnels": "\(overlay.programmed.tunnels.count)", "peers": "\(overlay.programmed.peers.count)",
            "ipcache": "\(ipcache.programmed.count)", "endpoints": "\(registry.count)"])
        publish(failures)
        return failures
    }

    /// Node-wide config and the underlay program, each written when it changes (and once per
    /// agent start: a new agent brings new programs).
    func programNode(_ node: OwnNode, underlayIfindex: Int32) throws {
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
    }

    /// Overlay and ipcache to the snapshot, by difference.
    func reconcile(_ snapshot: ClusterSnapshot, selfNode: String) -> [ReconcileFailure] {
        self.snapshot = snapshot
        var failures = overlay.reconcile(to: OverlayIntent.from(snapshot, selfNode: selfNode),
                                         programmer: programmer, logger: logger)
        failures += ipcache.reconcile(to: IPCacheIntent.from(snapshot, identities: identities),
                                      programmer: programmer, logger: logger)
        publish(failures)
        return failures
    }

    func handle(_ request: HandshakeRequest) -> HandshakeAnswer {
        board.add(AgentMetrics.handshakes)
        switch request {
        case .status:
            return .status(ready: board.isReady)
        case .add(let req):
            let identity = identityOf(namespace: req.podNamespace, name: req.podName)
            do {
                try registry.add(req, identity: identity, programmer: programmer, links: links, logger: logger)
                publish([])
                return .ok
            } catch {
                publish([ReconcileFailure(object: "endpoint", error: error.description)])
                return .failure(error.description)
            }
        case .del(let req):
            do {
                try registry.delete(req, programmer: programmer, links: links, logger: logger)
                // An endpoint the agent only knows from the maps (adopted) is found by the sweep.
                publish(registry.sweep(programmer: programmer, links: links, logger: logger))
                return .ok
            } catch {
                publish([ReconcileFailure(object: "endpoint", error: error.description)])
                return .failure(error.description)
            }
        }
    }

    func sweep() {
        let failures = registry.sweep(programmer: programmer, links: links, logger: logger)
        for f in failures { logger.error("endpoint sweep: \(f)") }
        publish(failures)
    }

    private func identityOf(namespace: String?, name: String?) -> UInt32 {
        guard let namespace else { return identities.identity(namespace: "", podLabels: [:], namespaceLabels: [:]) }
        let pod = name.flatMap { snapshot.pods[ClusterPod.Key(namespace: namespace, name: $0)] }
        return identities.identity(namespace: namespace, podLabels: pod?.labels ?? [:],
                                   namespaceLabels: snapshot.namespaces[namespace]?.labels ?? [:])
    }

    private func publish(_ failures: [ReconcileFailure]) {
        board.set(AgentMetrics.endpoints, Double(registry.count))
        board.set(AgentMetrics.tunnels, Double(overlay.programmed.tunnels.count))
        board.set(AgentMetrics.peers, Double(overlay.programmed.peers.count))
        board.set(AgentMetrics.ipcacheEntries, Double(ipcache.programmed.count))
        if !failures.isEmpty { board.add(AgentMetrics.reconcileFailures, Double(failures.count)) }
    }
}
