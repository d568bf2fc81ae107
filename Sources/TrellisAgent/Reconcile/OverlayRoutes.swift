import Logging
import TrellisNet

/// The node's routes into the overlay device: one per remote pod CIDR the overlay has a tunnel
/// for, with the pods' gateway of that family on this node as its source. They give the node's
/// own stack a way into the overlay: host-network clients, the API server calling a webhook,
/// and kube-proxy forwarding a pod's Service connection (or a NodePort) to a pod on another node.
/// Without them such packets would leave unencapsulated through the default route.
///
/// A family this node has no pod CIDR of gets no routes: its replies would have no address to
/// come back to. By difference, like the other reconcilers; a changed source is replaced in
/// place, never removed first.
public struct OverlayRoutesReconciler: Sendable {
    /// Destination -> source, as the device holds them; nil until read.
    public private(set) var programmed: [IPNetwork: IPAddress]?
    private var device: OverlayDevice?

    public init() {}

    /// What the routes should be: every tunnel's CIDR with the gateway of its family.
    public static func wanted(tunnels: [IPNetwork: IPAddress], routers: [IPAddress]) -> [IPNetwork: IPAddress] {
        var out: [IPNetwork: IPAddress] = [:]
        for cidr in tunnels.keys {
            if let source = routers.first(where: { $0.family == cidr.family }) { out[cidr] = source }
        }
        return out
    }

    public mutating func reconcile(tunnels: [IPNetwork: IPAddress], routers: [IPAddress], device: OverlayDevice,
                                   programmer: any DatapathProgrammer, logger: Logger) -> [ReconcileFailure] {
        if self.device != device {
            programmed = nil   // a new device (or the first pass): read what it has
            self.device = device
        }
        if programmed == nil {
            do { programmed = try programmer.programmedOverlayRoutes(device) } catch {
                return [ReconcileFailure(object: "routes via \(device.name)", error: "cannot read them: \(error)")]
            }
        }
        var have = programmed ?? [:]
        let want = Self.wanted(tunnels: tunnels, routers: routers)
        var failures: [ReconcileFailure] = []
        for (cidr, source) in want.sorted(by: { IPNetwork.programmingOrder($0.key, $1.key) }) where have[cidr] != source {
            let meta: Logger.Metadata = ["route.dst": "\(cidr)", "route.src": "\(source)", "route.dev": "\(device.name)"]
            logger.debug("programming: upsert overlay route", metadata: meta)
            do {
                try programmer.upsertOverlayRoute(cidr, source: source, device: device)
                have[cidr] = source
                logger.info("overlay: route added", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "route \(cidr) via \(device.name)", error: "\(error)"))
            }
        }
        for cidr in have.keys.sorted(by: IPNetwork.programmingOrder) where want[cidr] == nil {
            let meta: Logger.Metadata = ["route.dst": "\(cidr)", "route.dev": "\(device.name)"]
            logger.debug("programming: delete overlay route", metadata: meta)
            do {
                try programmer.deleteOverlayRoute(cidr, device: device)
                have[cidr] = nil
                logger.info("overlay: route removed", metadata: meta)
            } catch {
                failures.append(ReconcileFailure(object: "route \(cidr) via \(device.name)", error: "\(error)"))
            }
        }
        programmed = failures.isEmpty ? have : nil   // after a failure: read again
        return failures
    }
}
