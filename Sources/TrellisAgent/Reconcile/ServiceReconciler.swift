import Logging
import TrellisNet

/// The datapath's set of Service addresses (ClusterIPs, external and load-balancer IPs), by
/// difference. A pod's traffic to one goes to the node's stack for kube-proxy to translate, and
/// its egress policy is checked against the backend chosen; traffic to any other address is
/// checked as it leaves the pod. After a removal the policy generation moves on, so a connection
/// to an address that stopped being a Service is checked against policy again.
public struct ServiceReconciler: Sendable {
    public private(set) var programmed: Set<IPAddress>?

    public init() {}

    public mutating func reconcile(to want: Set<IPAddress>, programmer: any DatapathProgrammer,
                                   logger: Logger) -> [ReconcileFailure] {
        if programmed == nil {
            do { programmed = try programmer.programmedServices() } catch {
                return [ReconcileFailure(object: "services", error: "cannot read the programmed Service addresses: \(error)")]
            }
        }
        var have = programmed ?? []
        guard have != want else { return [] }
        var failures: [ReconcileFailure] = []
        for ip in want.subtracting(have).sorted() {
            do {
                try programmer.upsertService(ip: ip)
                have.insert(ip)
            } catch {
                failures.append(ReconcileFailure(object: "service address \(ip)", error: "\(error)"))
            }
        }
        for ip in have.subtracting(want).sorted() {
            do {
                try programmer.deleteService(ip: ip)
                have.remove(ip)
            } catch {
                failures.append(ReconcileFailure(object: "service address \(ip)", error: "\(error)"))
            }
        }
        // A connection to an address that became a Service is converted by from_pod on its next
        // packet; one to an address that stopped being one must be checked against policy again.
        if !(programmed ?? []).isSubset(of: want) {
            do { try programmer.bumpPolicyGeneration() } catch {
                failures.append(ReconcileFailure(object: "policy generation", error: "\(error)"))
            }
        }
        logger.info("services: addresses programmed", metadata: ["services.addresses": "\(have.count)"])
        programmed = failures.isEmpty ? have : nil
        return failures
    }
}
