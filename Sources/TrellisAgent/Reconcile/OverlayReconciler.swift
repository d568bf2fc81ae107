import Logging
import TrellisNet

/// The overlay as the datapath holds it: remote pod CIDR -> owning node IP, and the node IPs
/// whose Geneve packets are accepted.
public struct OverlayState: Sendable, Equatable {
    public var tunnels: [IPNetwork: IPAddress]
    public var peers: Set<IPAddress>

    public init(tunnels: [IPNetwork: IPAddress] = [:], peers: Set<IPAddress> = []) {
        self.tunnels = tunnels
        self.peers = peers
    }
}

/// What the cluster asks of the overlay, with the node names for log lines and the oddities
/// found on the way (conflicting CIDRs, nodes without an address).
public struct OverlayIntent: Sendable, Equatable {
    public var state: OverlayState
    /// Node IP -> node name, for logs.
    public var nodeNames: [IPAddress: String]
    public var notes: [String]

    /// Every other Node with pod CIDRs and an InternalIP is a peer, and each of its pod CIDRs a
    /// tunnel to it. Our own CIDRs are never tunnels. A CIDR claimed by two nodes goes to the
    /// first by name, and the conflict is noted.
    public static func from(_ snapshot: ClusterSnapshot, selfNode: String) -> OverlayIntent {
        var intent = OverlayIntent(state: OverlayState(), nodeNames: [:], notes: [])
        let own = snapshot.nodes[selfNode]
        let ownCIDRs = own?.podCIDRs ?? []
        let ownIPs = Set(own?.internalIPs ?? [])
        var claimedBy: [IPNetwork: String] = [:]
        for node in snapshot.nodes.values.sorted(by: { $0.name < $1.name }) where node.name != selfNode {
            guard !node.podCIDRs.isEmpty else {
                intent.notes.append("Node \(node.name) has no podCIDR yet; not a peer")
                continue
            }
            guard let ip = node.tunnelIP else {
                intent.notes.append("Node \(node.name) has no InternalIP; not a peer")
                continue
            }
            if ownIPs.contains(ip) {
                intent.notes.append("Node \(node.name) has our own address \(ip); ignored")
                continue
            }
            if let other = intent.nodeNames[ip] {
                intent.notes.append("Nodes \(other) and \(node.name) share the address \(ip)")
            }
            intent.state.peers.insert(ip)
            intent.nodeNames[ip] = intent.nodeNames[ip] ?? node.name
            for cidr in node.podCIDRs {
                if let mine = ownCIDRs.first(where: { $0.overlaps(cidr) }) {
                    intent.notes.append("Node \(node.name)'s podCIDR \(cidr) overlaps our own \(mine); no tunnel")
                } else if let first = claimedBy[cidr] {
                    intent.notes.append("podCIDR \(cidr) is claimed by Nodes \(first) and \(node.name); \(first) keeps it")
                } else {
                    claimedBy[cidr] = node.name
                    intent.state.tunnels[cidr] = ip
                }
            }
        }
        return intent
    }
}

/// Brings the datapath's overlay to an intent by difference: entries that are right are not
/// touched, changed ones are overwritten in place (never deleted and re-added, so no packet
/// finds a hole), missing ones added, stale ones removed. Additions go before removals, peers
/// before the tunnels that use them.
public struct OverlayReconciler: Sendable {
    /// What the datapath holds, as far as this reconciler knows.
    public private(set) var programmed = OverlayState()
    /// Set when a write failed: what is programmed is then uncertain, and re-read before the
    /// next pass.
    public private(set) var needsRefresh = true
    private var lastNotes: [String] = []

    public init() {}

    /// Reads what the datapath holds (at start, to adopt it; after a failure, to resync).
    public mutating func refresh(from programmer: any DatapathProgrammer) throws {
        programmed = OverlayState(tunnels: try programmer.programmedTunnels(), peers: try programmer.programmedPeers())
        needsRefresh = false
    }

    @discardableResult
    public mutating func reconcile(to intent: OverlayIntent, programmer: any DatapathProgrammer,
                                   logger: Logger) -> [ReconcileFailure] {
        if intent.notes != lastNotes {
            for note in intent.notes where !lastNotes.contains(note) { logger.warning("overlay: \(note)") }
            lastNotes = intent.notes
        }
        var failures: [ReconcileFailure] = []
        if needsRefresh {
            do { try refresh(from: programmer) } catch {
                return [ReconcileFailure(object: "overlay", error: "cannot read the programmed tunnels and peers: \(error)")]
            }
        }
        let want = intent.state
        func name(_ ip: IPAddress) -> Logger.MetadataValue { .string(intent.nodeNames[ip] ?? "?") }

        for ip in want.peers.sorted() where !programmed.peers.contains(ip) {
            let meta: Logger.Metadata = ["peer.ip": "\(ip)", "peer.node": name(ip)]
            logger.debug("programming: upsert peer", metadata: meta)
            do {
                try programmer.upsertPeer(nodeIP: ip)
                programmed.peers.insert(ip)
                logger.info("overlay: peer added", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "peer \(ip) (node \(intent.nodeNames[ip] ?? "?"))", error: "\(error)"))
            }
        }
        for (cidr, ip) in want.tunnels.sorted(by: { IPNetwork.programmingOrder($0.key, $1.key) }) where programmed.tunnels[cidr] != ip {
            let old = programmed.tunnels[cidr]
            var meta: Logger.Metadata = ["tunnel.cidr": "\(cidr)", "tunnel.nodeIP": "\(ip)", "peer.node": name(ip)]
            if let old { meta["tunnel.previousNodeIP"] = "\(old)" }
            logger.debug("programming: upsert tunnel", metadata: meta)
            do {
                try programmer.upsertTunnel(podCIDR: cidr, nodeIP: ip)
                programmed.tunnels[cidr] = ip
                logger.info(old == nil ? "overlay: tunnel added" : "overlay: tunnel moved to a new node IP", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "tunnel \(cidr) via \(ip) (node \(intent.nodeNames[ip] ?? "?"))", error: "\(error)"))
            }
        }
        for (cidr, ip) in programmed.tunnels.sorted(by: { IPNetwork.programmingOrder($0.key, $1.key) }) where want.tunnels[cidr] == nil {
            let meta: Logger.Metadata = ["tunnel.cidr": "\(cidr)", "tunnel.nodeIP": "\(ip)"]
            logger.debug("programming: delete tunnel", metadata: meta)
            do {
                try programmer.deleteTunnel(podCIDR: cidr)
                programmed.tunnels[cidr] = nil
                logger.info("overlay: tunnel removed", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "tunnel \(cidr) via \(ip)", error: "\(error)"))
            }
        }
        for ip in programmed.peers.sorted() where !want.peers.contains(ip) {
            let meta: Logger.Metadata = ["peer.ip": "\(ip)"]
            logger.debug("programming: delete peer", metadata: meta)
            do {
                try programmer.deletePeer(nodeIP: ip)
                programmed.peers.remove(ip)
                logger.info("overlay: peer removed", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "peer \(ip)", error: "\(error)"))
            }
        }
        if !failures.isEmpty { needsRefresh = true }
        return failures
    }
}
